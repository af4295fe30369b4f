"""Google Cloud Storage backend on gcloud-aio-storage's session, token and URL roots.

Configuration: ``gs://cloud-bucket-name[?endpoint=http://127.0.0.1:4443][&prefix=p/]``.
``endpoint=`` (or ``STORAGE_EMULATOR_HOST``) points at an emulator and sends no
credentials. Otherwise credentials come from the standard Google chain, or the
``service_file`` option (a service-account JSON file). Other options:
``connect_timeout``, ``read_timeout``, ``request_timeout`` (seconds),
``retries`` (total attempts for idempotent requests), ``trace_configs``
(aiohttp TraceConfig objects, for observability and tests).

Semantics at the contract level:

* ``version`` is the GCS generation (a decimal string). ``ObjectAttrs.version``
  is set only when the bucket is declared ``versioned``, as on every backend;
  ``version=`` arguments are sent as ``generation=`` either way.
* ``Preconditions.if_match`` takes an **ETag** (``ObjectAttrs.etag``, as on
  every backend). It is resolved to the object's current generation with a
  metadata GET, and the write is sent with ``ifGenerationMatch=<generation>``,
  so the check is atomic on the server. ``not_exists`` is ``ifGenerationMatch=0``.
* A read first fetches the object's metadata, then downloads the media pinned to
  that generation, so a body never splices two versions; ``GetOptions.if_match``
  is compared to that metadata's etag.
* Streams run without a total timeout (only connect and socket-read timeouts).
"""

from __future__ import annotations

import builtins
import json
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qs, quote, urlsplit

import aiohttp

from ...errors import (
    BackendError,
    BucketError,
    ConnectionLost,
    InvalidArgument,
    NotSupported,
    ObjectNotFound,
    PreconditionFailed,
)
from ...types import BucketConfig, ListEntry, ObjectAttrs, Preconditions, UploadForm
from ..base import (
    Capabilities,
    CopyOptions,
    GetOptions,
    KiB,
    MiB,
    PostPolicy,
    Provider,
    PutOptions,
    check_read,
    delete_each,
)
from ._http import (
    GCS_PUBLIC_ROOT,
    GcsHttp,
    HttpError,
    HttpSettings,
    RetryPolicy,
    attrs_from_resource,
    connection_error,
    error_for_status,
    resource_metadata,
)
from ._sign import sign_v4
from ._upload import ResumableUpload

if TYPE_CHECKING:
    from ...config import BucketSettings

READ_CHUNK = 256 * KiB
LIST_PAGE = 1000

CAPABILITIES = Capabilities(
    versioning=True,
    conditional_put=True,
    signed_urls=True,
    signed_forms=True,
    server_side_copy=True,
    parallel_parts=False,
    min_part_size=256 * KiB,
    part_size_multiple=256 * KiB,
    max_parts=1_000_000,  # resumable sessions have no part limit; objects may reach 5 TiB
    default_part_size=8 * MiB,
    default_concurrency=1,
)

__all__ = ["CAPABILITIES", "GcsProvider", "create"]


class _Body:
    """A media response streamed in chunks; a dropped connection is ConnectionLost."""

    def __init__(self, resp: aiohttp.ClientResponse | None, expected: int, key: str) -> None:
        self._resp = resp
        self._expected = expected
        self._key = key
        self._received = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        resp = self._resp
        if resp is None:
            return
        try:
            while self._received < self._expected:
                chunk = await resp.content.read(min(READ_CHUNK, self._expected - self._received))
                if not chunk:
                    break
                self._received += len(chunk)
                yield chunk
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, TimeoutError, OSError) as exc:
            raise ConnectionLost(
                f"connection lost after {self._received} of {self._expected} bytes: {exc}", key=self._key
            ) from exc
        if self._received < self._expected:
            raise ConnectionLost(
                f"the body ended after {self._received} of {self._expected} bytes", key=self._key
            )

    async def aclose(self) -> None:
        resp, self._resp = self._resp, None
        if resp is None:
            return
        if self._received >= self._expected and resp.content.at_eof():
            resp.release()  # fully read: the connection goes back to the pool
        else:
            resp.close()  # unread bytes: drop the connection rather than drain it


def _account(p: GcsProvider) -> tuple[str | None, str | None]:
    return p.http.settings.endpoint, p.http.settings.service_file


