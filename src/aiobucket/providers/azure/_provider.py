"""Azure Blob Storage over our own HTTP path: ``az://<container>?account=NAME[&endpoint=...]``.

The request path is the one S3 uses too (``_http/``): one aiohttp session per provider
(``_http/transport.py``: no automatic Content-Type, ``auto_decompress`` off, the URL sent
exactly as signed, writes on the wire shielded) and one retry policy
(``_http/retry.py`` with ``AZURE_RULES``: 5xx, among them 503 ServerBusy and 500
OperationTimedOut, 429 and connection errors retried with full-jitter backoff that a
cancel ends at once).
Requests are authorised, in this order, by SharedKey (``_sign.py``, an account key),
a SAS token appended to the query, or an AAD bearer token from azure-identity's
``DefaultAzureCredential`` (``_auth.py``).

Semantics (what differs from S3 is said here once):

* Uploads: one Put Blob when the object fits in one part, else staged blocks and one
  Put Block List (``_blocks.py``). Every body carries Content-MD5, which Azure checks;
  the whole object's MD5 is stored (``x-ms-blob-content-md5``), so whole reads are
  verified against it (``ObjectAttrs.md5``; Azure has no CRC32C, ``crc32c`` is None).
* Preconditions: ``If-None-Match: *`` (409 BlobAlreadyExists) and ``If-Match``
  (412 ConditionNotMet) both become PreconditionFailed. After an attempt that may
  have been applied, such an answer is resolved by the stored MD5: ours is success,
  another is PreconditionFailed, unknowable is OutcomeUnknown.
* Reads: ranges go as ``x-ms-range``; a resume is pinned to the ETag (If-Match).
* Keys: a path segment ending in '.' and a backslash are refused (InvalidArgument):
  Azure drops trailing dots and turns '\\' into '/', so such a key would name another
  blob (Capabilities.key_restrictions).
* Listing: names in UTF-16 code-unit order, Azure's (Capabilities.listing_order).
  ``start_after`` under the prefix is sent as List Blobs' ``startFrom`` (inclusive,
  x-ms-version 2026-02-06), and the entries up to it are skipped here too: servers that
  predate it ignore it (Azurite 3.35), and one that refuses it (400) is listed from the
  prefix's start from then on.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import builtins
import contextlib
import functools
import hashlib
import ipaddress
import re
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from yarl import URL

from ...errors import (
    BackendError,
    BucketError,
    ConnectionLost,
    InvalidArgument,
    NotModified,
    NotSupported,
    ObjectChanged,
    ObjectNotFound,
    OutcomeUnknown,
    PreconditionFailed,
    RangeNotSatisfiable,
)
from ...types import BucketConfig, ListEntry, ObjectAttrs, UploadForm
from .._http.body import Body, BytesBody, EmptyBody
from .._http.headers import (
    format_http_date,
    parse_content_range,
    precondition_headers,
    quote_etag,
    unquote_etag,
)
from .._http.headers import http_date as _parse_http_date
from .._http.retry import RetryPolicy
from .._http.transport import Response, Transport, ssl_context
from ..base import (
    Capabilities,
    CopyOptions,
    GetOptions,
    MiB,
    PostPolicy,
    Provider,
    PutOptions,
    check_read,
)
from ._auth import Auth, SharedKeyAuth, make_auth
from ._errors import AZURE_RULES, error_for
from ._settings import AzureSettings, parse_settings
from ._sign import DelegationKey
from ._xml import md5_hex, parse_delegation_key, parse_list, utf16_key

if TYPE_CHECKING:
    from ...config import BucketSettings
    from ._blocks import Upload

__all__ = [
    "API_VERSION",
    "CAPABILITIES",
    "MAX_BLOCK",
    "MAX_PUT_BLOB",
    "START_FROM_VERSION",
    "AzureProvider",
    "check_key",
    "create",
    "start_from",
]

API_VERSION = "2025-01-05"
"""x-ms-version of every request (but a List Blobs with ``startFrom``) and ``sv`` of every SAS."""
START_FROM_VERSION = "2026-02-06"
"""The first x-ms-version whose List Blobs takes ``startFrom`` (azure-storage-blob 12.31 sends
it; Azure SDK for Java 12.33 added it with service version 2026-02-06)."""

MAX_BLOCK = 4000 * MiB
"""Put Block's largest block (x-ms-version 2019-12-12 and later): 50,000 of them make
Azure's largest block blob, about 190.7 TiB
(https://learn.microsoft.com/azure/storage/blobs/scalability-targets)."""
MAX_PUT_BLOB = 5000 * MiB
"""Put Blob's largest body (2019-12-12 and later); the writer's single puts are at most
one part, so below MAX_BLOCK (https://learn.microsoft.com/rest/api/storageservices/put-blob)."""

CAPABILITIES = Capabilities(
    versioning=True,  # where the storage account has blob versioning on (an account setting)
    conditional_put=True,
    signed_urls=True,
    signed_forms=False,  # no POST policy on Azure
    signed_url_length=False,  # a SAS cannot fix a size
    server_side_copy=True,
    parallel_parts=True,
    min_part_size=1,
    max_parts=50_000,  # blocks in a block blob
    max_part_size=MAX_BLOCK,
    default_part_size=8 * MiB,
    default_concurrency=8,
    delete_batch=256,  # Blob Batch's limit
    listing_order="utf-16",
    key_restrictions=("segment_ends_with_dot", "backslash"),
)

Query = list[tuple[str, str]]
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_UNQUOTED = re.compile(r"[A-Za-z0-9_.~/-]*")
"""Keys that ``quote(key, safe="/~")`` leaves as they are: skip it (most keys)."""


def check_key(key: str) -> None:
    """Refuse keys Azure would store under another name."""
    if "\\" in key:
        raise InvalidArgument(
            "Azure Blob Storage turns '\\' into '/' in blob names, so this key would name another "
            "blob; use '/' or another character",
            key=key,
        )
    if key.endswith(".") or "./" in key:  # a path segment ending in '.'
        raise InvalidArgument(
            "Azure Blob Storage drops a '.' at the end of a path segment, so this key would name "
            "another blob; end the segment with another character",
            key=key,
        )


def _ip_style(host: str | None) -> bool:
    if host is None or host == "localhost":
        return True
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def check_metadata(metadata: Mapping[str, str]) -> None:
    """Azure metadata names are C# identifiers: refuse others before any I/O."""
    for name in metadata:
        if not _IDENTIFIER.match(name):
            raise InvalidArgument(
                f"metadata key {name!r}: Azure Blob Storage takes only C# identifiers as metadata "
                "names (letters, digits and '_', not starting with a digit); use '_' instead of '-'"
            )


http_date = functools.lru_cache(maxsize=256)(_parse_http_date)
"""Last-Modified parsed once per distinct value (they repeat within a second; datetimes are
immutable, so a cached one is safe to share)."""

_date_cache: tuple[int, str] = (0, "")


def _now_http_date() -> str:
    """x-ms-date, formatted once per second (it has one-second resolution)."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, format_datetime(datetime.fromtimestamp(now, UTC), usegmt=True))
    return _date_cache[1]


def start_from(prefix: str, start_after: str | None, delimiter: str | None) -> str | None:
    """Where a listing after ``start_after`` can begin on the server (List Blobs'
    ``startFrom``, inclusive), or None to list from the prefix's start.

    Only a name under ``prefix``: Azure documents startFrom as a path within the listing.
    With a delimiter Azure takes one level only, so the name is cut at the first delimiter
    after the prefix: still at or before ``start_after``, and the provider skips up to it."""
    if not start_after or not start_after.startswith(prefix):
        return None
    if delimiter:
        cut = start_after.find(delimiter, len(prefix))
        if cut >= 0:
            start_after = start_after[:cut]
    return start_after if len(start_after) > len(prefix) else None


def _newest_first(group: list[ListEntry]) -> list[ListEntry]:
    return sorted(group, key=lambda e: e.version or "", reverse=True)


def _md5_b64(hex_md5: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_md5)).decode()


def object_headers(opts: PutOptions) -> dict[str, str]:
    """A blob's properties and metadata as request headers (``x-ms-blob-*``: the plain
    Content-Type of a Put Blob would be the request's own, and aiohttp never adds one)."""
    check_metadata(opts.metadata)
    headers = {"x-ms-blob-content-type": opts.content_type}
    if opts.cache_control is not None:
        headers["x-ms-blob-cache-control"] = opts.cache_control
    if opts.content_disposition is not None:
        headers["x-ms-blob-content-disposition"] = opts.content_disposition
    if opts.content_encoding is not None:
        headers["x-ms-blob-content-encoding"] = opts.content_encoding
    for k, v in opts.metadata.items():
        headers["x-ms-meta-" + k.lower()] = v
    return headers


def _metadata(headers: Any) -> dict[str, str]:
    """The ``x-ms-meta-*`` headers by lower-cased name. Most answers have none: one search
    of the joined names (in C) spares a Python loop over every header then."""
    if "x-ms-meta-" not in "\n".join(headers.keys()).lower():
        return {}
    return {k[10:].lower(): v for k, v in headers.items() if k[:10].lower() == "x-ms-meta-"}


def object_attrs(key: str, headers: Any, size: int) -> ObjectAttrs:
    # A ranged read's Content-MD5 would be the range's: the blob's is x-ms-blob-content-md5.
    md5 = md5_hex(headers.get("x-ms-blob-content-md5")) or (
        None if "content-range" in headers else md5_hex(headers.get("content-md5"))
    )
    return ObjectAttrs(
        name=key,
        size=size,
        etag=unquote_etag(headers.get("etag")),
        content_type=headers.get("content-type") or "application/octet-stream",
        version=headers.get("x-ms-version-id") or None,
        cache_control=headers.get("cache-control"),
        content_disposition=headers.get("content-disposition"),
        metadata=_metadata(headers),
        last_modified=http_date(headers.get("last-modified")),
        md5=md5,
        crc32c=None,
        content_encoding=headers.get("content-encoding"),
    )


class AzureProvider:
    capabilities = CAPABILITIES

    def __init__(self, settings: AzureSettings) -> None:
        self.settings = settings
        self.container = settings.container
        self.policy = RetryPolicy(
            settings.max_attempts, settings.backoff_base, settings.backoff_max, rules=AZURE_RULES
        )
        self.transport = Transport(
            pool=settings.max_pool_connections,
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
        )
        endpoint = URL(settings.endpoint)
        self._origin = str(endpoint.origin())
        self._scheme, self._authority = endpoint.scheme, endpoint.raw_authority
        self._base_path = endpoint.raw_path.rstrip("/")
        if not self._base_path and _ip_style(endpoint.host):
            # An emulator at an IP address or localhost (Azurite) names the account in the
            # path, as the SDK assumes for such endpoints.
            self._base_path = "/" + settings.account
        self.auth: Auth = make_auth(settings)
        self._sign = self.auth.sign if isinstance(self.auth, SharedKeyAuth) else None
        """SharedKey signs without I/O: called directly, not awaited (one coroutine fewer)."""
        self._tls_pending = settings.ca_bundle is not None
        self._delegation: tuple[datetime, datetime, DelegationKey] | None = None
        self._start_from_taken = True
        """False once the service refused a List Blobs with startFrom (400)."""

    # -- the one request path ------------------------------------------------------------

    def path_of(self, key: str | None, container: str | None = None) -> str:
        """The URL path as sent and signed: account path, container, percent-encoded key."""
        path = f"{self._base_path}/{container or self.container}"
        if key is None:
            return path
        return path + "/" + (key if _UNQUOTED.fullmatch(key) else quote(key, safe="/~"))

    def url_of(self, key: str) -> str:
        return self._origin + self.path_of(key)

    async def send(
        self,
        op: str,
        method: str,
        key: str | None,
        *,
        query: Query | None = None,
        headers: dict[str, str] | None = None,
        body: memoryview | bytes | None = None,
        stream: bool = False,
        shield: bool = False,
        path: str | None = None,
        version: str = API_VERSION,
    ) -> Response:
        """Authorise and send one request with retries; returns the final response (any status).

        Every attempt gets a fresh ``x-ms-date`` and signature over exactly the URL sent.
        """
        if self._tls_pending:
            await self._load_tls()
        path = path or self.path_of(key)
        query = query or []
        base_headers = headers or {}
        transport, auth, sign = self.transport, self.auth, self._sign
        length = str(len(body)) if body is not None else ("0" if method in ("PUT", "POST") else None)

        async def attempt() -> Response:
            h = {
                **base_headers,
                "x-ms-date": _now_http_date(),
                "x-ms-version": version,
            }
            if length is not None:
                h["content-length"] = length
            if sign is not None:
                q = sign(method, path, query, h)
            else:
                q = await auth.authorize(method, path, query, h)
            url = URL.build(
                scheme=self._scheme,
                authority=self._authority,
                path=path,
                query_string="&".join(f"{k}={v}" for k, v in q) if q else "",
                encoded=True,
            )
            resp = await transport.send(method, url, h, body, stream=stream, shield=shield)
            if resp.status >= 300 and not resp.code:
                resp.code = resp.headers.get("x-ms-error-code", "")
            return resp

        return await self.policy.call(attempt, f"{op} ({method} {self.container})")

    async def _load_tls(self) -> None:
        """The ``ca_bundle`` option's CAs, loaded once, off the event loop."""
        bundle = self.settings.ca_bundle
        try:
            self.transport.ssl = await asyncio.to_thread(ssl_context, bundle)
        except OSError as exc:  # ssl.SSLError included
            raise InvalidArgument(
                f"cannot load the CA certificates of the ca_bundle option ({bundle!r}): {exc}"
            ) from None
        self._tls_pending = False

    def fail(self, resp: Response, op: str, key: str | None, version: str | None = None) -> BucketError:
        return error_for(resp, op=op, container=self.container, key=key, version=version)

    # -- objects ---------------------------------------------------------------------------

    async def put(self, key: str, data: bytes, opts: PutOptions) -> ObjectAttrs:
        check_key(key)
        view = memoryview(data).cast("B")
        if view.nbytes > MAX_PUT_BLOB:
            raise InvalidArgument(
                f"a single Put Blob takes at most {MAX_PUT_BLOB} bytes, not {view.nbytes}; "
                "upload it in parts (a part_size of at most 4000 MiB)",
                key=key,
            )
        md5 = hashlib.md5(view, usedforsecurity=False) if view.nbytes < MiB else None
        if md5 is None:
            md5 = await asyncio.to_thread(hashlib.md5, view, usedforsecurity=False)
        pre = opts.preconditions
        headers = {
            "x-ms-blob-type": "BlockBlob",
            "content-md5": binascii.b2a_base64(md5.digest(), newline=False).decode(),
            **object_headers(opts),
            **precondition_headers(pre),
        }
        resp = await self.send("upload", "PUT", key, headers=headers, body=view, shield=True)
        if resp.status < 300:  # the common case, without another coroutine
            return self.written_attrs(key, resp, opts, view.nbytes, md5.hexdigest())
        return await self.written("upload", key, resp, opts, view.nbytes, md5.hexdigest())

    async def written(
        self, op: str, key: str, resp: Response, opts: PutOptions, size: int, md5: str
    ) -> ObjectAttrs:
        """The attrs of a write (Put Blob or Put Block List) from its answer, resolving a
        refused condition after a possibly-applied attempt by the stored MD5."""
        if resp.status in (409, 412) and opts.preconditions and resp.maybe_applied:
            return await self.resolve(op, key, md5, resp)
        if resp.status >= 300:
            raise self.fail(resp, op, key)
        return self.written_attrs(key, resp, opts, size, md5)

    @staticmethod
    def written_attrs(key: str, resp: Response, opts: PutOptions, size: int, md5: str) -> ObjectAttrs:
        """The attrs of a successful write: what we sent, and the answer's ETag and time."""
        h = resp.headers
        return ObjectAttrs(
            name=key,
            size=size,
            etag=unquote_etag(h.get("etag")),
            content_type=opts.content_type,
            version=h.get("x-ms-version-id") or None,
            cache_control=opts.cache_control,
            content_disposition=opts.content_disposition,
            metadata=dict(opts.metadata),
            last_modified=http_date(h.get("last-modified")) or datetime.now(UTC),
            md5=md5,
            crc32c=None,
            content_encoding=opts.content_encoding,
        )

    async def resolve(self, op: str, key: str, ours: str | None, resp: Response) -> ObjectAttrs:
        """A conditional write was refused after an attempt that may have been applied:
        is the stored blob ours (by its MD5)? Yes is success; another blob is
        PreconditionFailed; not knowable is OutcomeUnknown."""
        try:
            current: ObjectAttrs | None = await self.head(key)
        except ObjectNotFound:
            current = None
        tries = f"after {resp.attempts} attempts (an earlier one may have been applied)"
        if current is not None and ours is not None and current.md5 is not None:
            if current.md5 == ours:
                return current
            raise PreconditionFailed(
                f"{op}: precondition failed {tries}; the blob stored now is not ours (MD5 {current.md5})",
                key=key,
            )
        found = "the blob is gone" if current is None else "its MD5 is not known"
        raise OutcomeUnknown(
            f"{op}: the write may or may not have been applied: Azure answered "
            f"{resp.code or resp.status} {tries}, and {found}; read the object to find out",
            key=key,
        )

    async def start_multipart(self, key: str, opts: PutOptions) -> Upload:
        from ._blocks import Upload

        check_key(key)
        return Upload(self, key, opts)

    async def head(self, key: str, version: str | None = None, *, checksums: bool = False) -> ObjectAttrs:
        # Azure returns the stored MD5 on every HEAD: ``checksums`` asks for nothing more.
        return await self._head(key, version)

    async def _head(self, key: str, version: str | None = None, if_match: str | None = None) -> ObjectAttrs:
        check_key(key)
        headers = {"if-match": quote_etag(if_match)} if if_match is not None else None
        query = [("versionid", quote(version, safe=""))] if version is not None else None
        resp = await self.send("attrs", "HEAD", key, query=query, headers=headers)
        if resp.status >= 300:
            raise self.fail(resp, "attrs", key, version)
        self._check_copy_state(resp, key)
        attrs = object_attrs(key, resp.headers, int(resp.headers.get("content-length") or 0))
        self._check_version(attrs, version, key)
        return attrs

    @staticmethod
    def _check_version(attrs: ObjectAttrs, version: str | None, key: str) -> None:
        """A server that ignores ``versionid`` (an account without versioning, Azurite)
        answers with the current blob: never hand that out as the version asked for."""
        if version is not None and attrs.version != version:
            raise ObjectNotFound(
                f"object version not found: the server answered with version {attrs.version!r} "
                "(is blob versioning on in this storage account?)",
                key=key,
                version=version,
            )

    @staticmethod
    def _check_copy_state(resp: Response, key: str) -> None:
        status = resp.headers.get("x-ms-copy-status")
        if status in ("failed", "aborted"):
            raise BackendError(
                f"the blob is the destination of a copy that {status}: "
                f"{resp.headers.get('x-ms-copy-status-description', '')}",
                key=key,
            )

    async def get(
        self, key: str, opts: GetOptions, *, reread: bool = True
    ) -> tuple[ObjectAttrs, Body | BytesBody | EmptyBody]:
        """``reread``: whether an answer that contradicts the object's state (it changed
        while being opened) may be asked again once."""
        check_key(key)
        if opts.length == 0:
            attrs = await self._head(key, opts.version, opts.if_match)
            check_read(attrs, opts, key)
            return attrs, EmptyBody()
        headers: dict[str, str] = {}
        if opts.if_match is not None:
            headers["if-match"] = quote_etag(opts.if_match)
        if opts.if_none_match is not None:
            if opts.if_none_match != "*":  # Azure: 400 UnsatisfiableCondition; check_read decides
                headers["if-none-match"] = quote_etag(opts.if_none_match)
        elif opts.if_modified_since is not None:
            headers["if-modified-since"] = format_http_date(opts.if_modified_since)
        ranged = bool(opts.offset) or opts.length is not None
        if ranged:
            end = "" if opts.length is None else str(opts.offset + opts.length - 1)
            headers["x-ms-range"] = f"bytes={opts.offset}-{end}"
        query = [("versionid", quote(opts.version, safe=""))] if opts.version is not None else None
        resp = await self.send("download", "GET", key, query=query, headers=headers, stream=True)
        if resp.status == 416 and not opts.offset:
            # bytes=0-N of an empty blob is 416 InvalidRange: that blob is empty.
            attrs = await self._head(key, opts.version, opts.if_match)
            if attrs.size:
                if reread:
                    return await self.get(key, opts, reread=False)
                raise ObjectChanged("the object changed while it was being opened", key=key)
            check_read(attrs, opts, key)
            return attrs, EmptyBody()
        if resp.status == 304:
            attrs = await self.head(key, opts.version)
            check_read(attrs, replace(opts, offset=0, length=None), key)
            if reread:
                return await self.get(key, opts, reread=False)
            err = NotModified("not modified: the server says the caller's copy is current", key=key)
            err.attrs = attrs
            raise err
        if resp.status >= 300:
            if resp.status == 416 and opts.offset and opts.if_match is not None:
                raise ConnectionLost(
                    f"the object ends before offset {opts.offset}, where the earlier answer said it went on",
                    key=key,
                )
            if resp.status == 416:
                raise RangeNotSatisfiable(
                    f"offset {opts.offset} is at or past the end of the object", key=key
                )
            raise self.fail(resp, "download", key, opts.version)
        raw = resp.raw
        try:
            attrs, body = self._opened(key, opts, resp, ranged)
            check_read(attrs, opts, key)
        except BaseException:
            if raw is not None:
                raw.close()
            raise
        return attrs, body

    def _opened(
        self, key: str, opts: GetOptions, resp: Response, ranged: bool
    ) -> tuple[ObjectAttrs, Body | BytesBody]:
        """Check a GET answer is the bytes we asked for, of the object we pinned."""
        h = resp.headers
        self._check_copy_state(resp, key)
        length = h.get("content-length")
        expected = int(length) if length is not None else None
        if resp.status == 206:
            span = parse_content_range(h.get("content-range"))
            if span is None:
                # Azurite answers a range starting at the size with 206 and no Content-Range
                # (quirk range_at_size_206); Azure answers 416.
                total = h.get("x-ms-blob-content-length")  # not sent by Azure: fall back
                if expected == 0 and opts.offset:
                    raise RangeNotSatisfiable(
                        f"offset {opts.offset} is at or past the end of the object", key=key
                    )
                raise ConnectionLost(
                    f"the server answered the range read from {opts.offset} without a Content-Range "
                    f"({total!r})",
                    key=key,
                )
            if span[0] != opts.offset or (expected is not None and expected != span[1] - span[0] + 1):
                raise ConnectionLost(
                    f"the server answered the range read from {opts.offset} with "
                    f"Content-Range {h.get('content-range')!r}",
                    key=key,
                )
            size = span[2]
        else:
            size = expected or 0
            if ranged and opts.offset:
                raise ConnectionLost(
                    f"the server ignored the range read from {opts.offset} and sent the whole object",
                    key=key,
                )
        attrs = object_attrs(key, h, size)
        if opts.if_match is not None and attrs.etag != opts.if_match:
            raise ObjectChanged(f"object changed: etag is now {attrs.etag!r}", key=key)
        self._check_version(attrs, opts.version, key)
        limit = opts.length if resp.status == 200 and ranged else None
        if resp.raw is None:
            return attrs, BytesBody(resp.body if limit is None else resp.body[:limit])
        return attrs, Body(resp.raw, key, expected, limit)

    async def delete(self, key: str, version: str | None = None) -> None:
        check_key(key)
        query = [("versionid", quote(version, safe=""))] if version is not None else None
        resp = await self.send("remove", "DELETE", key, query=query, shield=True)
        if resp.status >= 300 and not (resp.status == 404 and resp.maybe_applied):
            raise self.fail(resp, "remove", key, version)

    async def delete_many(self, keys: Sequence[str]) -> builtins.list[BucketError | None]:
        from ._batch import delete_batch

        return await delete_batch(self, keys)

    async def list(
        self,
        prefix: str,
        *,
        start_after: str | None = None,
        delimiter: str | None = None,
        versions: bool = False,
        limit: int | None = None,
    ) -> AsyncIterator[ListEntry]:
        params: dict[str, str] = {
            "restype": "container",
            "comp": "list",
            "maxresults": str(min(max(limit or 5000, 1), 5000)),
        }
        if prefix:
            params["prefix"] = prefix
        if delimiter is not None:
            params["delimiter"] = delimiter
        if versions:
            params["include"] = "versions"
        after = utf16_key(start_after) if start_after else None
        version = API_VERSION
        start = start_from(prefix, start_after, delimiter)
        if start is not None:
            params["startFrom"] = start
            version = START_FROM_VERSION
        group: builtins.list[ListEntry] = []
        pending: asyncio.Task[bytes] | None = asyncio.ensure_future(self._page(dict(params), version))
        try:
            while pending is not None:
                body = await pending
                pending = None
                page = parse_list(body, versions=versions)
                if page.next_marker:
                    params["marker"] = page.next_marker
                    pending = asyncio.ensure_future(self._page(dict(params), version))
                for entry in page.entries:
                    # startFrom is inclusive, and servers that predate it (Azurite 3.35)
                    # ignore it: the entries up to start_after are skipped here.
                    if after is not None and utf16_key(entry.name) <= after:
                        continue
                    if not versions:
                        yield entry
                        continue
                    # Azure lists a blob's versions oldest first (ids are timestamps), maybe
                    # across pages; the contract wants newest first: one name at a time.
                    if group and group[0].name != entry.name:
                        for e in _newest_first(group):
                            yield e
                        group.clear()
                    group.append(entry)
            for e in _newest_first(group):
                yield e
        finally:
            if pending is not None:
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pending

    async def _page(self, params: dict[str, str], version: str = API_VERSION) -> bytes:
        if "startFrom" in params and not self._start_from_taken:
            del params["startFrom"]
            version = API_VERSION
        query = [(k, quote(v, safe="")) for k, v in params.items()]
        resp = await self.send("list", "GET", None, query=query, version=version)
        if resp.status == 400 and "startFrom" in params:
            # A service or gateway that refuses startFrom (or its version): list from the
            # prefix's start, here and from now on; the skip after start_after stays exact.
            self._start_from_taken = False
            return await self._page(params)
        if resp.status >= 300:
            raise self.fail(resp, "list", None)
        return resp.body

    # -- copies ------------------------------------------------------------------------------

    def can_copy_from(self, source: Provider) -> bool:
        """Copy Blob reads any container of the same account and endpoint with our credential."""
        if not isinstance(source, AzureProvider):
            return False
        a, b = self.settings, source.settings
        return (a.endpoint, a.account, a.account_key, a.sas_token) == (
            b.endpoint,
            b.account,
            b.account_key,
            b.sas_token,
        )

    async def copy(self, source: Provider, src: str, dst: str, opts: CopyOptions) -> ObjectAttrs:
        from ._copy import copy

        assert isinstance(source, AzureProvider)
        return await copy(self, source, src, dst, opts)

    # -- signing and closing ---------------------------------------------------------------------

    async def sign_post(self, key: str, policy: PostPolicy) -> UploadForm:
        raise NotSupported(
            "Azure Blob Storage has no POST upload policy, and a SAS cannot limit size or "
            "Content-Type; use signed_upload_url() (the browser sends x-ms-blob-type: BlockBlob)",
            key=key,
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
        not_exists: bool = False,
    ) -> str:
        if method not in ("GET", "PUT"):
            raise InvalidArgument(f"cannot sign a {method!r} URL; use GET or PUT", key=key)
        check_key(key)
        if method == "PUT" and (content_length is not None or content_type is not None):
            what = "content_length" if content_length is not None else "content_type"
            raise NotSupported(
                f"a signed PUT URL cannot fix {what} on Azure (a SAS has no size or Content-Type "
                "limit); signed_upload_form is not available either",
                key=key,
            )
        if version is not None:
            if method != "GET":
                raise InvalidArgument("only a download URL can name a version", key=key)
            token = await self.auth.version_sas(self.container, key, version, ttl, API_VERSION)
            return self.url_of(key) + "?versionid=" + quote(version, safe="") + "&" + token
        # Create without write (sp=c) lets the holder write a new blob only: Put Blob over an
        # existing one answers 403 AuthorizationPermissionMismatch, and Put Block / Put Block
        # List need w (https://learn.microsoft.com/rest/api/storageservices/create-service-sas
        # #permissions-for-a-directory-container-or-blob).
        permission = "r" if method == "GET" else "c" if not_exists else "cw"
        token = await self.auth.sas(self.container, key, permission, ttl, API_VERSION, self._delegation_key)
        return self.url_of(key) + "?" + token

    async def _delegation_key(self, start: datetime, expiry: datetime) -> DelegationKey:
        """Get User Delegation Key (AAD only), valid for 7 days and reused while it covers
        ``expiry``. https://learn.microsoft.com/rest/api/storageservices/get-user-delegation-key"""
        cached = self._delegation
        if cached is not None and cached[0] <= start and cached[1] >= expiry:
            return cached[2]
        key_expiry = start + timedelta(days=7)
        body = (
            '<?xml version="1.0" encoding="utf-8"?><KeyInfo>'
            f"<Start>{start:%Y-%m-%dT%H:%M:%SZ}</Start><Expiry>{key_expiry:%Y-%m-%dT%H:%M:%SZ}</Expiry>"
            "</KeyInfo>"
        ).encode()
        resp = await self.send(
            "sign url",
            "POST",
            None,
            query=[("restype", "service"), ("comp", "userdelegationkey")],
            body=body,
            path=self._base_path + "/",
        )
        if resp.status >= 300:
            raise self.fail(resp, "sign url", None)
        key = parse_delegation_key(resp.body)
        self._delegation = (start, key_expiry, key)
        return key

    async def aclose(self) -> None:
        try:
            await self.transport.aclose()
        finally:
            await self.auth.aclose()


def create(settings: BucketSettings, name: str, config: BucketConfig) -> Provider:
    """``az://<container>?account=NAME&endpoint=...`` (see the module docs).

    ``versioned=True`` needs blob versioning on in the storage account (an account setting,
    like S3 bucket versioning it is not turned on from here)."""
    return AzureProvider(parse_settings(settings, name))
