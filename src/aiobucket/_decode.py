"""Decoding a stored Content-Encoding on the way out (``download(decompress=True)``).

Invariants:

* The stored bytes are what is checked (``_checksum.WholeObjectCheck`` is fed the
  raw bytes before they are decoded), as python-storage checks a gzip download:
  a corrupt object fails on its stored checksum, whatever it would decode to.
* Memory stays bounded: one raw chunk in, at most ``OUT_LIMIT`` decoded bytes out
  per step, so a small chunk that inflates enormously is handed out in slices.
* A gzip stream of several members (concatenated gzip files, as ``gzip`` allows)
  decodes whole; a stream that ends inside a member is IntegrityError.
"""

from __future__ import annotations

import zlib

from .errors import IntegrityError, NotSupported

__all__ = ["OUT_LIMIT", "Gunzip", "decoder_for"]

OUT_LIMIT = 1024 * 1024
_GZIP = 16 + zlib.MAX_WBITS  # a gzip header and trailer around deflate data


def decoder_for(content_encoding: str | None) -> Gunzip | None:
    """The decoder for a stored Content-Encoding; None when the bytes are not encoded."""
    encoding = (content_encoding or "").strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip"):
        return Gunzip()
    raise NotSupported(
        f"the object is stored with Content-Encoding {content_encoding!r}, which aiobucket cannot "
        "decode; download it with decompress=False and decode it yourself"
    )


class Gunzip:
    """A gzip decoder fed raw chunks: ``feed(raw)``, then ``take()`` until it gives b""."""

    __slots__ = ("_d", "_input", "_started")

    def __init__(self) -> None:
        self._d = zlib.decompressobj(_GZIP)
        self._input = b""
        self._started = False

    def feed(self, raw: bytes) -> None:
        assert not self._input, "take() everything before feeding more"
        self._input = raw

    def take(self) -> bytes:
        """Up to OUT_LIMIT decoded bytes from what was fed; b"" when it needs more input."""
        while self._input:
            self._started = True
            if self._d.eof:  # the previous member ended: what follows is the next one
                self._d = zlib.decompressobj(_GZIP)
            try:
                out = self._d.decompress(self._input, OUT_LIMIT)
            except zlib.error as exc:
                raise IntegrityError(f"the stored bytes are not valid gzip: {exc}") from exc
            self._input = self._d.unused_data if self._d.eof else self._d.unconsumed_tail
            if out:
                return out
        return b""

    def end(self) -> None:
        """The raw bytes ended: they must have ended at the end of a member."""
        if self._started and not self._d.eof:
            raise IntegrityError("the stored gzip stream ends in the middle of its data")