class GcsProvider:
    capabilities = CAPABILITIES

    def __init__(
        self,
        bucket: str,
        *,
        versioned: bool,
        http: HttpSettings,
    ) -> None:
        self.bucket = bucket
        self.versioned = versioned
        self.http = GcsHttp(http)

    # -- helpers ---------------------------------------------------------------

    def bucket_error(self, exc: HttpError, key: str | None, what: str) -> BucketError:
        """For requests on the bucket itself (uploads, lists): a 404 means no bucket."""
        if exc.status == 404:
            return BackendError(f"{what}: GCS bucket {self.bucket!r} does not exist", key=key)
        return error_for_status(exc.status, exc.body, key=key, what=what)

    async def _resource(self, key: str, version: str | None) -> dict[str, Any]:
        params = {"generation": version} if version is not None else None
        return await self.http.json(
            "GET",
            self.http.object_url(self.bucket, key),
            key=key,
            version=version,
            idempotent=True,
            params=params,
            what="get object metadata",
        )

    async def precondition_generation(self, key: str, pre: Preconditions) -> str | None:
        """The ``ifGenerationMatch`` value for these preconditions, or None."""
        if pre.not_exists:
            return "0"
        if pre.if_match is None:
            return None
        try:
            res = await self._resource(key, None)
        except ObjectNotFound:
            raise PreconditionFailed(
                f"precondition if_match={pre.if_match!r} failed: the object does not exist", key=key
            ) from None
        etag = str(res.get("etag", "")).strip('"')
        if etag != pre.if_match:
            raise PreconditionFailed(
                f"precondition if_match={pre.if_match!r} failed: its etag is {etag!r}", key=key
            )
        return str(res["generation"])

    # -- the contract ----------------------------------------------------------

    async def put(self, key: str, data: bytes, opts: PutOptions) -> ObjectAttrs:
        gen = await self.precondition_generation(key, opts.preconditions)
        params = {"uploadType": "multipart"}
        if gen is not None:
            params["ifGenerationMatch"] = gen
        meta = resource_metadata(
            opts.content_type, opts.cache_control, opts.content_disposition, opts.metadata, name=key
        )
        boundary = os.urandom(16).hex()
        body = b"".join(
            [
                f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n".encode(),
                json.dumps(meta).encode(),
                f"\r\n--{boundary}\r\nContent-Type: {opts.content_type}\r\n\r\n".encode(),
                data,
                f"\r\n--{boundary}--\r\n".encode(),
            ]
        )
        try:
            resp = await self.http.request(
                "POST",
                self.http.bucket_url(self.bucket, upload=True),
                key=key,
                idempotent=gen is not None,
                params=params,
                data=body,
                headers={"Content-Type": f"multipart/related; boundary={boundary}"},
                what="upload",
            )
        except HttpError as exc:
            raise self.bucket_error(exc, key, "upload") from exc
        try:
            raw = await resp.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise connection_error(exc, self.http.api_root, "upload", key) from exc
        finally:
            resp.release()
        try:
            return attrs_from_resource(json.loads(raw), versioned=self.versioned)
        except (ValueError, KeyError, TypeError) as exc:
            raise BackendError("GCS sent an unexpected upload response", key=key) from exc

    async def start_multipart(self, key: str, opts: PutOptions) -> ResumableUpload:
        return ResumableUpload(self, key, opts)

    async def get(self, key: str, opts: GetOptions) -> tuple[ObjectAttrs, _Body]:
        for _ in range(3):
            res = await self._resource(key, opts.version)
            attrs = attrs_from_resource(res, versioned=self.versioned)
            check_read(attrs, opts, key)
            size = attrs.size
            end = size if opts.length is None else min(size, opts.offset + opts.length)
            if end <= opts.offset:
                return attrs, _Body(None, 0, key)
            headers = {"Accept-Encoding": "identity"}
            if opts.offset or end < size:
                headers["Range"] = f"bytes={opts.offset}-{end - 1}"
            params = {"alt": "media", "generation": str(res["generation"])}
            try:
                resp = await self.http.request(
                    "GET",
                    self.http.object_url(self.bucket, key),
                    key=key,
                    idempotent=True,
                    params=params,
                    headers=headers,
                    ok=(200, 206),
                    stream=True,
                    what="download",
                )
            except HttpError as exc:
                if exc.status == 404 and opts.version is None and opts.if_match is None:
                    continue  # replaced between the metadata and the media request: look again
                if exc.status == 404 and opts.if_match is not None:
                    raise PreconditionFailed("object changed while being read", key=key) from exc
                raise error_for_status(
                    exc.status, exc.body, key=key, version=opts.version, what="download"
                ) from exc
            return attrs, _Body(resp, end - opts.offset, key)
        raise BackendError("the object kept changing while the download was starting", key=key)

    async def head(self, key: str, version: str | None = None) -> ObjectAttrs:
        return attrs_from_resource(await self._resource(key, version), versioned=self.versioned)

    async def delete(self, key: str, version: str | None = None) -> None:
        params = None if version is None else {"generation": version, "ifGenerationMatch": version}
        await self.http.json(
            "DELETE",
            self.http.object_url(self.bucket, key),
            key=key,
            version=version,
            # Only a generation-pinned delete is safe to repeat.
            idempotent=version is not None,
            params=params,
            what="delete",
        )

    async def list(
        self,
        prefix: str,
        *,
        start_after: str | None = None,
        delimiter: str | None = None,
        versions: bool = False,
        limit: int | None = None,
    ) -> AsyncIterator[ListEntry]:
        page_size = LIST_PAGE if not limit else max(1, min(limit, LIST_PAGE))
        skip_under: str | None = None
        if start_after is not None and delimiter is not None and start_after.startswith(prefix):
            cut = start_after.find(delimiter, len(prefix))
            if cut >= 0:
                # start_after sits inside a "folder": it is listed only if something
                # in it comes after start_after; the rest of it is never repeated.
                skip_under = start_after[: cut + len(delimiter)]
                if await self._any_after(skip_under, start_after, versions):
                    yield ListEntry(name=skip_under, is_prefix=True)
        pending: builtins.list[dict[str, Any]] = []  # versions of one name, across pages
        async for kind, value in self._pages(prefix, start_after, delimiter, versions, page_size):
            if kind == "prefix":
                name = str(value)
                if name == skip_under:
                    continue
                for entry in self._flush(pending):
                    yield entry
                pending = []
                yield ListEntry(name=name, is_prefix=True)
                continue
            assert isinstance(value, dict)
            name = str(value["name"])
            if start_after is not None and name.encode() <= start_after.encode():
                continue  # startOffset is inclusive; start_after is not
            if skip_under is not None and name.startswith(skip_under):
                continue
            if pending and pending[0]["name"] != name:
                for entry in self._flush(pending):
                    yield entry
                pending = []
            pending.append(value)
        for entry in self._flush(pending):
            yield entry

    def _flush(self, items: builtins.list[dict[str, Any]]) -> builtins.list[ListEntry]:
        """The versions of one key, newest first; the live one (no timeDeleted) is latest."""
        items = sorted(items, key=lambda it: int(it.get("generation", 0)), reverse=True)
        out = []
        for it in items:
            a = attrs_from_resource(it, versioned=self.versioned)
            out.append(
                ListEntry(
                    name=a.name,
                    size=a.size,
                    etag=a.etag,
                    version=a.version,
                    last_modified=a.last_modified,
                    is_latest="timeDeleted" not in it,
                )
            )
        return out

    async def _pages(
        self, prefix: str, start_after: str | None, delimiter: str | None, versions: bool, page_size: int
    ) -> AsyncIterator[tuple[str, object]]:
        """Items and prefixes of each page, merged in UTF-8 byte order of name."""
        params: dict[str, str] = {"maxResults": str(page_size)}
        if prefix:
            params["prefix"] = prefix
        if delimiter is not None:
            params["delimiter"] = delimiter
        if start_after is not None:
            params["startOffset"] = start_after
        if versions:
            params["versions"] = "true"
        url = self.http.bucket_url(self.bucket)
        while True:
            try:
                page = await self.http.json(
                    "GET",
                    url,
                    key=None,
                    idempotent=True,
                    params=params,
                    what="list",
                    not_found=_BucketMissing,
                )
            except _BucketMissing as exc:
                raise BackendError(f"list: GCS bucket {self.bucket!r} does not exist") from exc
            merged: builtins.list[tuple[bytes, str, object]] = [
                (str(it["name"]).encode(), "item", it) for it in page.get("items", [])
            ]
            merged += [(str(p).encode(), "prefix", str(p)) for p in page.get("prefixes", [])]
            # Stable: the server's order among versions of one name is kept.
            merged.sort(key=lambda m: m[0])
            for _, kind, value in merged:
                yield kind, value
            token = page.get("nextPageToken")
            if not token:
                return
            params["pageToken"] = str(token)

    async def _any_after(self, under: str, start_after: str, versions: bool) -> bool:
        async for kind, value in self._pages(under, start_after, None, versions, 10):
            if (
                kind == "item"
                and isinstance(value, dict)
                and str(value["name"]).encode() > start_after.encode()
            ):
                return True
        return False

    def can_copy_from(self, source: Provider) -> bool:
        # rewrite works across buckets that this provider's credentials can reach.
        return isinstance(source, GcsProvider) and _account(source) == _account(self)

    async def copy(self, source: Provider, src: str, dst: str, opts: CopyOptions) -> ObjectAttrs:
        assert isinstance(source, GcsProvider)
        origin = source
        gen = await self.precondition_generation(dst, opts.preconditions)
        params: dict[str, str] = {}
        if opts.version is not None:
            params["sourceGeneration"] = opts.version
        if gen is not None:
            params["ifGenerationMatch"] = gen
        r = opts.replace
        body = (
            {}
            if r is None
            else resource_metadata(r.content_type, r.cache_control, r.content_disposition, r.metadata)
        )
        url = (
            f"{self.http.object_url(origin.bucket, src)}/rewriteTo/b/"
            f"{quote(self.bucket, safe='')}/o/{quote(dst, safe='')}"
        )
        data = json.dumps(body).encode()
        while True:
            res = await self.http.json(
                "POST",
                url,
                key=src,
                version=opts.version,
                idempotent=gen is not None,
                params=params,
                data=data,
                headers={"Content-Type": "application/json; charset=UTF-8"},
                what="copy",
            )
            if res.get("done") or not res.get("rewriteToken"):
                break
            params["rewriteToken"] = str(res["rewriteToken"])
        resource = res.get("resource")
        if not isinstance(resource, dict):
            raise BackendError("GCS did not return the copied object", key=dst)
        return attrs_from_resource(resource, versioned=self.versioned)

    async def delete_many(self, keys: Sequence[str]) -> builtins.list[BucketError | None]:
        return await delete_each(self.delete, keys)

    async def sign_post(self, key: str, policy: PostPolicy) -> UploadForm:
        from ._post import sign_post_v4

        email, pem = self._signing_key(key)
        base = self.http.api_root if self.http.is_emulator else GCS_PUBLIC_ROOT
        return sign_post_v4(
            base_url=base, bucket=self.bucket, key=key, policy=policy, client_email=email, private_key_pem=pem
        )

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
        if content_length is not None:
            raise NotSupported(
                "GCS signed URLs cannot fix the upload size; use signed_upload_form(max_size=...)", key=key
            )
        email, pem = self._signing_key(key)
        base = self.http.api_root if self.http.is_emulator else GCS_PUBLIC_ROOT
        extra = {"generation": version} if version is not None and method == "GET" else None
        return sign_v4(
            base_url=base,
            bucket=self.bucket,
            key=key,
            method=method,
            ttl=ttl,
            client_email=email,
            private_key_pem=pem,
            extra_query=extra,
            content_type=content_type if method == "PUT" else None,
        )

    def _signing_key(self, key: str) -> tuple[str, str]:
        data: Mapping[str, Any] = self.http.storage.token.service_data or {}
        email, pem = data.get("client_email"), data.get("private_key")
        if not isinstance(email, str) or not isinstance(pem, str) or not email or not pem:
            raise NotSupported(
                "signed URLs need a service-account key: set the bucket's service_file option "
                "or GOOGLE_APPLICATION_CREDENTIALS to a service-account JSON file",
                key=key,
            )
        return email, pem

    async def aclose(self) -> None:
        await self.http.aclose()


