"""S3 wire details: headers in and out, digests, ranges, and streamed response bodies.

Invariants:

* ETags are unquoted on the way in and quoted on the way out.
* ``ObjectAttrs.md5`` is set only when the ETag is an MD5 we can vouch for: 32 hex
  digits (a single-part upload) and no SSE-KMS / SSE-C encryption, whose ETags are
  not MD5s. ``crc32c``, ``crc32`` and ``crc64nvme`` only from a full-object
  ``x-amz-checksum-<name>``: typed FULL_OBJECT, or untyped on a single-part object
  (a multipart object's untyped checksum may be COMPOSITE, a checksum of its parts'
  checksums: moto 5.2 sends those without "-N" or a type).
* ETags compare case-insensitively (``base.same_etag``).
* A streamed body is counted: a body that ends before its Content-Length is
  ConnectionLost, never a short object, and ``aclose()`` always releases the
  connection (back to the pool after EOF, dropped otherwise).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime

import aiohttp

from ..._checksum import Crc32c, crc32c_b64
from ...errors import BackendError, ConnectionLost
from ...types import ObjectAttrs, Preconditions
from ..base import PutOptions
from ._errors import BODY_ERRORS

__all__ = [
    "Body",
    "BytesBody",
    "EmptyBody",
    "digests",
    "object_attrs",
    "object_headers",
    "parse_content_range",
    "precondition_headers",
    "put_attrs",
    "quote_etag",
    "unquote_etag",
    "vouched_md5",
]

CHUNK = 1024 * 1024
_HASH_IN_THREAD = 1024 * 1024  # hashlib releases the GIL; below this a thread hop costs more
_HEX = frozenset("0123456789abcdef")
_HEX_ANY_CASE = frozenset("0123456789abcdefABCDEF-")
_MONTH_NAMES = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec"
_MONTHS = {m: i for i, m in enumerate(_MONTH_NAMES.split(), 1)}


def quote_etag(etag: str) -> str:
    """The ETag as a header value: quoted, and a hex ETag ("-N" suffix allowed) in lower
    case, as S3 makes them and compares them (byte for byte)."""
    bare = etag.strip('"')
    if not _HEX.issuperset(bare) and _HEX_ANY_CASE.issuperset(bare):
        bare = bare.lower()
    return f'"{bare}"'


def unquote_etag(etag: object) -> str:
    return str(etag or "").strip('"')


def version_of(v: str | None) -> str | None:
    return None if not v or v == "null" else v


def is_md5(etag: str) -> bool:
    return len(etag) == 32 and _HEX.issuperset(etag)


def http_date(raw: str | None) -> datetime | None:
    """An IMF-fixdate ("Wed, 21 Oct 2015 07:28:00 GMT") without email.utils' slow path."""
    if not raw:
        return None
    try:
        if len(raw) == 29 and raw.endswith(" GMT"):
            return datetime(
                int(raw[12:16]), _MONTHS[raw[8:11]], int(raw[5:7]),
                int(raw[17:19]), int(raw[20:22]), int(raw[23:25]), tzinfo=UTC,
            )  # fmt: skip
        return parsedate_to_datetime(raw).astimezone(UTC)
    except (KeyError, ValueError, TypeError):
        return None


def format_http_date(when: datetime) -> str:
    return format_datetime(when.astimezone(UTC), usegmt=True)


def object_headers(opts: PutOptions) -> dict[str, str]:
    headers = {"content-type": opts.content_type}
    if opts.cache_control is not None:
        headers["cache-control"] = opts.cache_control
    if opts.content_disposition is not None:
        headers["content-disposition"] = opts.content_disposition
    if opts.content_encoding is not None:
        headers["content-encoding"] = opts.content_encoding
    for k, v in opts.metadata.items():
        headers["x-amz-meta-" + k.lower()] = v
    return headers


def precondition_headers(pre: Preconditions) -> dict[str, str]:
    if pre.not_exists:
        return {"if-none-match": "*"}
    if pre.if_match is not None:
        return {"if-match": quote_etag(pre.if_match)}
    return {}


async def digests(
    view: memoryview, *, md5: bool, sha: bool, crc: bool
) -> tuple[bytes | None, str | None, str | None]:
    """(MD5 digest, SHA-256 hex, CRC32C base64) of a body, each only if asked for.

    A small body is hashed inline (a thread hop would cost more). A large one is
    hashed in one worker thread (hashlib and google-crc32c release the GIL there),
    in a single pass of 1 MiB slices: every digest reads a slice while it is still
    in the CPU cache, and google-crc32c, which takes bytes only, gets 1 MiB copies,
    never a whole part's.
    """
    data = view.obj if type(view.obj) is bytes and len(view.obj) == view.nbytes else None
    if view.nbytes < _HASH_IN_THREAD and data is not None:
        # The common small body (a whole bytes object): no copies at all.
        return (
            hashlib.md5(data, usedforsecurity=False).digest() if md5 else None,
            hashlib.sha256(data).hexdigest() if sha else None,
            crc32c_b64(data) if crc else None,
        )

    def one_pass() -> tuple[bytes | None, str | None, str | None]:
        m = hashlib.md5(usedforsecurity=False) if md5 else None
        h = hashlib.sha256() if sha else None
        c = Crc32c() if crc else None
        for i in range(0, view.nbytes, CHUNK):
            piece = view[i : i + CHUNK]
            if m is not None:
                m.update(piece)
            if h is not None:
                h.update(piece)
            if c is not None and data is None:
                c.update(piece)
        return (
            m.digest() if m is not None else None,
            h.hexdigest() if h is not None else None,
            (crc32c_b64(data) if data is not None else c.b64()) if c is not None else None,
        )

    if view.nbytes < _HASH_IN_THREAD:
        return one_pass()
    return await asyncio.to_thread(one_pass)


