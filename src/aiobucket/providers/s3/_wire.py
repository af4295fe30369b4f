"""S3 wire details: object headers in and out, digests, ETags of multipart uploads.

The HTTP header values S3 shares with Azure (ETag quoting, dates, ranges, preconditions)
are in ``_http/headers.py``, streamed response bodies in ``_http/body.py``.

Invariants:

* ``ObjectAttrs.md5`` is set only when the ETag is an MD5 we can vouch for: 32 hex
  digits (a single-part upload) and no SSE-KMS / SSE-C encryption, whose ETags are
  not MD5s. ``crc32c``, ``crc32`` and ``crc64nvme`` only from a full-object
  ``x-amz-checksum-<name>``: typed FULL_OBJECT, or untyped on a single-part object
  (a multipart object's untyped checksum may be COMPOSITE, a checksum of its parts'
  checksums: moto 5.2 sends those without "-N" or a type).
* ETags compare case-insensitively (``base.same_etag``).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime

from ..._checksum import Crc32c, crc32c_b64
from ...types import ObjectAttrs
from .._http.headers import HEX_DIGITS, http_date, unquote_etag
from ..base import PutOptions

__all__ = [
    "digests",
    "is_md5",
    "multipart_etag",
    "object_attrs",
    "object_headers",
    "put_attrs",
    "version_of",
    "vouched_md5",
]

CHUNK = 1024 * 1024
"""Bytes hashed per slice of a large body (one slice stays in the CPU cache for every digest)."""
_HASH_IN_THREAD = 1024 * 1024  # hashlib releases the GIL; below this a thread hop costs more


def version_of(v: str | None) -> str | None:
    return None if not v or v == "null" else v


def is_md5(etag: str) -> bool:
    return len(etag) == 32 and HEX_DIGITS.issuperset(etag)


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
