"""Streamed and whole response bodies of a GET, as the S3 and Azure providers hand them out.

Invariants:

* A streamed body is counted: a body that ends before its Content-Length is
  ConnectionLost, never a short object, and more than it announced is a BackendError.
* ``aclose()`` always releases the connection (back to the pool after EOF, dropped
  otherwise); every way out of ``__anext__`` but a chunk closes the body first.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

import aiohttp

from ...errors import BackendError, ConnectionLost

__all__ = ["BODY_ERRORS", "CHUNK", "Body", "BytesBody", "EmptyBody", "RawBody"]

CHUNK = 1024 * 1024
"""The most bytes one step of a streamed body returns."""

BODY_ERRORS: tuple[type[BaseException], ...] = (
    aiohttp.ClientPayloadError,
    aiohttp.ClientConnectionError,
    ConnectionError,
    asyncio.TimeoutError,
)
"""Exceptions that mean the connection dropped in the middle of a body."""


class _Content(Protocol):
    async def read(self, n: int = -1) -> bytes: ...

    def at_eof(self) -> bool: ...


class RawBody(Protocol):
    """A streamed answer's body as the transport hands it over: aiohttp's
    ``ClientResponse`` or the lean client's ``h1.Reply``."""

    @property
    def content(self) -> _Content: ...

    def release(self) -> Any: ...

    def close(self) -> Any: ...


class Body:
    """Streams a GET body in chunks of up to 1 MiB, counting them against ``expected``.

    ``limit`` stops early (a server that ignored ``Range: bytes=0-N`` sends it all).
    """

    __slots__ = ("_closed", "_expected", "_key", "_limit", "_raw", "_received")

    def __init__(self, raw: RawBody, key: str, expected: int | None, limit: int | None) -> None:
        self._raw = raw
        self._key = key
        self._expected = expected
        self._limit = limit
        self._received = 0
        self._closed = False

    def __aiter__(self) -> Body:
        return self

    async def __anext__(self) -> bytes:
        if self._closed:
            raise StopAsyncIteration
        want = CHUNK if self._limit is None else min(CHUNK, self._limit - self._received)
        try:
            chunk = await self._raw.content.read(want) if want > 0 else b""
        except BODY_ERRORS as exc:
            await self.aclose()
            raise ConnectionLost(
                f"connection lost while reading the object ({type(exc).__name__}: {exc})", key=self._key
            ) from exc
        except BaseException:
            await self.aclose()
            raise
        if not chunk:
            if self._limit is None and self._expected is not None and self._received != self._expected:
                await self.aclose()
                raise ConnectionLost(
                    f"the body ended after {self._received} of {self._expected} bytes", key=self._key
                )
            await self.aclose()
            raise StopAsyncIteration
        self._received += len(chunk)
        if self._expected is not None and self._received > self._expected:
            await self.aclose()
            raise BackendError(
                f"the server sent more than the {self._expected} bytes it announced", key=self._key
            )
        return chunk

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        raw = self._raw
        if raw.content.at_eof():
            raw.release()  # read to the end: the connection goes back to the pool
        else:
            raw.close()  # unread bytes on it: drop the connection


class BytesBody:
    """A small GET body that was read whole (and checked against its Content-Length)."""

    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        self._data = data

    def __aiter__(self) -> BytesBody:
        return self

    async def __anext__(self) -> bytes:
        data, self._data = self._data, b""
        if not data:
            raise StopAsyncIteration
        return data

    async def aclose(self) -> None:
        self._data = b""


class EmptyBody:
    def __aiter__(self) -> EmptyBody:
        return self

    async def __anext__(self) -> bytes:
        raise StopAsyncIteration

    async def aclose(self) -> None:
        return None
