"""Checksums as GCS writes them: CRC32C (Castagnoli) and MD5, base64 of big-endian bytes.

Uploads send our CRC32C (in the multipart metadata, or ``X-Goog-Hash`` on a
resumable upload's final chunk) so GCS refuses bytes changed on the way, and the
stored object's hash is compared with ours afterwards as well, because not
every server checks. A full download is hashed as it streams and compared with
the object's stored hash before its last chunk is handed out.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from typing import Any

import google_crc32c

__all__ = ["Crc32c", "crc32c_b64", "goog_hash", "stored_hash", "StreamCheck"]


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def crc32c_b64(data: bytes) -> str:
    return _b64(google_crc32c.value(data).to_bytes(4, "big"))


class Crc32c:
    """A running CRC32C over the chunks of one upload, in order."""

    __slots__ = ("_value",)

    def __init__(self) -> None:
        self._value = 0

    def update(self, data: bytes) -> None:
        self._value = google_crc32c.extend(self._value, data)

    def b64(self) -> str:
        return _b64(self._value.to_bytes(4, "big"))


def goog_hash(header: str | None) -> dict[str, str]:
    """``X-Goog-Hash: crc32c=...,md5=...`` as ``{"crc32c": ..., "md5": ...}``."""
    out: dict[str, str] = {}
    for item in (header or "").split(","):
        name, sep, value = item.strip().partition("=")
        if sep and value:
            out[name.strip().lower()] = value.strip()
    return out


def stored_hash(resource: Mapping[str, Any], headers: Mapping[str, str]) -> tuple[str, str] | None:
    """What a full download must hash to: ("crc32c" | "md5", base64), or None if unknown.

    The object resource (pinned to the same generation as the media) comes
    first; the media response's ``X-Goog-Hash`` is the fallback.
    """
    served = goog_hash(headers.get("X-Goog-Hash"))
    for algo, field in (("crc32c", "crc32c"), ("md5", "md5Hash")):
        value = resource.get(field) or served.get(algo)
        if isinstance(value, str) and value:
            return algo, value
    return None


class StreamCheck:
    """Hashes a download as it streams; ``matches()`` once every byte was seen."""

    __slots__ = ("_crc", "_md5", "algo", "expected")

    def __init__(self, algo: str, expected: str) -> None:
        self.algo = algo
        self.expected = expected
        self._crc = Crc32c() if algo == "crc32c" else None
        self._md5 = hashlib.md5(usedforsecurity=False) if algo == "md5" else None

    def update(self, chunk: bytes) -> None:
        if self._crc is not None:
            self._crc.update(chunk)
        elif self._md5 is not None:
            self._md5.update(chunk)

    def actual(self) -> str:
        if self._crc is not None:
            return self._crc.b64()
        assert self._md5 is not None
        return _b64(self._md5.digest())

    def matches(self) -> bool:
        return self.actual() == self.expected
