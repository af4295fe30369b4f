"""Media downloads: one request per read, and what its answer must be.

A read is one media GET (``alt=media``). Its headers say everything ObjectAttrs
holds, as python-storage's ``_extract_headers_from_download`` reads them
(https://cloud.google.com/storage/docs/xml-api/reference-headers):
``X-Goog-Generation``, ``X-Goog-Hash`` (``crc32c=…``, ``md5=…``; one header or
several), ``X-Goog-Stored-Content-Length`` and ``X-Goog-Stored-Content-Encoding``
(the stored bytes), ``ETag``, ``Content-Type``, ``Cache-Control``,
``Content-Disposition``, ``x-goog-meta-*`` and ``Last-Modified``. Where a header
the read needs is missing (an emulator that sends no stored length with a
decompressed answer, say), :func:`media_attrs` returns None and the provider reads
the object's resource pinned to the served generation: the only second request.

An answer is used only if it is what was asked for (:class:`MediaCheck`):

* ``X-Goog-Generation`` is the asked-for version, if one was asked (else ObjectChanged);
* ``if_match``, the caching conditions and the range are judged on its attrs
  (``check_read``) before any byte is used;
* the bytes are the stored ones: every request says ``Accept-Encoding: gzip``,
  so GCS serves a gzip-encoded object as stored, honours Range and sends its
  stored CRC32C. An answer decompressed anyway (decompressive transcoding,
  https://cloud.google.com/storage/docs/transcoding: ``X-Goog-Stored-Content-Encoding:
  gzip`` without ``Content-Encoding: gzip``, no Content-Length) is accepted as
  *decoded* bytes (``MediaBody.decoded``) for a whole-object read; GCS ignores
  Range when it transcodes, so a ranged read of it is refused, never spliced;
* a ranged read is a 206 of exactly the asked range of the object's size (a range
  from byte 0 may be a 200 of the whole object); anything else is ConnectionLost
  (the reader resumes), a different size ObjectChanged.

The body is counted against the expected length (a transcoded one is read to its
end): a dropped connection or a short body is ConnectionLost. Whole-object bytes
are verified by the reader against the stored checksum (``aiobucket._checksum``).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

import aiohttp
from multidict import CIMultiDictProxy

from ...errors import BackendError, ConnectionLost, IntegrityError, ObjectChanged
from ...types import ObjectAttrs
from ..base import GetOptions, check_read
from ._resource import md5_hex

if TYPE_CHECKING:
    from ._http import Streamed

__all__ = ["MediaBody", "MediaCheck", "media_attrs", "range_header", "served_hashes"]

READ_CHUNK = 256 * 1024
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")
_CRC32C = re.compile(r"[A-Za-z0-9+/]{6}==")
# The JSON API's media answer carries the object's JSON etag, the one head() reports (python-
# storage takes blob.etag from it). An XML-API-style ETag (an MD5 in hex) is not that etag:
# then the resource is read, so that a download's etag always matches attrs()'s.
_XML_ETAG = re.compile(r"[0-9a-f]{32}")
META = "x-goog-meta-"


_MONTHS = {
    m: f"{i:02d}"
    for i, m in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1
    )
}


def _http_date(value: str | None) -> datetime | None:
    """Last-Modified as a datetime: GCS sends the IMF-fixdate form (``Sun, 06 Dec 2026
    07:07:20 GMT``), rewritten as ISO 8601 for the C parser (this is on every read);
    anything else goes through email.utils."""
    if not value:
        return None
    parts = value.split()
    try:
        if (
            len(parts) == 6
            and parts[5] == "GMT"
            and parts[2] in _MONTHS
            and len(parts[1]) == 2
            and len(parts[3]) == 4
            and len(parts[4]) == 8
        ):
            return datetime.fromisoformat(f"{parts[3]}-{_MONTHS[parts[2]]}-{parts[1]}T{parts[4]}+00:00")
        return parsedate_to_datetime(value).astimezone(UTC)
    except (ValueError, TypeError):
        return None


def _gzip(value: str | None) -> bool:
    if value is None or value == "identity":  # what GCS sends for most objects: no string work
        return False
    return value.strip().lower() in ("gzip", "x-gzip")


def range_header(offset: int, length: int | None) -> str | None:
    """The Range a read asks for; None for a whole-object read."""
    if not offset and length is None:
        return None
    return f"bytes={offset}-" + ("" if length is None else str(offset + length - 1))


def served_hashes(headers: CIMultiDictProxy[str] | Mapping[str, str]) -> tuple[str | None, str | None]:
    """(crc32c as base64, md5 as hex) from ``X-Goog-Hash``, sent as one header or several."""
    values: Sequence[str] = headers.getall("X-Goog-Hash", ()) if isinstance(headers, CIMultiDictProxy) else ()
    if not values and headers.get("X-Goog-Hash"):
        values = (headers["X-Goog-Hash"],)
    crc = md5 = None
    for value in values:
        for item in value.split(","):
            name, _, digest = item.strip().partition("=")
            if name == "crc32c":
                crc = digest
            elif name == "md5":
                md5 = digest
    if crc is not None and not _CRC32C.fullmatch(crc):
        crc = None  # 4 bytes in base64
    return crc, md5_hex(md5)


def transcoded(headers: Mapping[str, str]) -> bool:
    """GCS decompressed a gzip-stored object on the way (decompressive transcoding)."""
    return _gzip(headers.get("X-Goog-Stored-Content-Encoding")) and not _gzip(headers.get("Content-Encoding"))


def _stored_size(status: int, headers: Mapping[str, str], decoded: bool) -> int | None:
    stored = headers.get("X-Goog-Stored-Content-Length")
    if stored is not None and stored.isdigit():
        return int(stored)
    if decoded:
        return None  # Content-Length (if any) counts the decoded bytes
    if status == 206:
        m = _CONTENT_RANGE.fullmatch(headers.get("Content-Range", "").strip())
        return int(m.group(3)) if m else None
    length = headers.get("Content-Length")
    return int(length) if status == 200 and length is not None and length.isdigit() else None


def _metadata(headers: CIMultiDictProxy[str] | Mapping[str, str]) -> dict[str, str]:
    """The ``x-goog-meta-*`` headers, named without the prefix in lower case."""
    # One C-level scan of the names first: most objects carry no custom metadata.
    if META not in ",".join(headers.keys()).lower():
        return {}
    return {k[len(META) :].lower(): v for k, v in headers.items() if k.lower().startswith(META)}


def media_attrs(
    key: str,
    status: int,
    headers: CIMultiDictProxy[str] | Mapping[str, str],
    *,
    versioned: bool,
    decoded: bool | None = None,
) -> ObjectAttrs | None:
    """The object's attrs from a media answer's headers; None if one the read needs is missing.

    ``decoded``: whether the answer was transcoded (``transcoded(headers)``), if known already.
    """
    if decoded is None:
        decoded = transcoded(headers)
    generation = headers.get("X-Goog-Generation")
    etag = (headers.get("ETag") or "").strip().removeprefix("W/").strip('"')
    size = _stored_size(status, headers, decoded)
    if not generation or not etag or size is None or _XML_ETAG.fullmatch(etag):
        return None
    crc32c, md5 = served_hashes(headers)
    if crc32c is None and md5 is None and decoded:
        return None  # a decompressed answer may carry no hashes: the resource has them
    stored_encoding = headers.get("X-Goog-Stored-Content-Encoding")
    return ObjectAttrs(
        name=key,
        size=size,
        etag=etag,
        content_type=headers.get("Content-Type") or "application/octet-stream",
        version=generation if versioned else None,
        cache_control=headers.get("Cache-Control"),
        content_disposition=headers.get("Content-Disposition"),
        metadata=_metadata(headers),
        last_modified=_http_date(headers.get("Last-Modified")),
        crc32c=crc32c,
        md5=md5,
        content_encoding=None if stored_encoding in (None, "", "identity") else stored_encoding,
    )


class MediaCheck:
    """The check a media answer must pass before any of its bytes are used.

    Called with the response inside the transport's retry loop (raising there closes
    it); ``settle`` finishes the judgement once the attrs are known, from the headers
    or, when they lack something, from the resource.
    """

    __slots__ = (
        "_range",
        "_status",
        "attrs",
        "decoded",
        "expected",
        "generation",
        "key",
        "opts",
        "versioned",
    )

    def __init__(self, key: str, opts: GetOptions, *, versioned: bool) -> None:
        self.key = key
        self.opts = opts
        self.versioned = versioned
        self.attrs: ObjectAttrs | None = None
        self.generation: str | None = None
        self.decoded = False
        self.expected: int | None = None
        """How many bytes the body holds; None for a decoded answer (read to its end)."""
        self._status = 0
        self._range: tuple[int, int, int] | None = None

    def __call__(self, resp: Streamed) -> None:
        key, opts, h = self.key, self.opts, resp.headers
        self.generation = h.get("X-Goog-Generation")
        if opts.version is not None and self.generation not in (None, opts.version):
            raise ObjectChanged(
                f"GCS served generation {self.generation} for a read of generation {opts.version}", key=key
            )
        stored_gzip = _gzip(h.get("X-Goog-Stored-Content-Encoding"))
        sent_gzip = _gzip(h.get("Content-Encoding"))
        self.decoded = stored_gzip and not sent_gzip
        if sent_gzip and not stored_gzip:
            raise IntegrityError(
                "GCS gzip-encoded on the way an object it does not store gzip-encoded; none of "
                "the bytes were used",
                key=key,
            )
        ranged = bool(opts.offset) or opts.length is not None  # range_header() is not None
        self._status = resp.status
        if not ranged and resp.status != 200:
            raise BackendError(f"GCS answered a whole-object read with HTTP {resp.status}", key=key)
        if ranged and self.decoded:
            raise BackendError(
                "GCS decompressed the gzip-encoded object on the way (decompressive transcoding), "
                "which ignores Range: a range of the stored bytes cannot be read this way",
                key=key,
            )
        if ranged and resp.status == 206:
            header = h.get("Content-Range", "")
            m = _CONTENT_RANGE.fullmatch(header.strip())
            if m is None:
                raise ConnectionLost(f"GCS answered a ranged read with Content-Range {header!r}", key=key)
            first, last, total = (int(g) for g in m.groups())
            self._range = first, last, total
        elif ranged and opts.offset:
            raise ConnectionLost(
                f"GCS ignored the range from byte {opts.offset} and sent HTTP {resp.status}; "
                "it was not spliced in",
                key=key,
            )
        self.attrs = media_attrs(key, resp.status, h, versioned=self.versioned, decoded=self.decoded)
        if self.attrs is not None:
            self.settle(self.attrs)

    def settle(self, attrs: ObjectAttrs) -> ObjectAttrs:
        """Judge the answer against the object's attrs; sets ``expected``."""
        key, opts = self.key, self.opts
        check_read(attrs, opts, key)
        size = attrs.size
        end = size if opts.length is None else min(size, opts.offset + opts.length)
        if self._range is not None:
            first, last, total = self._range
            if total != size:
                raise ObjectChanged(f"the object is now {total} bytes, not {size}", key=key)
            if (first, last) != (opts.offset, end - 1):
                raise ConnectionLost(
                    f"GCS sent bytes {first}-{last} for a read of bytes {opts.offset}-{end - 1}", key=key
                )
        self.expected = None if self.decoded else end - opts.offset
        self.attrs = attrs
        return attrs