def multipart_etag(part_etags: list[str]) -> str | None:
    """The ETag S3 gives a completed multipart upload: MD5 of the parts' MD5s, "-N"."""
    if not part_etags or not all(is_md5(e) for e in part_etags):
        return None
    joined = b"".join(bytes.fromhex(e) for e in part_etags)
    return f"{hashlib.md5(joined, usedforsecurity=False).hexdigest()}-{len(part_etags)}"


def vouched_md5(etag: str, headers: Mapping[str, str]) -> str | None:
    etag = etag.lower()  # ObjectAttrs.md5 is lower-case hex; Alibaba OSS answers in upper case
    if not is_md5(etag):
        return None
    sse = headers.get("x-amz-server-side-encryption")
    if (sse is not None and sse != "AES256") or "x-amz-server-side-encryption-customer-algorithm" in headers:
        return None
    return etag


def _full_object(headers: Mapping[str, str], etag: str, name: str) -> str | None:
    """The full-object checksum ``x-amz-checksum-<name>``, if the object has one."""
    value = headers.get("x-amz-checksum-" + name)
    if not value:
        return None
    kind = headers.get("x-amz-checksum-type")
    if not value or "-" in value or kind not in (None, "FULL_OBJECT") or (kind is None and "-" in etag):
        return None
    return value


def object_attrs(key: str, headers: Mapping[str, str], size: int) -> ObjectAttrs:
    etag = unquote_etag(headers.get("etag"))
    metadata = {k[11:].lower(): v for k, v in headers.items() if k[:11].lower() == "x-amz-meta-"}
    return ObjectAttrs(
        name=key,
        size=size,
        etag=etag,
        content_type=headers.get("content-type") or "application/octet-stream",
        version=version_of(headers.get("x-amz-version-id")),
        cache_control=headers.get("cache-control"),
        content_disposition=headers.get("content-disposition"),
        metadata=metadata,
        last_modified=http_date(headers.get("last-modified")),
        crc32c=_full_object(headers, etag, "crc32c"),
        md5=vouched_md5(etag, headers),
        crc32=_full_object(headers, etag, "crc32"),
        crc64nvme=_full_object(headers, etag, "crc64nvme"),
        content_encoding=headers.get("content-encoding"),
    )


def put_attrs(
    key: str,
    opts: PutOptions,
    size: int,
    etag: str,
    version: str | None,
    modified: datetime | None,
    md5: str | None = None,
    crc32c: str | None = None,
) -> ObjectAttrs:
    return ObjectAttrs(
        name=key,
        size=size,
        etag=etag,
        content_type=opts.content_type,
        version=version_of(version),
        cache_control=opts.cache_control,
        content_disposition=opts.content_disposition,
        metadata=dict(opts.metadata),
        last_modified=modified or datetime.now(UTC),
        md5=md5,
        crc32c=crc32c,
        content_encoding=opts.content_encoding,
    )


def parse_content_range(raw: str | None) -> tuple[int, int, int] | None:
    """(first, last, total) of "bytes first-last/total"; None when absent or malformed."""
    if not raw or not raw.startswith("bytes "):
        return None
    span, _, total = raw[6:].partition("/")
    first, _, last = span.partition("-")
    try:
        return int(first), int(last), int(total)
    except ValueError:
        return None


class Body:
    """Streams a GET body in chunks of up to 1 MiB, counting them against ``expected``.

    ``limit`` stops early (a server that ignored ``Range: bytes=0-N`` sends it all).
    """

    __slots__ = ("_closed", "_expected", "_key", "_limit", "_raw", "_received")

    def __init__(
        self, raw: aiohttp.ClientResponse, key: str, expected: int | None, limit: int | None
    ) -> None:
        self._raw = raw
        self._key = key
        self._expected = expected
        self._limit = limit
        self._received = 0
        self._closed = False

    def __aiter__(self) -> Body:
        return self

    async def __anext__(self) -> bytes:
        if self._closed:
            raise StopAsyncIteration
        want = CHUNK if self._limit is None else min(CHUNK, self._limit - self._received)
        try:
            chunk = await self._raw.content.read(want) if want > 0 else b""
        except BODY_ERRORS as exc:
            await self.aclose()
            raise ConnectionLost(
                f"connection lost while reading the object ({type(exc).__name__}: {exc})", key=self._key
            ) from exc
        except BaseException:
            await self.aclose()
            raise
        if not chunk:
            if self._limit is None and self._expected is not None and self._received != self._expected:
                await self.aclose()
                raise ConnectionLost(
                    f"the body ended after {self._received} of {self._expected} bytes", key=self._key
                )
            await self.aclose()
            raise StopAsyncIteration
        self._received += len(chunk)
        if self._expected is not None and self._received > self._expected:
            await self.aclose()
            raise BackendError(
                f"the server sent more than the {self._expected} bytes it announced", key=self._key
            )
        return chunk

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        raw = self._raw
        if raw.content.at_eof():
            raw.release()  # read to the end: the connection goes back to the pool
        else:
            raw.close()  # unread bytes on it: drop the connection


class BytesBody:
    """A small GET body that was read whole (and checked against its Content-Length)."""

    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        self._data = data

    def __aiter__(self) -> BytesBody:
        return self

    async def __anext__(self) -> bytes:
        data, self._data = self._data, b""
        if not data:
            raise StopAsyncIteration
        return data

    async def aclose(self) -> None:
        self._data = b""


class EmptyBody:
    def __aiter__(self) -> EmptyBody:
        return self

    async def __anext__(self) -> bytes:
        raise StopAsyncIteration

    async def aclose(self) -> None:
        return None
