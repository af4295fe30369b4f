"""Copying objects: on the server when the destination's provider can copy from the
source (same backend and account), else a streaming download into an upload
(bounded memory, the writer's abort-on-cancel guarantees)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import _runtime
from ._runtime import Handle
from .errors import ObjectChanged
from .providers.base import CopyOptions, PutOptions
from .reader import Reader
from .types import ObjectAttrs, Preconditions, UploadAttrs
from .writer import refuse_unhonoured

if TYPE_CHECKING:
    from .writer import Writer


def _put_options(attrs: UploadAttrs | None, key: str) -> PutOptions | None:
    if attrs is None:
        return None
    import mimetypes

    return PutOptions(
        content_type=attrs.content_type or mimetypes.guess_type(key)[0] or "application/octet-stream",
        cache_control=attrs.cache_control,
        content_disposition=attrs.content_disposition,
        metadata=attrs.metadata,
        content_encoding=attrs.content_encoding,
    )


async def copy_object(
    src: Handle,
    src_key: str,
    version: str | None,
    dst: Handle,
    upload: Callable[..., Writer],
    dst_key: str,
    attrs: UploadAttrs | None,
    preconditions: Preconditions | None,
) -> ObjectAttrs:
    """Copy on the server when the destination's provider can read the source; else stream.

    Keys and version arrive validated; ``upload`` is the destination's (or its ref's)
    upload method, so a ref's permissions hold on the streaming path too.
    """
    pre = preconditions or Preconditions()
    attributes = {"version": version, "dst_bucket": dst.name, "dst_key": dst_key}
    async with _runtime.operation("copy", src.name, src_key, **attributes) as span:
        src_provider, _ = src.provider()
        dst_provider, _ = dst.provider()
        if dst_provider.can_copy_from(src_provider):
            refuse_unhonoured(dst_provider.capabilities, pre, "copy", dst.name, dst_key)
            opts = CopyOptions(version=version, replace=_put_options(attrs, dst_key), preconditions=pre)
            result = await dst_provider.copy(src_provider, src_key, dst_key, opts)
        else:
            result = await _stream_copy(src, src_key, version, upload, dst_key, attrs, pre)
        span.set(size=result.size)
    return result


async def _stream_copy(
    src: Handle,
    src_key: str,
    version: str | None,
    upload: Callable[..., Writer],
    dst_key: str,
    attrs: UploadAttrs | None,
    pre: Preconditions,
) -> ObjectAttrs:
    async with Reader(src, src_key, version, 0, None) as reader:
        read = await reader.attrs()
        if attrs is None:
            source, _ = src.provider()
            stored = read
            if source.capabilities.served_cache_control:  # the read's attrs are not all stored ones
                stored = await source.head(src_key, read.version or version)
                if stored.etag != read.etag:
                    raise ObjectChanged("the object changed while it was being copied", key=src_key)
            attrs = UploadAttrs.of(stored)
        encoding = await reader.content_encoding()
        if encoding != read.content_encoding:  # decoded on the way (GCS transcoding): store what came
            attrs = dataclasses.replace(attrs, content_encoding=encoding)
        async with upload(dst_key, attrs=attrs, preconditions=pre) as writer:
            async for chunk in reader:
                await writer.write(chunk)
    result: ObjectAttrs = await writer.close()
    return dataclasses.replace(result, name=dst_key)
