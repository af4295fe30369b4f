"""Checking downloaded bytes against the checksum the backend keeps for the object.

A download of the whole object feeds its bytes, in order, to a Verifier made from
the object's attrs; ``check()`` raises IntegrityError on a mismatch. CRC32C is used
where the backend reports it and ``google-crc32c`` is installed, else MD5 where the
backend vouches for one; with neither, ``Verifier.of`` returns None (nothing to check).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from .errors import IntegrityError
from .types import ObjectAttrs

__all__ = ["Verifier"]


class Verifier:
    """The whole object's checksum, computed over its bytes in order."""

    def __init__(self, attrs: ObjectAttrs) -> None:
        self.attrs = attrs
        self._crc: Any = None
        self._md5: Any = None
        if attrs.crc32c is not None:
            try:
                import google_crc32c
            except ImportError:  # fall back to md5 below, if the backend gave one
                pass
            else:
                checksum: Any = google_crc32c.Checksum  # untyped
                self._crc = checksum()
        if self._crc is None and attrs.md5 is not None:
            self._md5 = hashlib.md5(usedforsecurity=False)

    @classmethod
    def of(cls, attrs: ObjectAttrs) -> Verifier | None:
        v = cls(attrs)
        return v if v._crc is not None or v._md5 is not None else None

    def update(self, data: bytes | memoryview) -> None:
        (self._crc or self._md5).update(data)

    def check(self, key: str, bucket: str | None = None) -> None:
        if self._crc is not None:
            what, want, got = "crc32c", self.attrs.crc32c, base64.b64encode(self._crc.digest()).decode()
        else:
            what, want, got = "md5", self.attrs.md5, self._md5.hexdigest()
        if got != want:
            raise IntegrityError(
                f"downloaded bytes failed verification: {what} is {got}, the object's is {want}",
                bucket=bucket,
                key=key,
            )
