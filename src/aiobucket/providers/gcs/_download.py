"""Media responses: what a download accepts, and the streamed body.

A read first fetched the object's resource; the media request is pinned to its
generation. An answer is accepted only if it is exactly what was asked for:

* ``X-Goog-Generation``, when sent, is the pinned generation (else ObjectChanged);
* the bytes are the stored ones: an object stored gzip-encoded is asked for with
  ``Accept-Encoding: gzip`` (and aiohttp does not decompress it), so GCS serves
  it as stored and honours Range. An answer decompressed anyway (decompressive
  transcoding: ``X-Goog-Stored-Content-Encoding: gzip`` without
  ``Content-Encoding: gzip``) is IntegrityError: its bytes are not the object's;
* a ranged request is answered 206 with ``Content-Range: bytes {offset}-{last}/{size}``;
  a 200 (GCS ignores Range when it transcodes) or any other range is refused,
  never spliced in: a range of another size is ObjectChanged, anything else
  ConnectionLost (as on S3). Only a range from byte 0 may be answered 200: the
  first bytes of the pinned object are right;
* a whole-object request is answered 200.

The body is counted: a dropped connection or a short body is ConnectionLost, and
the reader resumes from there. Whole-object bytes are verified against the stored
CRC32C by the reader (``aiobucket._checksum``), the one place that check is made.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import aiohttp

from ...errors import BackendError, ConnectionLost, IntegrityError, ObjectChanged

__all__ = ["MediaBody", "media_accept", "media_headers"]

READ_CHUNK = 256 * 1024
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")


def _gzip(value: str | None) -> bool:
    return "gzip" in (value or "").lower()


def media_headers(resource: Mapping[str, Any]) -> dict[str, str]:
    """Request headers that make GCS serve the stored bytes (no decompressive transcoding)."""
    return {"Accept-Encoding": "gzip" if _gzip(resource.get("contentEncoding")) else "identity"}


def media_accept(
    key: str, generation: str, offset: int, end: int, size: int, ranged: bool
) -> Callable[[aiohttp.ClientResponse], Awaitable[None]]:
    """The check a media response must pass before any of its bytes are used."""

    async def accept(resp: aiohttp.ClientResponse) -> None:
        served = resp.headers.get("X-Goog-Generation")
        if served is not None and served != generation:
            raise ObjectChanged(
                f"GCS served generation {served} for a read pinned to generation {generation}", key=key
            )
        if _gzip(resp.headers.get("X-Goog-Stored-Content-Encoding")) and not _gzip(
            resp.headers.get("Content-Encoding")
        ):
            raise IntegrityError(
                "GCS decompressed the gzip-encoded object on the way (decompressive transcoding), "
                "so the bytes are not the stored ones and cannot be verified; none were used",
                key=key,
            )
        if not ranged:
            if resp.status != 200:
                raise BackendError(f"GCS answered a whole-object read with HTTP {resp.status}", key=key)
            return
        if resp.status == 200 and offset == 0:
            return  # bytes=0-N answered with the whole pinned object: its first N bytes are right
        if resp.status != 206:
            encoding = resp.headers.get("X-Goog-Stored-Content-Encoding", "")
            why = f" (the object is stored {encoding}-encoded)" if encoding not in ("", "identity") else ""
            raise ConnectionLost(
                f"GCS ignored the range {offset}-{end - 1} and sent the whole object (HTTP "
                f"{resp.status}){why}; it was not spliced in",
                key=key,
            )
        header = resp.headers.get("Content-Range", "")
        m = _CONTENT_RANGE.fullmatch(header.strip())
        if m is None:
            raise ConnectionLost(f"GCS answered a ranged read with Content-Range {header!r}", key=key)
        first, last, total = (int(g) for g in m.groups())
        if total != size:
            raise ObjectChanged(f"the object is now {total} bytes, not {size}", key=key)
        if (first, last) != (offset, end - 1):
            raise ConnectionLost(
                f"GCS sent bytes {first}-{last} for a read of bytes {offset}-{end - 1}", key=key
            )

    return accept


class MediaBody:
    """A media response streamed in chunks of at most ``READ_CHUNK`` bytes."""

    def __init__(
        self,
        resp: aiohttp.ClientResponse | None,
        expected: int,
        key: str,
    ) -> None:
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
