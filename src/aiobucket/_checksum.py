"""Checksums in the forms ObjectAttrs carries, and the whole-object read check.

``ObjectAttrs.crc32c`` is base64 of the CRC32C's 4 big-endian bytes (as S3's
``x-amz-checksum-crc32c`` and GCS's ``crc32c``); ``ObjectAttrs.md5`` is lower-case
hex. CRC32C comes from google-crc32c (C, hardware accelerated, and it releases
the GIL on buffers of 1 MB and more); it takes ``bytes`` only, so other buffers
are copied first.

A read of a whole object is checked against the first full-object checksum the
object has, in ``ObjectAttrs.verified_by``'s order: crc32c, crc64nvme, crc32, md5;
an object with none is read unverified (``verified_by`` is None). The check is
decided here once, and the three readers (reader.py, the parallel reader,
download_to) only feed it. CRC32 is zlib's; CRC64NVME is awscrt's (AWS's C
runtime, the implementation botocore's CRT extra uses; hardware accelerated), imported
only when an object carries one (the s3 extra installs it).

``crc32c_combine`` gives the CRC32C of A+B from those of A and B and B's length
(polynomial arithmetic modulo the CRC32C polynomial, as zlib's crc32_combine):
an S3 multipart upload's whole-object CRC32C is built from its parts' CRC32Cs in
part order, whatever order the parts were sent in.
"""

from __future__ import annotations

import binascii
import hashlib
import zlib
from collections.abc import Callable

from .errors import IntegrityError
from .types import ObjectAttrs

__all__ = ["Crc32", "Crc32c", "Crc64Nvme", "WholeObjectCheck", "crc32c_b64", "crc32c_combine"]


def _b64(raw: bytes) -> str:
    """base64.b64encode(raw) as str, without its Python wrapper (on every checked read)."""
    return binascii.b2a_base64(raw, newline=False).decode("ascii")


def _bytes(data: bytes | bytearray | memoryview) -> bytes:
    return data if type(data) is bytes else bytes(data)


_crc32c_extend: Callable[[int, bytes], int] | None = None


def _load_crc32c() -> Callable[[int, bytes], int]:
    global _crc32c_extend
    import google_crc32c  # here, not at the top: `import aiobucket` stays cheap

    _crc32c_extend = google_crc32c.extend
    return _crc32c_extend


class Crc32c:
    """A running CRC32C."""

    __slots__ = ("_extend", "value")

    def __init__(self) -> None:
        self._extend = _crc32c_extend or _load_crc32c()
        self.value = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self.value = self._extend(self.value, _bytes(data))

    def b64(self) -> str:
        return _b64(self.value.to_bytes(4, "big"))