class _BucketMissing(BucketError):
    """Internal: a 404 on a bucket-level request."""


def _float_option(options: Mapping[str, object], name: str, default: float) -> float:
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise InvalidArgument(f"gs:// option {name} must be a positive number of seconds, got {value!r}")
    return float(value)


def create(settings: BucketSettings, name: str, config: BucketConfig) -> Provider:
    """``gs://cloud-name[?endpoint=URL]``; the cloud name defaults to the bucket name.

    A URL's ``prefix=`` never reaches here: config turns it into ``key_prefix``.
    """
    parts = urlsplit(settings.url)
    query = parse_qs(parts.query)
    unknown = set(query) - {"endpoint"}
    if unknown:
        raise InvalidArgument(f"bucket {name!r}: unknown gs:// URL parameters {sorted(unknown)}")
    endpoint = query.get("endpoint", [None])[0]
    if endpoint is not None and not endpoint.startswith(("http://", "https://")):
        raise InvalidArgument(f"bucket {name!r}: endpoint must be an http(s) URL, got {endpoint!r}")
    opts = settings.options
    service_file = opts.get("service_file")
    if service_file is not None and not isinstance(service_file, str):
        raise InvalidArgument(f"bucket {name!r}: service_file must be a path string")
    retries = opts.get("retries", 6)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 1:
        raise InvalidArgument(f"bucket {name!r}: retries must be a positive int, got {retries!r}")
    traces = opts.get("trace_configs", ())
    if not isinstance(traces, list | tuple) or not all(isinstance(t, aiohttp.TraceConfig) for t in traces):
        raise InvalidArgument(f"bucket {name!r}: trace_configs must be a list of aiohttp.TraceConfig")
    http = HttpSettings(
        endpoint=endpoint.rstrip("/") if endpoint else None,
        service_file=service_file,
        connect_timeout=_float_option(opts, "connect_timeout", 10.0),
        read_timeout=_float_option(opts, "read_timeout", 60.0),
        request_timeout=_float_option(opts, "request_timeout", 120.0),
        retry=RetryPolicy(attempts=retries),
        trace_configs=tuple(traces),
    )
    return GcsProvider(parts.netloc or name, versioned=config.versioned, http=http)
