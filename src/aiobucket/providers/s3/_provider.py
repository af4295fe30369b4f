"""S3 and S3-compatible stores (AWS, SeaweedFS, Ceph RGW, MinIO, R2 ...) on aiobotocore.

Configured as ``s3://cloud-name?region=...&endpoint=...&path_style=true|false``;
credentials come from the options ``access_key_id`` + ``secret_access_key`` (or
``secret_access_key_env``, the name of an environment variable) or else from the
standard AWS chain.

One aiobotocore client per provider instance (the bucket layer makes one
provider per bucket per event loop), created on first use and closed by aclose().

Retries (botocore "standard" mode: exponential backoff with jitter, on 5xx,
throttling and connection errors) apply to idempotent requests: reads, lists,
heads, deletes, part uploads. PutObject, CompleteMultipartUpload and CopyObject
are retried only when the server certainly did not apply them (the connection
was never made, or a 503/throttling answer); after an ambiguous failure (500,
connection dropped after sending) the error is raised instead, because a
retried conditional write would report its own success as a precondition
failure and a retried completion fails with NoSuchUpload.

A body dropped mid-stream raises ConnectionLost; the reader above resumes with
``GetOptions(offset=..., if_match=etag)``.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import heapq
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore.exceptions import ClientError

from ..._aio import run_to_completion
from ...errors import (
    BucketError,
    InvalidArgument,
    NotModified,
    NotSupported,
    ObjectNotFound,
    RangeNotSatisfiable,
)
from ...types import BucketConfig, ListEntry, ObjectAttrs, Preconditions, UploadForm
from ..base import (
    Capabilities,
    CopyOptions,
    GetOptions,
    GiB,
    MiB,
    Part,
    PostPolicy,
    Provider,
    PutOptions,
    check_preconditions,
    check_read,
    delete_each,
    put_options_from,
)
from ._errors import UNSAFE_OPS, client_error_code, map_error, mapped, veto_unsafe_retry
from ._settings import S3Settings, parse_settings
from ._wire import (
    _Body,
    _body,
    _conditions,
    _date,
    _EmptyBody,
    _object_params,
    _parse_timestamp,
    _put_attrs,
    _quote,
    _total_size,
    _unquote,
    _utc,
    _version,
)

if TYPE_CHECKING:
    from ...config import BucketSettings

__all__ = ["CAPABILITIES", "S3Provider", "S3Settings", "create"]

CHUNK = 1 * MiB

CAPABILITIES = Capabilities(
    versioning=True,
    conditional_put=True,
    signed_urls=True,
    server_side_copy=True,
    parallel_parts=True,
    min_part_size=5 * MiB,
    max_parts=10_000,
    default_part_size=8 * MiB,
    default_concurrency=8,
)


class _Upload:
    """One S3 multipart upload: UploadPart / CompleteMultipartUpload / AbortMultipartUpload."""

    def __init__(self, provider: S3Provider, key: str, opts: PutOptions, upload_id: str) -> None:
        self._p = provider
        self._key = key
        self._opts = opts
        self.upload_id = upload_id
        self._finished = False

    def _ids(self) -> dict[str, Any]:
        return {"Bucket": self._p.bucket, "Key": self._key, "UploadId": self.upload_id}

    async def put_part(self, number: int, data: bytes | bytearray) -> Part:
        client = await self._p.client()
        with mapped(f"upload part {number}", self._p.bucket, self._key):
            resp = await client.upload_part(**self._ids(), PartNumber=number, Body=_body(data))
        return Part(number, _unquote(resp["ETag"]), len(data))

    async def complete(self, parts: list[Part]) -> ObjectAttrs:
        if not parts:
            # S3 refuses an upload without parts: store the empty object instead.
            await self.abort()
            return await self._p.put(self._key, b"", self._opts)
        client = await self._p.client()
        ordered = sorted(parts, key=lambda p: p.number)
        pre = self._opts.preconditions
        try:
            # Servers that ignore If-None-Match/If-Match on completion (Ceph RGW
            # 16.2) still refuse outside a race thanks to this check.
            await self._p.precheck(self._key, pre)
            with mapped(
                "complete upload", self._p.bucket, self._key, conditional_write=pre.if_match is not None
            ):
                resp = await client.complete_multipart_upload(
                    **self._ids(),
                    MultipartUpload={
                        "Parts": [{"ETag": _quote(p.etag), "PartNumber": p.number} for p in ordered]
                    },
                    **_conditions(pre),
                )
        except Exception:
            # A refused completion (412 ...) leaves the upload open on the
            # server: throw its parts away now so nothing is orphaned.
            with contextlib.suppress(Exception):
                await run_to_completion(self.abort())
            raise
        self._finished = True
        etag, version = resp.get("ETag"), resp.get("VersionId")
        if not _unquote(etag):  # Ceph RGW 16.2 leaves the ETag out of the response
            etag = (await self._p.head(self._key, _version(version))).etag
        return _put_attrs(self._key, self._opts, sum(p.size for p in ordered), etag, version, _date(resp))

    async def abort(self) -> None:
        if self._finished:
            return
        client = await self._p.client()
        try:
            await client.abort_multipart_upload(**self._ids())
        except ClientError as exc:
            code, status = client_error_code(exc)
            if code != "NoSuchUpload" and status != 404:
                raise map_error(exc, op="abort upload", bucket=self._p.bucket, key=self._key) from exc
        except Exception as exc:
            raise map_error(exc, op="abort upload", bucket=self._p.bucket, key=self._key) from exc
        self._finished = True


class S3Provider:
    capabilities = CAPABILITIES

    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        self.bucket = settings.bucket
        self._client: Any = None
        self._stack: AsyncExitStack | None = None
        self._lock: asyncio.Lock | None = None
        self.copy_threshold = 5 * GiB
        """Sources larger than this are copied with UploadPartCopy (CopyObject's limit)."""
        self.copy_part_size = 512 * MiB
        self.copy_concurrency = 4

    def _config(self) -> AioConfig:
        s = self.settings
        return AioConfig(
            region_name=s.region,
            signature_version="s3v4",
            s3={"addressing_style": "path" if s.path_style else "auto"},
            retries={"mode": "standard", "total_max_attempts": s.max_attempts},
            max_pool_connections=s.max_pool_connections,
            connect_timeout=s.connect_timeout,
            read_timeout=s.read_timeout,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            user_agent_extra="aiobucket",
        )

    async def client(self) -> Any:
        """The aiobotocore client, created on first use on the running loop."""
        if self._client is not None:
            return self._client
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._client is None:
                s = self.settings
                stack = AsyncExitStack()
                try:
                    with mapped("connect", self.bucket):
                        session = AioSession(profile=s.profile) if s.profile else AioSession()
                        session.get_component("response_parser_factory").set_parser_defaults(
                            timestamp_parser=_parse_timestamp
                        )
                        client = await stack.enter_async_context(
                            session.create_client(
                                "s3",
                                region_name=s.region,
                                endpoint_url=s.endpoint,
                                aws_access_key_id=s.access_key_id,
                                aws_secret_access_key=s.secret_access_key,
                                aws_session_token=s.session_token,
                                config=self._config(),
                            )
                        )
                except BaseException:
                    await stack.aclose()
                    raise
                for op in UNSAFE_OPS:
                    client.meta.events.register_first(f"needs-retry.s3.{op}", veto_unsafe_retry)
                self._stack, self._client = stack, client
        return self._client

    async def put(self, key: str, data: bytes, opts: PutOptions) -> ObjectAttrs:
        client = await self.client()
        size = len(data)
        pre = opts.preconditions
        with mapped("upload", self.bucket, key, conditional_write=pre.if_match is not None):
            resp = await client.put_object(
                Bucket=self.bucket, Key=key, Body=_body(data), **_object_params(opts), **_conditions(pre)
            )
        return _put_attrs(key, opts, size, resp.get("ETag"), resp.get("VersionId"), _date(resp))

    async def start_multipart(self, key: str, opts: PutOptions) -> _Upload:
        client = await self.client()
        with mapped("start upload", self.bucket, key):
            resp = await client.create_multipart_upload(Bucket=self.bucket, Key=key, **_object_params(opts))
        return _Upload(self, key, opts, resp["UploadId"])

    def _attrs(self, key: str, resp: Mapping[str, Any], size: int) -> ObjectAttrs:
        return ObjectAttrs(
            name=key,
            size=size,
            etag=_unquote(resp.get("ETag")),
            content_type=resp.get("ContentType") or "application/octet-stream",
            version=_version(resp.get("VersionId")),
            cache_control=resp.get("CacheControl"),
            content_disposition=resp.get("ContentDisposition"),
            metadata=dict(resp.get("Metadata") or {}),
            last_modified=_utc(resp.get("LastModified")),
        )

    async def get(self, key: str, opts: GetOptions) -> tuple[ObjectAttrs, _Body | _EmptyBody]:
        if opts.length == 0:
            attrs = await self._head(key, opts.version, opts.if_match)
            check_read(attrs, opts, key)
            return attrs, _EmptyBody()
        client = await self.client()
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if opts.version is not None:
            params["VersionId"] = opts.version
        if opts.if_match is not None:
            params["IfMatch"] = _quote(opts.if_match)
        if opts.offset or opts.length is not None:
            end = "" if opts.length is None else str(opts.offset + opts.length - 1)
            params["Range"] = f"bytes={opts.offset}-{end}"
        # HTTP caching: S3 answers 304 with only an etag, so a 304 is confirmed with a
        # HEAD, whose attrs go into NotModified (check_read raises it; a changed object reads).
        if opts.if_none_match is not None:
            params["IfNoneMatch"] = "*" if opts.if_none_match == "*" else _quote(opts.if_none_match)
        elif opts.if_modified_since is not None:
            params["IfModifiedSince"] = opts.if_modified_since
        try:
            with mapped("download", self.bucket, key, opts.version):
                resp = await client.get_object(**params)
        except NotModified:
            check_read(await self._head(key, opts.version), replace(opts, offset=0), key)
            return await self.get(key, opts)  # it changed since the 304; read it
        except RangeNotSatisfiable:
            if opts.offset:
                raise RangeNotSatisfiable(
                    f"offset {opts.offset} is at or past the end of the object", key=key
                ) from None
            # bytes=0-N on an empty object is a 416 on S3; read it whole instead.
            del params["Range"]
            with mapped("download", self.bucket, key, opts.version):
                resp = await client.get_object(**params)
            if int(resp.get("ContentLength") or 0) > (opts.length or 0):
                resp["Body"].close()
                return await self.get(key, opts)  # it was just rewritten; read it again
        return self._attrs(key, resp, _total_size(resp)), _Body(resp["Body"], key)

    async def _head(self, key: str, version: str | None, if_match: str | None = None) -> ObjectAttrs:
        client = await self.client()
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version is not None:
            params["VersionId"] = version
        if if_match is not None:
            params["IfMatch"] = _quote(if_match)
        with mapped("attrs", self.bucket, key, version):
            resp = await client.head_object(**params)
        return self._attrs(key, resp, int(resp.get("ContentLength") or 0))

    async def head(self, key: str, version: str | None = None) -> ObjectAttrs:
        return await self._head(key, version)

    async def precheck(self, key: str, pre: Preconditions) -> None:
        """Check preconditions against the current object with a HEAD.

        Used before CopyObject and CompleteMultipartUpload, which also carry the
        conditions as headers (atomic where the server honours them); servers
        that ignore them there (Ceph RGW 16.2) then fail only inside the race
        window between this HEAD and the write.
        """
        if not pre:
            return
        try:
            current: ObjectAttrs | None = await self._head(key, None)
        except ObjectNotFound:
            current = None
        check_preconditions(current, pre, key)

    async def delete(self, key: str, version: str | None = None) -> None:
        # DeleteObject succeeds on a missing key; the contract says ObjectNotFound.
        await self._head(key, version)
        client = await self.client()
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version is not None:
            params["VersionId"] = version
        with mapped("remove", self.bucket, key, version):
            await client.delete_object(**params)

    async def list(
        self,
        prefix: str,
        *,
        start_after: str | None = None,
        delimiter: str | None = None,
        versions: bool = False,
        limit: int | None = None,
    ) -> AsyncIterator[ListEntry]:
        client = await self.client()
        params: dict[str, Any] = {
            "Bucket": self.bucket,
            "Prefix": prefix,
            "MaxKeys": min(max(limit or 1000, 1), 1000),
        }
        if delimiter is not None:
            params["Delimiter"] = delimiter
        if versions:
            if start_after:
                params["KeyMarker"] = start_after
        elif start_after:
            params["StartAfter"] = start_after
        while True:
            with mapped("list", self.bucket):
                if versions:
                    resp = await client.list_object_versions(**params)
                else:
                    resp = await client.list_objects_v2(**params)
            items = resp.get("Versions", []) if versions else resp.get("Contents", [])
            objects = [
                ListEntry(
                    name=o["Key"],
                    size=int(o.get("Size") or 0),
                    etag=_unquote(o.get("ETag")),
                    version=_version(o.get("VersionId")),
                    last_modified=_utc(o.get("LastModified")),
                    is_latest=bool(o.get("IsLatest", True)),
                )
                for o in items
            ]
            prefixes = [ListEntry(name=p["Prefix"], is_prefix=True) for p in resp.get("CommonPrefixes", [])]
            for entry in heapq.merge(objects, prefixes, key=lambda e: e.name.encode()):
                yield entry
            if not resp.get("IsTruncated"):
                return
            if versions:
                params["KeyMarker"] = resp.get("NextKeyMarker")
                if resp.get("NextVersionIdMarker"):
                    params["VersionIdMarker"] = resp["NextVersionIdMarker"]
                else:
                    params.pop("VersionIdMarker", None)
            else:
                params["ContinuationToken"] = resp["NextContinuationToken"]

    def can_copy_from(self, source: Provider) -> bool:
        """CopyObject works across buckets of one endpoint and account."""
        if not isinstance(source, S3Provider):
            return False
        a, b = self.settings, source.settings
        return (a.endpoint, a.region, a.access_key_id, a.profile) == (
            b.endpoint,
            b.region,
            b.access_key_id,
            b.profile,
        )

    async def copy(self, source: Provider, src: str, dst: str, opts: CopyOptions) -> ObjectAttrs:
        assert isinstance(source, S3Provider)
        origin, source_attrs = source, await source._head(src, opts.version)
        put = opts.replace or put_options_from(source_attrs)
        return await self._copy(origin, source_attrs, src, dst, put, opts)

    async def _copy(
        self, origin: S3Provider, source: ObjectAttrs, src: str, dst: str, put: PutOptions, opts: CopyOptions
    ) -> ObjectAttrs:
        if source.size > self.copy_threshold:
            return await self._multipart_copy(origin.bucket, src, dst, source, put, opts)
        client = await self.client()
        copy_source: dict[str, str] = {"Bucket": origin.bucket, "Key": src}
        if opts.version is not None:
            copy_source["VersionId"] = opts.version
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": dst, "CopySource": copy_source}
        if opts.replace is not None:
            params.update(_object_params(opts.replace), MetadataDirective="REPLACE")
        pre = opts.preconditions
        await self.precheck(dst, pre)
        with mapped("copy", self.bucket, dst, conditional_write=pre.if_match is not None):
            resp = await client.copy_object(**params, **_conditions(pre))
        result = resp.get("CopyObjectResult", {})
        return _put_attrs(
            dst, put, source.size, result.get("ETag"), resp.get("VersionId"), _utc(result.get("LastModified"))
        )

    async def _multipart_copy(
        self, src_bucket: str, src: str, dst: str, source: ObjectAttrs, put: PutOptions, opts: CopyOptions
    ) -> ObjectAttrs:
        from dataclasses import replace

        upload = await self.start_multipart(dst, replace(put, preconditions=opts.preconditions))
        client = await self.client()
        copy_source: dict[str, str] = {"Bucket": src_bucket, "Key": src}
        if opts.version is not None:
            copy_source["VersionId"] = opts.version
        # Pin every part to the source we measured, so a concurrent overwrite fails loudly.
        copy_source_if_match = {"CopySourceIfMatch": _quote(source.etag)} if source.etag else {}
        step = self.copy_part_size
        ranges = [(i // step + 1, i, min(i + step, source.size) - 1) for i in range(0, source.size, step)]
        limit = asyncio.Semaphore(self.copy_concurrency)

        async def one(number: int, first: int, last: int) -> Part:
            async with limit:
                with mapped(f"copy part {number}", self.bucket, dst):
                    resp = await client.upload_part_copy(
                        Bucket=self.bucket,
                        Key=dst,
                        UploadId=upload.upload_id,
                        PartNumber=number,
                        CopySource=copy_source,
                        CopySourceRange=f"bytes={first}-{last}",
                        **copy_source_if_match,
                    )
            etag = resp.get("CopyPartResult", {}).get("ETag")
            return Part(number, _unquote(etag), last - first + 1)

        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(one(*r)) for r in ranges]
            parts = [t.result() for t in tasks]
        except BaseException as exc:
            await run_to_completion(upload.abort())
            if isinstance(exc, BaseExceptionGroup):
                first = exc.exceptions[0]
                raise first from first.__cause__
            raise
        return await upload.complete(parts)

    async def delete_many(self, keys: Sequence[str]) -> builtins.list[BucketError | None]:
        return await delete_each(self.delete, keys)

    async def sign_post(self, key: str, policy: PostPolicy) -> UploadForm:
        raise NotSupported("S3 upload forms are not implemented yet", key=key)

    async def sign_url(
        self,
        key: str,
        method: Literal["GET", "PUT"],
        ttl: timedelta,
        version: str | None = None,
        *,
        content_type: str | None = None,
        content_length: int | None = None,
    ) -> str:
        if method not in ("GET", "PUT"):
            raise InvalidArgument(f"cannot sign a {method!r} URL; use GET or PUT", key=key)
        client = await self.client()
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version is not None and method == "GET":
            params["VersionId"] = version
        with mapped("sign url", self.bucket, key):
            url: str = await client.generate_presigned_url(
                "get_object" if method == "GET" else "put_object",
                Params=params,
                ExpiresIn=max(1, int(ttl.total_seconds())),
                HttpMethod=method,
            )
        return url

    async def aclose(self) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            with mapped("close", self.bucket):
                await stack.aclose()


def create(settings: BucketSettings, name: str, config: BucketConfig) -> Provider:
    """``s3://cloud-name?region=...&endpoint=...&path_style=...`` (see the module docs).

    A URL's ``prefix=`` never reaches here: config turns it into ``key_prefix``.
    """
    return S3Provider(parse_settings(settings, name))
