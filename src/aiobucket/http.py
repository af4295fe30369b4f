"""Serving objects over HTTP: one ``Range`` header parser, a consistent ranged open, and
``serve()``, which answers a GET in one line with caching and ranges right.

Used by the dev server and the framework examples; handy in any handler that
streams a download to a client::

    resp = await aiobucket.http.serve(bucket, key, request.headers)
    # resp.status: 200, 206, 304 or 416; resp.headers; resp.body() streams and closes

``serve`` follows RFC 9110: If-None-Match (weak comparison, lists, ``*``) is evaluated
on the server where the backend can (no body is transferred for a 304), and
If-Modified-Since only when If-None-Match is absent; then Range, honoured only while
If-Range still matches. Responses carry ETag, Last-Modified and Cache-Control from the
object's attributes, a 304 included.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Protocol

from .errors import NotModified, RangeNotSatisfiable
from .providers.base import same_etag
from .reader import Reader
from .refs import Attrser, Downloader
from .types import ObjectAttrs

__all__ = ["ByteRange", "ObjectResponse", "open_range", "parse_range", "serve"]

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
    bucket: _Readable,
    key: str,
    header: str | None,
    *,
    version: str | None = None,
    attempts: int = 3,
    if_none_match: str | None = None,
    if_modified_since: datetime | None = None,
) -> tuple[Reader, ObjectAttrs, ByteRange | None]:
    """Open a reader on ``key``, or on the range ``header`` asks for: (reader, attrs, range).

    ``bytes=a-b`` and ``bytes=a-`` open in one request. A suffix (``bytes=-n``) needs the
    size first, so it is resolved against attrs() and the opened reader's etag proves the
    object did not change in between (else it tries again, ``attempts`` times, then raises
    ObjectChanged). The caller owns the reader and must close it. The caching conditions
    go to every open: NotModified when they match (see ``Bucket.download``).
    """
    from .errors import ObjectChanged

    name: str | None = getattr(bucket, "name", None)  # for error messages
    parsed = _syntax(header)
    if parsed is None:
        reader = bucket.download(
            key, version=version, if_none_match=if_none_match, if_modified_since=if_modified_since
        )
        return reader, await reader.attrs(), None
    first, last = parsed
    for _ in range(attempts):
        if first:
            start = int(first)
            length = None if not last else int(last) - start + 1
            reader = bucket.download(
                key,
                version=version,
                offset=start,
                length=length,
                if_none_match=if_none_match,
                if_modified_since=if_modified_since,
            )
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
        reader = bucket.download(
            key,
            version=version,
            offset=rng[0],
            length=rng[1] - rng[0] + 1,
            if_none_match=if_none_match,
            if_modified_since=if_modified_since,
        )
        try:
            attrs = await reader.attrs()
        except RangeNotSatisfiable:
            continue  # it shrank meanwhile; the failed reader closed itself
        if same_etag(attrs.etag, head.etag):
            return reader, attrs, rng
        await reader.aclose()
    raise ObjectChanged(
        "the object kept changing while the range was opened; try again", bucket=name, key=key
    )


# -- serve: a whole GET answer --------------------------------------------------------------


@dataclass(slots=True)
class ObjectResponse:
    """What to answer a GET: ``status`` and ``headers``, and for 200/206 the open ``reader``.

    The caller owns the reader: stream ``body()`` (which closes it at the end, or when
    the iterator is closed) or call ``aclose()``. 304 and 416 have no reader.
    """

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    reader: Reader | None = None
    attrs: ObjectAttrs | None = None

    async def body(self) -> AsyncIterator[bytes]:
        if self.reader is None:
            return
        try:
            async for chunk in self.reader:
                yield chunk
        finally:
            await self.reader.aclose()

    async def aclose(self) -> None:
        if self.reader is not None:
            await self.reader.aclose()


async def serve(
    bucket: _Readable,
    key: str,
    request_headers: Mapping[str, str],
    *,
    version: str | None = None,
    cache_control: str | None = None,
    attempts: int = 3,
) -> ObjectResponse:
    """Answer a GET for ``key`` from the request's headers: 200, 206, 304 or 416.

    Reads If-None-Match, If-Modified-Since, Range and If-Range (names in any case, from
    any mapping: Starlette's and aiohttp's headers, a dict). ``cache_control`` is sent
    when the object has no Cache-Control of its own. A missing object raises
    ObjectNotFound, for the handler to answer 404 its own way.
    """
    h = {k.lower(): v for k, v in request_headers.items()}
    tags = _etags(h.get("if-none-match"))
    since = _http_date(h.get("if-modified-since")) if tags is None else None
    single = tags[0] if tags is not None and len(tags) == 1 else None
    if_range = h.get("if-range")

    async def open_(range_header: str | None) -> tuple[Reader, ObjectAttrs, ByteRange | None]:
        return await open_range(
            bucket,
            key,
            range_header,
            version=version,
            attempts=attempts,
            if_none_match=single,
            if_modified_since=since,
        )

    try:
        if tags is not None and single is None:  # several etags: compare them here
            head = await bucket.attrs(key, version=version)
            if any(same_etag(head.etag, t) for t in tags):
                return _not_modified(head, cache_control)
        try:
            reader, attrs, rng = await open_(h.get("range"))
        except RangeNotSatisfiable as exc:
            if if_range is None or _if_range_holds(if_range, await bucket.attrs(key, version=version)):
                return ObjectResponse(416, {"Content-Range": f"bytes */{exc.size}"})
            reader, attrs, rng = await open_(None)  # a stale If-Range: the whole object
        stale = rng is not None and if_range is not None and not _if_range_holds(if_range, attrs)
        if stale or (tags is not None and any(same_etag(attrs.etag, t) for t in tags)):
            await reader.aclose()
            if not stale:  # it became one of the listed etags after the HEAD
                return _not_modified(attrs, cache_control)
            reader, attrs, rng = await open_(None)
    except NotModified as exc:
        return _not_modified(exc.attrs if isinstance(exc.attrs, ObjectAttrs) else None, cache_control)
    headers = _validators(attrs, cache_control)
    headers["Content-Type"] = attrs.content_type
    headers["Accept-Ranges"] = "bytes"
    if attrs.content_disposition:
        headers["Content-Disposition"] = attrs.content_disposition
    if attrs.content_encoding:  # the stored bytes are sent as they are (ranges of them too)
        headers["Content-Encoding"] = attrs.content_encoding
    if rng is None:
        headers["Content-Length"] = str(attrs.size)
        return ObjectResponse(200, headers, reader, attrs)
    headers["Content-Length"] = str(rng[1] - rng[0] + 1)
    headers["Content-Range"] = f"bytes {rng[0]}-{rng[1]}/{attrs.size}"
    return ObjectResponse(206, headers, reader, attrs)


def _validators(attrs: ObjectAttrs | None, cache_control: str | None) -> dict[str, str]:
    """ETag, Last-Modified and Cache-Control: what a 200, a 206 and a 304 all carry."""
    headers: dict[str, str] = {}
    if attrs is not None:
        headers["ETag"] = f'"{attrs.etag}"'
        if attrs.last_modified is not None:
            headers["Last-Modified"] = format_datetime(attrs.last_modified.astimezone(UTC), usegmt=True)
    control = (attrs.cache_control if attrs is not None else None) or cache_control
    if control:
        headers["Cache-Control"] = control
    return headers


def _not_modified(attrs: ObjectAttrs | None, cache_control: str | None) -> ObjectResponse:
    return ObjectResponse(304, _validators(attrs, cache_control), None, attrs)


def _etags(header: str | None) -> list[str] | None:
    """The entity tags of an If-None-Match header, unquoted, weak ones as strong (RFC 9110
    compares weakly here); ``["*"]`` for any; None when there is no usable header."""
    if header is None or not header.strip():
        return None
    if header.strip() == "*":
        return ["*"]
    tags = [t.strip().removeprefix("W/").strip('"') for t in header.split(",")]
    return [t for t in tags if t] or None


def _http_date(value: str | None) -> datetime | None:
    """An HTTP date, or None for a missing or malformed one (which RFC 9110 says to ignore)."""
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _if_range_holds(value: str, attrs: ObjectAttrs) -> bool:
    """If-Range: a strong etag must equal the object's; a date must be its Last-Modified."""
    value = value.strip()
    if value.startswith('"'):
        return same_etag(value.strip('"'), attrs.etag)
    if value.startswith("W/"):
        return False  # a weak validator never matches If-Range
    when = _http_date(value)
    return (
        when is not None
        and attrs.last_modified is not None
        and int(attrs.last_modified.timestamp()) == int(when.timestamp())
    )
