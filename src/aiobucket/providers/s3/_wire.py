"""S3 wire details: etag quoting, conditional headers, timestamps, request bodies
that are sent without copying, and streamed response bodies that are always released."""

from __future__ import annotations

import inspect
import io
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from botocore.utils import parse_timestamp as _botocore_parse_timestamp

from ...errors import ConnectionLost
from ...types import ObjectAttrs, Preconditions
from ..base import PutOptions
from ._errors import body_errors, map_error

MiB = 1024 * 1024
CHUNK = 1 * MiB


def _quote(etag: str) -> str:
    return f'"{etag.strip(chr(34))}"'


def _unquote(etag: object) -> str:
    return str(etag or "").strip('"')


def _version(v: object) -> str | None:
    return None if not v or v == "null" else str(v)


def _conditions(pre: Preconditions) -> dict[str, str]:
    if pre.not_exists:
        return {"IfNoneMatch": "*"}
    if pre.if_match is not None:
        return {"IfMatch": _quote(pre.if_match)}
    return {}


def _date(resp: Mapping[str, Any]) -> datetime | None:
    """The server's Date header: when a write was applied, close enough."""
    raw = resp.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    if not raw:
        return datetime.now(UTC)
    try:
        return parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return datetime.now(UTC)


def _parse_timestamp(value: Any) -> datetime:
    """botocore's timestamp parser with fast paths for the two forms S3 sends.

    botocore parses every timestamp with dateutil (about 45 us each), which is
    most of the CPU time of a listing (every entry has a LastModified) and a
    few percent of every small GET/HEAD. ``datetime.fromisoformat`` (XML bodies)
    and ``parsedate_to_datetime`` (HTTP headers, "... GMT") read the same
    instants in 0.1-3 us; anything else (epochs, other zones, odd forms) goes to
    botocore's parser as before.
    """
    if isinstance(value, str):
        try:
            if value.endswith(" GMT"):
                return parsedate_to_datetime(value)
            return datetime.fromisoformat(value)
        except (TypeError, ValueError):
            pass
    parsed: datetime = _botocore_parse_timestamp(value)
    return parsed


def _utc(value: object) -> datetime | None:
    return value.astimezone(UTC) if isinstance(value, datetime) else None


def _total_size(resp: Mapping[str, Any]) -> int:
    content_range = resp.get("ContentRange")
    if content_range and "/" in content_range:
        total = content_range.rsplit("/", 1)[1].strip()
        if total.isdigit():
            return int(total)
    return int(resp.get("ContentLength") or 0)


def _put_attrs(
    key: str, opts: PutOptions, size: int, etag: object, version: object, modified: datetime | None
) -> ObjectAttrs:
    return ObjectAttrs(
        name=key,
        size=size,
        etag=_unquote(etag),
        content_type=opts.content_type,
        version=_version(version),
        cache_control=opts.cache_control,
        content_disposition=opts.content_disposition,
        metadata=dict(opts.metadata),
        last_modified=modified,
    )


class _BytesReader(io.RawIOBase):
    """A seekable, read-only file over bytes that never copies them whole.

    A large ``bytes`` body handed to aiohttp is written to the socket in one
    call, and whatever the kernel does not take at once is copied into the
    transport's buffer; a BytesIO body is copied by aiohttp's getbuffer(). Both
    double the memory per in-flight part. This reader is streamed by aiohttp
    in 256 KiB slices with back-pressure (see _register_payload), and botocore
    can rewind it to sign the payload or to retry.
    """

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        super().__init__()
        self._view = memoryview(data).cast("B")
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._view)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        end = len(self._view) if size is None or size < 0 else min(len(self._view), self._pos + size)
        start, self._pos = self._pos, max(end, self._pos)
        return bytes(self._view[start:end])

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: Any) -> int:
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def __len__(self) -> int:
        return len(self._view)

    def view(self) -> memoryview:
        """The whole buffer, for the aiohttp payload that sends it without copying."""
        return self._view


def _register_payload() -> None:
    """Let aiohttp send a _BytesReader as slices of its buffer, on the event loop.

    aiohttp's generic file payload reads every 256 KiB chunk in a worker thread
    (a thread hop and a fresh copy per chunk). A _BytesReader is already in
    memory, so this payload writes memoryview slices of it instead: no copy, no
    thread, and the same back-pressure (each write waits for the socket to drain).
    """
    try:
        from aiohttp import payload as aiohttp_payload
    except ImportError:  # pragma: no cover - aiobotocore always brings aiohttp
        return

    class _ViewPayload(aiohttp_payload.Payload):
        def __init__(self, value: Any, *args: Any, **kwargs: Any) -> None:
            super().__init__(value, *args, **kwargs)
            # aiobotocore wraps file bodies in a transparent proxy; reach the reader.
            self._reader: _BytesReader = getattr(value, "__wrapped__", value)

        @property
        def size(self) -> int:
            return max(0, len(self._reader) - self._reader.tell())

        def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
            return bytes(self._reader.view()[self._reader.tell() :]).decode(encoding, errors)

        async def write(self, writer: Any) -> None:
            await self.write_with_length(writer, None)

        async def write_with_length(self, writer: Any, content_length: int | None) -> None:
            reader = self._reader
            view = reader.view()
            pos = reader.tell()
            end = len(view) if content_length is None else min(len(view), pos + content_length)
            while pos < end:
                step = min(pos + _SEND_CHUNK, end)
                reader.seek(step)
                await writer.write(view[pos:step])
                pos = step

    aiohttp_payload.register_payload(_ViewPayload, _BytesReader, order=aiohttp_payload.Order.try_first)


_SEND_CHUNK = 256 * 1024
_register_payload()


def _body(data: bytes | bytearray | memoryview) -> bytes | _BytesReader:
    """Small bodies go as bytes; large ones stream from a _BytesReader."""
    if len(data) <= 256 * 1024:
        return bytes(data)
    return _BytesReader(data)


def _object_params(opts: PutOptions) -> dict[str, Any]:
    params: dict[str, Any] = {"ContentType": opts.content_type}
    if opts.cache_control is not None:
        params["CacheControl"] = opts.cache_control
    if opts.content_disposition is not None:
        params["ContentDisposition"] = opts.content_disposition
    if opts.metadata:
        params["Metadata"] = dict(opts.metadata)
    return params


class _Body:
    """Streams a GetObject body in chunks; aclose() always releases the connection."""

    def __init__(self, stream: Any, key: str) -> None:
        self._stream = stream
        self._key = key
        self._closed = False

    def __aiter__(self) -> _Body:
        return self

    async def __anext__(self) -> bytes:
        if self._closed:
            raise StopAsyncIteration
        try:
            chunk: bytes = await self._stream.read(CHUNK)
        except body_errors() as exc:
            await self.aclose()
            raise ConnectionLost(
                f"connection lost while reading the object ({type(exc).__name__}: {exc})", key=self._key
            ) from exc
        except Exception as exc:
            await self.aclose()
            raise map_error(exc, op="download", bucket="", key=self._key) from exc
        except BaseException:
            await self.aclose()
            raise
        if not chunk:
            await self.aclose()
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        # aiohttp: close() drops an unfinished connection (a no-op once the body
        # was read to the end and the connection went back to the pool).
        result = self._stream.close()
        if inspect.isawaitable(result):
            await result


class _EmptyBody:
    def __aiter__(self) -> _EmptyBody:
        return self

    async def __anext__(self) -> bytes:
        raise StopAsyncIteration

    async def aclose(self) -> None:
        return None
