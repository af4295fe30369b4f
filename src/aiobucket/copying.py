"""Copying objects: on the server when the destination's provider can copy from the
source (same backend and account), else a streaming download into an upload
(bounded memory, the writer's abort-on-cancel guarantees)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from . import _runtime
from .errors import NotSupported
from .providers.base import CopyOptions, PutOptions
from .tracing import start_span
from .types import ObjectAttrs, Preconditions, UploadAttrs

if TYPE_CHECKING:
    from .bucket import Bucket


def _put_options(attrs: UploadAttrs | None, key: str) -> PutOptions | None:
    if attrs is None:
        return None
    import mimetypes

    return PutOptions(
        content_type=attrs.content_type or mimetypes.guess_type(key)[0] or "application/octet-stream",
        cache_control=attrs.cache_control,
        content_disposition=attrs.content_disposition,
        metadata=attrs.metadata,
    )


async def copy_object(
    src: Bucket,
    src_key: str,
    dst: Bucket | Any,
    dst_key: str,
    version: str | None,
    attrs: UploadAttrs | None,
    preconditions: Preconditions | None,
) -> ObjectAttrs:
    src_key = src._key(src_key)
    version = src._version(version, src_key)
    upload = dst.upload  # a ref without Uploader raises PermissionDenied here
    dst_bucket: Bucket = getattr(dst, "_bucket", dst)
    dst_key = dst_bucket._key(dst_key)
    pre = preconditions or Preconditions()
    span = start_span("copy", src.name, src_key, version=version, dst_bucket=dst_bucket.name, dst_key=dst_key)
    try:
        result = None
        src_provider, _ = _runtime.provider_for(src.name, src.config)
        dst_provider, _ = _runtime.provider_for(dst_bucket.name, dst_bucket.config)
        opts = CopyOptions(
            version=version,
            replace=_put_options(attrs, dst_key),
            preconditions=pre,
            source=None if dst_provider is src_provider else src_provider,
        )
        try:  # on the server where the backend can, also across its buckets
            result = await dst_provider.copy(src_key, dst_key, opts)
        except NotSupported:
            result = None
        if result is None:
            result = await _stream_copy(src, src_key, version, upload, dst_key, attrs, pre)
    except BaseException as exc:
        err = _runtime.map_error(exc, src.name, src_key)
        span.end(err)
        if err is exc:
            raise
        raise err from exc
    span.set(size=result.size)
    span.end()
    return result


async def _stream_copy(
    src: Bucket,
    src_key: str,
    version: str | None,
    upload: Any,
    dst_key: str,
    attrs: UploadAttrs | None,
    pre: Preconditions,
) -> ObjectAttrs:
    async with src.download(src_key, version=version) as reader:
        if attrs is None:
            a = await reader.attrs()
            attrs = UploadAttrs(
                content_type=a.content_type,
                cache_control=a.cache_control,
                content_disposition=a.content_disposition,
                metadata=dict(a.metadata),
            )
        async with upload(dst_key, attrs=attrs, preconditions=pre) as writer:
            async for chunk in reader:
                await writer.write(chunk)
    result: ObjectAttrs = await writer.close()
    return dataclasses.replace(result, name=dst_key)