class Crc32:
    """A running CRC32 (zlib's polynomial, as S3's ``x-amz-checksum-crc32``)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self.value = zlib.crc32(data, self.value)

    def b64(self) -> str:
        return _b64(self.value.to_bytes(4, "big"))


class Crc64Nvme:
    """A running CRC64NVME (S3's ``x-amz-checksum-crc64nvme``), by awscrt."""

    __slots__ = ("_extend", "value")

    def __init__(self) -> None:
        try:
            # here: only objects that carry a CRC64NVME need it
            from awscrt.checksums import crc64nvme  # type: ignore[import-untyped]
        except ImportError as exc:  # pragma: no cover - the s3 extra installs awscrt
            raise ImportError(
                "verifying a CRC64NVME checksum needs awscrt: pip install 'aiobucket[s3]'"
            ) from exc
        self._extend: Callable[[bytes | bytearray | memoryview, int], int] = crc64nvme
        self.value = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self.value = self._extend(data, self.value)

    def b64(self) -> str:
        return _b64(self.value.to_bytes(8, "big"))


def crc32c_b64(data: bytes | bytearray | memoryview) -> str:
    """The CRC32C of ``data`` as ObjectAttrs.crc32c spells it."""
    crc = Crc32c()
    crc.update(data)
    return crc.b64()


_POLY = 0x82F63B78  # CRC32C's polynomial, bit-reversed (bit 31 is x^0, as the CRC is kept)


def _multiply(a: int, b: int) -> int:
    """a * b modulo the CRC32C polynomial, both in the CRC's bit-reversed order."""
    product = 0
    for bit in range(31, -1, -1):
        if a >> bit & 1:
            product ^= b
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1
    return product


# x^(2^k) modulo the polynomial for k = 0..63: x^(8n) is a product of these (square and multiply).
_X_POW_2K = [1 << 30]  # x^1
for _ in range(63):
    _X_POW_2K.append(_multiply(_X_POW_2K[-1], _X_POW_2K[-1]))


def crc32c_combine(crc_a: int, crc_b: int, length_b: int) -> int:
    """The CRC32C of A+B, from A's CRC32C, B's CRC32C and B's length in bytes.

    Appending B multiplies A's CRC by x^(8 * len B) modulo the polynomial; the
    CRC's initial and final inversions cancel out, so finished CRCs combine as is.
    """
    shift, bits, k = 1 << 31, 8 * length_b, 0  # x^0
    while bits:
        if bits & 1:
            shift = _multiply(_X_POW_2K[k], shift)
        bits >>= 1
        k += 1
    return _multiply(shift, crc_a) ^ crc_b


_RUNNING: dict[str, type[Crc32c | Crc32 | Crc64Nvme]] = {
    "crc32c": Crc32c,
    "crc32": Crc32,
    "crc64nvme": Crc64Nvme,
}
_CRCS = (Crc32c, Crc32, Crc64Nvme)


class WholeObjectCheck:
    """Feed it every byte of a whole-object read, in order: it raises IntegrityError
    as soon as the bytes overrun the object's size, or end (at the size, or early
    at EOF) without matching the stored checksum.

    The check happens when the last byte arrives, before the caller is handed the
    chunk that holds it, so a corrupt object's final chunk is never returned.
    """

    __slots__ = ("_attrs", "_digest", "_done", "_name", "_seen", "_stored")

    def __init__(self, attrs: ObjectAttrs, name: str | None = None) -> None:
        name = name or attrs.verified_by  # ``name``: the attrs' verified_by, where already known
        if name is None:
            raise ValueError("the object has no stored checksum to check against")
        self._attrs = attrs
        self._name = name
        self._stored: str = getattr(attrs, name)
        self._digest: Crc32c | Crc32 | Crc64Nvme | hashlib._Hash = (
            _RUNNING[name]() if name != "md5" else hashlib.md5(usedforsecurity=False)
        )
        self._seen = 0
        self._done = False

    @classmethod
    def for_read(cls, attrs: ObjectAttrs, offset: int, length: int | None) -> WholeObjectCheck | None:
        """A check for a read of ``length`` bytes at ``offset``, when it covers the whole
        object and the object has a stored checksum; None otherwise."""
        if offset != 0 or (length is not None and length < attrs.size):
            return None
        name = attrs.verified_by
        return None if name is None else cls(attrs, name)

    def update(self, chunk: bytes | bytearray | memoryview) -> None:
        self._seen += len(chunk)
        if self._done or self._seen > self._attrs.size:
            self._fail(f"more bytes arrived than the object's size of {self._attrs.size}")
        self._digest.update(chunk)
        if self._seen == self._attrs.size:
            self._finish()

    def end(self) -> None:
        """The body ended: it must have delivered the whole object."""
        if not self._done:
            if self._seen != self._attrs.size:
                self._fail(f"the body ended after {self._seen} of {self._attrs.size} bytes")
            self._finish()

    def _finish(self) -> None:
        self._done = True
        name, stored, digest = self._name, self._stored, self._digest
        if isinstance(digest, _CRCS):
            got = digest.b64()
        else:
            got, stored = digest.hexdigest(), stored.lower()
        if got != stored:
            self._fail(f"the bytes read have {name} {got!r}, but the object's stored {name} is {stored!r}")

    def _fail(self, what: str) -> None:
        raise IntegrityError(
            f"download failed verification: {what}; the stored object or the transfer is corrupt",
            version=self._attrs.version,
        )