class MediaBody:
    """A media response streamed in chunks of at most ``READ_CHUNK`` bytes.

    ``decoded``: GCS decompressed the stored bytes on the way; the body is read to
    its end (its length is not known beforehand).
    """

    def __init__(
        self,
        resp: Streamed | None,
        expected: int | None,
        key: str,
        *,
        decoded: bool = False,
    ) -> None:
        self._resp = resp
        self._expected = expected
        self._key = key
        self._received = 0
        self._ended = False
        self.decoded = decoded

    def _left(self) -> int:
        return READ_CHUNK if self._expected is None else min(READ_CHUNK, self._expected - self._received)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        resp = self._resp
        if resp is None:
            return
        expected = self._expected
        try:
            while expected is None or self._received < expected:
                chunk = await resp.content.read(self._left())
                if not chunk:
                    break
                self._received += len(chunk)
                yield chunk
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, TimeoutError, OSError) as exc:
            of = "" if expected is None else f" of {expected}"
            raise ConnectionLost(
                f"connection lost after {self._received}{of} bytes: {exc}", key=self._key
            ) from exc
        if expected is not None and self._received < expected:
            raise ConnectionLost(f"the body ended after {self._received} of {expected} bytes", key=self._key)
        self._ended = True

    async def aclose(self) -> None:
        resp, self._resp = self._resp, None
        if resp is None:
            return
        if self._ended and resp.content.at_eof():
            resp.release()  # fully read: the connection goes back to the pool
        else:
            resp.close()  # unread bytes: drop the connection rather than drain it
