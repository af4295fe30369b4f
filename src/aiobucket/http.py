"""Serving objects over HTTP: one ``Range`` header parser and a consistent ranged open.

Used by the dev server and the framework examples; handy in any handler that
streams a download to a client.
"""

from __future__ import annotations

import re
from typing import Protocol

from .errors import RangeNotSatisfiable
from .reader import Reader
from .refs import Attrser, Downloader
from .types import ObjectAttrs

__all__ = ["ByteRange", "open_range", "parse_range"]

ByteRange = tuple[int, int]
"""Inclusive (first, last) byte positions, as in ``Content-Range: bytes first-last/size``."""

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class _Readable(Downloader, Attrser, Protocol): ...


def _unsatisfiable(size: int, bucket: str | None = None, key: str | None = None) -> RangeNotSatisfiable:
    err = RangeNotSatisfiable(
        f"no byte of the requested range exists (the object has {size} bytes)", bucket=bucket, key=key
    )
    err.size = size
    return err


def _syntax(header: str | None) -> tuple[str, str] | None:
    """One ``bytes=a-b`` / ``a-`` / ``-n`` range; anything else (several ranges, other
    units, garbage, b < a) is ignored, as RFC 9110 allows: None means the whole object."""
    m = _RANGE.fullmatch(header.replace(" ", "")) if header else None
    if m is None or m.groups() == ("", ""):
        return None
    first, last = m[1], m[2]
    if first and last and int(last) < int(first):
        return None
    return first, last


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The bytes a ``Range`` header asks for in an object of ``size`` bytes, or None for all.

    Raises RangeNotSatisfiable (with ``.size``) when no requested byte exists: answer 416
    with ``Content-Range: bytes */size``.
    """
    parsed = _syntax(header)
    if parsed is None:
        return None
    first, last = parsed
    if not first:  # suffix: the last n bytes
        n = int(last)
        if n == 0 or size == 0:
            raise _unsatisfiable(size)
        return max(0, size - n), size - 1
    start = int(first)
    if start >= size:
        raise _unsatisfiable(size)
    return start, size - 1 if not last else min(int(last), size - 1)


async def open_range(
    bucket: _Readable, key: str, header: str | None, *, version: str | None = None, attempts: int = 3
) -> tuple[Reader, ObjectAttrs, ByteRange | None]:
    """Open a reader on ``key``, or on the range ``header`` asks for: (reader, attrs, range).

    ``bytes=a-b`` and ``bytes=a-`` open in one request. A suffix (``bytes=-n``) needs the
    size first, so it is resolved against attrs() and the opened reader's etag proves the
    object did not change in between (else it tries again, ``attempts`` times, then raises
    ObjectChanged). The caller owns the reader and must close it.
    """
    from .errors import ObjectChanged

    name: str | None = getattr(bucket, "name", None)  # for error messages
    parsed = _syntax(header)
    if parsed is None:
        reader = bucket.download(key, version=version)
        return reader, await reader.attrs(), None
    first, last = parsed
    for _ in range(attempts):
        if first:
            start = int(first)
            length = None if not last else int(last) - start + 1
            reader = bucket.download(key, version=version, offset=start, length=length)
            try:
                attrs = await reader.attrs()
            except RangeNotSatisfiable:
                size = (await bucket.attrs(key, version=version)).size
                raise _unsatisfiable(size, name, key) from None
            if attrs.size == 0:
                await reader.aclose()
                raise _unsatisfiable(0, name, key)
            return reader, attrs, (start, min(start + (length or attrs.size), attrs.size) - 1)
        head = await bucket.attrs(key, version=version)
        try:
            rng = parse_range(header, head.size)
        except RangeNotSatisfiable as exc:
            raise exc.with_context(bucket=name, key=key) from None
        assert rng is not None
        reader = bucket.download(key, version=version, offset=rng[0], length=rng[1] - rng[0] + 1)
        try:
            attrs = await reader.attrs()
        except RangeNotSatisfiable:
            continue  # it shrank meanwhile; the failed reader closed itself
        if attrs.etag == head.etag:
            return reader, attrs, rng
        await reader.aclose()
    raise ObjectChanged(
        "the object kept changing while the range was opened; try again", bucket=name, key=key
    )
