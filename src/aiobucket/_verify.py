"""Checking a whole-object download against the checksum the backend keeps for it.

A download that covers the whole object feeds its bytes, in order, to a
WholeObjectCheck made from the object's attrs. CRC32C (``ObjectAttrs.crc32c``, base64
of the 4 big-endian bytes) is used where the backend reports it and google-crc32c is
installed, else MD5 (``ObjectAttrs.md5``, hex) where the backend vouches for one; with
neither, ``for_read`` returns None and nothing is checked. The check fails as soon as
the last byte arrives, so the chunk that completes a corrupt object is never handed
out, and at the end if the bytes stopped short.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from .errors import IntegrityError
from .types import ObjectAttrs

__all__ = ["WholeObjectCheck"]


class WholeObjectCheck:
    __slots__ = ("_attrs", "_crc", "_md5", "_seen")

    def __init__(self, attrs: ObjectAttrs, crc: Any) -> None:
        self._attrs = attrs
        self._crc = crc
        self._md5 = None if crc is not None else hashlib.md5(usedforsecurity=False)
        self._seen = 0

    @classmethod
    def for_read(cls, attrs: ObjectAttrs, offset: int, length: int | None) -> WholeObjectCheck | None:
        """A check for ``length`` bytes at ``offset`` when they are the whole object and it
        has a checksum this process can compute; None otherwise."""
        if offset != 0 or (length is not None and length < attrs.size):
            return None
        crc = None
        if attrs.crc32c is not None:
            try:
                import google_crc32c  # here: `import aiobucket` stays cheap
            except ImportError:  # fall back to md5, if the backend gave one
                pass
            else:
                checksum: Any = google_crc32c.Checksum  # untyped
                crc = checksum()
        if crc is None and attrs.md5 is None:
            return None
        return cls(attrs, crc)

    def update(self, data: bytes | memoryview) -> None:
        self._seen += len(data)
        if self._seen > self._attrs.size:
            self._fail(f"more bytes arrived than the object's {self._attrs.size}")
        if self._crc is not None:
            self._crc.update(data)
        else:
            assert self._md5 is not None
            self._md5.update(data)
        if self._seen == self._attrs.size:
            self._compare()

    def end(self) -> None:
        """The download ended: it must have delivered every byte."""
        if self._seen != self._attrs.size:
            self._fail(f"the download ended after {self._seen} of {self._attrs.size} bytes")

    def _compare(self) -> None:
        if self._crc is not None:
            what, want, got = "crc32c", self._attrs.crc32c, base64.b64encode(self._crc.digest()).decode()
        else:
            assert self._md5 is not None
            what, want, got = "md5", (self._attrs.md5 or "").lower(), self._md5.hexdigest()
        if got != want:
            self._fail(f"{what} is {got}, the object's is {want}")

    def _fail(self, what: str) -> None:
        raise IntegrityError(f"downloaded bytes failed verification: {what}", version=self._attrs.version)
