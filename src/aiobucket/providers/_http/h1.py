"""A lean HTTP/1.1 client for the small requests of the S3 and Azure providers.

Why it exists: aiohttp's ``ClientSession.request`` costs about 412k instructions per
4 KiB GET with GCS's 17 answer headers on CPython 3.11, this client about 200k (callgrind,
client only, the server of ``benchmarks/gcs_read_instructions.py``). Per small request
that is most of the client's CPU, and on a machine shared with the server, throughput. It does only what those
requests need; ``transport.py`` sends everything else through aiohttp (a proxy,
``Expect: 100-continue``, a body over ``SMALL_BODY`` bytes).

Invariants:

* The bytes on the wire are aiohttp's for the same request: the request line with the
  URL's raw path and query, ``Host`` first unless the caller gives one, the caller's
  headers in their order, then ``Content-Length`` unless given (``0`` for a body-less
  method other than GET, HEAD, OPTIONS and TRACE). ``tests/test_h1.py`` compares them.
* Responses are parsed by llhttp (``httptools``): framed by Content-Length, chunked, or
  the end of the connection; 1xx answers are skipped; a HEAD answer has no body.
* Failures are aiohttp's exception types with aiohttp's meaning, so
  ``retry.transport_failure`` and ``body.BODY_ERRORS`` classify them unchanged: before
  a connection, ``ClientConnectorError`` (DNS, certificate and TLS subtypes) or
  ``ConnectionTimeoutError`` (never sent); after it, ``ServerDisconnectedError``,
  ``ClientOSError``, ``SocketTimeoutError`` or ``ClientPayloadError`` (maybe sent).
* Timeouts are ``connect`` (to open a connection) and ``read`` (a stall: counted from the
  start of every wait for bytes, checked by one timer per pool, so it fires between 1 and
  1.25 read timeouts); there is no total, so a long body is never cut for its length.
* A connection returns to the pool only after its answer was read to the end on a
  keep-alive exchange; a cancelled, failed or half-read exchange closes it. An idle
  connection older than ``KEEPALIVE`` seconds (aiohttp's default) is closed, not reused,
  and one the server closed leaves the pool when it closes.
* At most ``limit`` connections are open per pool; more callers wait in turn. A cancel
  while waiting passes the turn on.
* A streamed body is flow-controlled: the socket is not read while more than
  ``HIGH_WATER`` bytes wait unread.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import re
import socket
import ssl

import aiohttp
import httptools
from aiohttp.client_reqrep import ConnectionKey
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

__all__ = ["KEEPALIVE", "SMALL_BODY", "Pool", "Reply"]

SMALL_BODY = 256 * 1024
"""The largest request body this client sends (in one write); larger ones go through aiohttp."""
KEEPALIVE = 15.0
HIGH_WATER = 4 * 1024 * 1024
LOW_WATER = 1024 * 1024
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
"""Control characters but TAB, CR and LF (those two are counted): aiohttp's rule (RFC 9110, 5.5)."""
_FORBIDDEN = "Forbidden control character detected in headers. Potential header injection attack."
_NO_BODY_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class _Conn(asyncio.Protocol):
    """One connection and the answer in progress on it."""

    def __init__(self, pool: Pool, key: tuple[str, str, int]) -> None:
        self.pool = pool
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[None] | None = None
        self.busy = False
        self.head = False
        self.status = 0
        self.fields: list[bytes] = []
        """Names and values in turn, as received (decoded once, in ``Reply``)."""
        self.headers_done = False
        self.done = False
        self.keep_alive = False
        self.chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.paused = False
        self.whole = False
        """The answer is being read whole (``read()``): reading never pauses for it."""
        self.lost = False
        self.error: BaseException | None = None
        self.idle_since = 0.0
        self.waiting_since = 0.0
        self.closed = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self.busy or self.done:  # nothing was asked: the connection is unusable
            self.keep_alive = False
            if self.transport is not None:
                self.transport.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(aiohttp.ClientPayloadError(f"malformed HTTP response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.keep_alive = False
        if self.busy and not self.done:
            if self.headers_done and self._framed_by_close():
                self.done = True
                self._wake()
            elif not self.headers_done:
                self._fail(aiohttp.ServerDisconnectedError() if exc is None else _os_error(exc))
            else:
                self._fail(aiohttp.ClientPayloadError(f"Response payload is not completed: {exc!r}"))
        self.pool._lost(self)

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self.fields += (name, value)

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # an interim answer: the real one follows
            self.fields = []
            return
        self.status = status
        self.headers_done = True
        if self.head:  # no body follows, whatever its headers say
            self.keep_alive = self.parser.should_keep_alive()
            self.done = True
            self.parser = httptools.HttpResponseParser(self)
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > HIGH_WATER and not self.paused and not self.whole and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if not self.headers_done:  # the end of a 1xx
            return
        if not self.done:
            self.keep_alive = self.parser.should_keep_alive()
            self.done = True
            self._wake()

    # the exchange

    def start(self, request: bytes, head: bool) -> None:
        self.busy, self.head, self.whole = True, head, False
        self.status, self.fields, self.headers_done, self.done = 0, [], False, False
        assert self.transport is not None
        self.transport.write(request)

    def _framed_by_close(self) -> bool:
        return not any(name.lower() in (b"content-length", b"transfer-encoding") for name in self.fields[::2])

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self.keep_alive = False
        if self.transport is not None:
            self.transport.close()
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self) -> None:
        """Until more of the answer (or its end, or a failure) has arrived."""
        if self.error is not None:
            raise self.error
        pool = self.pool
        waiter = self.waiter = pool.loop.create_future()
        watched = pool.read_timeout is not None
        if watched:
            pool.watch(self)
        try:
            await waiter
        finally:
            self.waiter = None
            if watched:
                pool.waiting.discard(self)
        if self.error is not None:
            raise self.error

    def take(self, limit: int) -> bytes:
        """Up to ``limit`` of the buffered bytes, joined across socket reads: a consumer
        slower than the socket gets fewer, larger pieces (as aiohttp's ``read(n)`` does),
        not one per read of the socket."""
        chunks = self.chunks
        chunk = chunks.popleft()
        if len(chunk) >= limit:
            if len(chunk) > limit:
                chunks.appendleft(chunk[limit:])
                chunk = chunk[:limit]
        elif chunks:
            parts, size = [chunk], len(chunk)
            while chunks and size < limit:
                piece = chunks.popleft()
                room = limit - size
                if len(piece) > room:
                    chunks.appendleft(piece[room:])
                    piece = piece[:room]
                parts.append(piece)
                size += len(piece)
            chunk = b"".join(parts)
        self.buffered -= len(chunk)
        if self.paused and self.buffered < LOW_WATER and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return chunk

    def reusable(self) -> bool:
        return self.done and self.keep_alive and not self.lost and not self.chunks and self.error is None


def _stall(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(aiohttp.SocketTimeoutError("Timeout on reading data from socket"))


def _os_error(exc: Exception) -> BaseException:
    if isinstance(exc, OSError):
        return aiohttp.ClientOSError(exc.errno, str(exc))
    return aiohttp.ServerDisconnectedError(repr(exc))


class Reply:
    """An answer: status and headers at once, the body read whole (``read``) or in steps
    (``content.read``), as much of ``aiohttp.ClientResponse`` as the providers use."""

    __slots__ = ("_conn", "_length", "headers", "status")

    def __init__(self, conn: _Conn) -> None:
        self._conn: _Conn | None = conn
        self.status = conn.status
        # One decode for all fields (a folded value may hold a line break: then one by one);
        # multidict builds from a list at C speed, from an iterator at Python speed.
        fields = conn.fields
        text = b"\n".join(fields).decode("utf-8", "surrogateescape").split("\n")
        if len(text) != len(fields):
            text = [field.decode("utf-8", "surrogateescape") for field in fields]
        headers: CIMultiDict[str] = (
            CIMultiDict(list(zip(text[::2], text[1::2], strict=True))) if fields else CIMultiDict()
        )
        self.headers = CIMultiDictProxy(headers)
        length = headers.get("Content-Length")
        self._length = int(length) if length is not None and length.isdigit() else None

    @property
    def content_length(self) -> int | None:
        return self._length

    @property
    def content(self) -> Reply:
        return self

    async def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes of the body (all of it for -1); b"" at its end."""
        conn = self._conn
        if conn is None:
            return b""
        if n < 0:
            conn.whole = True  # all of it is wanted: what is buffered is not a reason to stop reading
            if conn.paused and conn.transport is not None:
                conn.paused = False
                conn.transport.resume_reading()
            while not conn.done:
                await conn.wait()
            data = b"".join(conn.chunks)
            conn.chunks.clear()
            conn.buffered = 0
            return data
        if n == 0:
            return b""
        while not conn.chunks:
            if conn.done:
                return b""
            await conn.wait()
        return conn.take(n)

    def at_eof(self) -> bool:
        conn = self._conn
        return conn is None or (conn.done and not conn.chunks)

    def release(self) -> None:
        """Back to the pool if the answer was read to its end, else closed."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.pool.put_back(conn)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.pool.discard(conn)


class Pool:
    """Keep-alive connections to any number of hosts, at most ``limit`` open at once."""

    def __init__(
        self,
        *,
        limit: int,
        connect_timeout: float | None,
        read_timeout: float | None,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.limit = limit
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._ssl = ssl_context
        self._idle: dict[tuple[str, str, int], list[_Conn]] = {}
        self._open = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self.waiting: set[_Conn] = set()
        """Connections waiting for bytes, each since its ``waiting_since``."""
        self._watchdog: asyncio.TimerHandle | None = None
        self.closed = False

    def watch(self, conn: _Conn) -> None:
        """Time ``conn``'s wait for bytes. One timer per pool checks every waiting
        connection a few times per ``read_timeout`` (a timer per wait, armed and cancelled,
        costs about a tenth of a small request), so a stall is caught between 1 and 1.25
        read timeouts after the last bytes."""
        conn.waiting_since = self.loop.time()
        self.waiting.add(conn)
        if self._watchdog is None:
            self._arm()

    def _arm(self) -> None:
        assert self.read_timeout is not None
        self._watchdog = self.loop.call_later(self.read_timeout / 4, self._check)

    def _check(self) -> None:
        self._watchdog = None
        assert self.read_timeout is not None
        stalled = self.loop.time() - self.read_timeout
        for conn in [c for c in self.waiting if c.waiting_since <= stalled]:
            self.waiting.discard(conn)
            if conn.waiter is not None:
                _stall(conn.waiter)
        if self.waiting:
            self._arm()

    async def request(
        self, method: str, url: URL, headers: dict[str, str], body: bytes | memoryview | None
    ) -> Reply:
        """Send one request and wait for the answer's status and headers."""
        request = _serialize(method, url, headers, body)
        conn = await self._acquire(url)
        try:
            conn.start(request, method == "HEAD")
            while not conn.headers_done:
                await conn.wait()
        except BaseException:
            self.discard(conn)
            raise
        return Reply(conn)

    # connections

    async def _acquire(self, url: URL) -> _Conn:
        key = (url.scheme, url.raw_host or "", url.port or 0)
        while True:
            idle = self._idle.get(key)
            now = self.loop.time()
            while idle:
                conn = idle.pop()
                if not conn.lost and now - conn.idle_since < KEEPALIVE:
                    return conn
                self.discard(conn)
            if self._open >= self.limit and not self._close_an_idle():
                waiter = self.loop.create_future()
                self._waiters.append(waiter)
                try:
                    await waiter
                except BaseException:
                    if waiter.done() and not waiter.cancelled():
                        self._wake_one()  # our turn, not taken: the next caller's
                    else:
                        with contextlib.suppress(ValueError):
                            self._waiters.remove(waiter)
                    raise
                continue
            self._open += 1
            try:
                return await self._connect(key, url)
            except BaseException:
                self._open -= 1
                self._wake_one()
                raise

    async def _connect(self, key: tuple[str, str, int], url: URL) -> _Conn:
        scheme, host, port = key
        tls: ssl.SSLContext | None = None
        if scheme == "https":
            tls = self._ssl if self._ssl is not None else await _default_tls()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await self.loop.create_connection(
                    lambda: _Conn(self, key),
                    host.strip("[]"),
                    port,
                    ssl=tls,
                    server_hostname=host if tls else None,
                )
        except TimeoutError as exc:
            raise aiohttp.ConnectionTimeoutError(f"Connection timeout to host {url}") from exc
        except ssl.SSLCertVerificationError as exc:
            raise aiohttp.ClientConnectorCertificateError(_conn_key(host, port, tls), exc) from exc
        except ssl.SSLError as exc:
            raise aiohttp.ClientSSLError(_conn_key(host, port, tls), exc) from exc
        except OSError as exc:
            if isinstance(exc, socket.gaierror):
                raise aiohttp.ClientConnectorDNSError(_conn_key(host, port, tls), exc) from exc
            raise aiohttp.ClientConnectorError(_conn_key(host, port, tls), exc) from exc
        return conn

    def put_back(self, conn: _Conn) -> None:
        if conn.closed:
            return
        if self.closed or not conn.reusable():
            self.discard(conn)
            return
        conn.busy = False
        conn.idle_since = self.loop.time()
        self._idle.setdefault(conn.key, []).append(conn)
        self._wake_one()

    def discard(self, conn: _Conn) -> None:
        """Close a connection and free its place (once)."""
        if conn.closed:
            return
        conn.closed = True
        conn.busy = False
        idle = self._idle.get(conn.key)
        if idle is not None and conn in idle:
            idle.remove(conn)
        if conn.transport is not None:
            conn.transport.close()
        self._open -= 1
        self._wake_one()

    def _lost(self, conn: _Conn) -> None:
        if not conn.busy:  # idle: closed by the server (or by us)
            self.discard(conn)

    def _close_an_idle(self) -> bool:
        """At the limit with an idle connection to another host: close it to make room."""
        for idle in self._idle.values():
            if idle:
                self.discard(idle[0])
                return True
        return False

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def close(self) -> None:
        """Close the idle connections; busy ones close when their answer is released."""
        self.closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        for idle in list(self._idle.values()):
            for conn in list(idle):
                self.discard(conn)
        self._idle.clear()


def _conn_key(host: str, port: int, tls: ssl.SSLContext | None) -> ConnectionKey:
    return ConnectionKey(
        host, port, tls is not None, tls if tls is not None else True, None, None, None, None
    )


_tls_default: ssl.SSLContext | None = None


async def _default_tls() -> ssl.SSLContext:
    """The system's trust store, loaded once off the event loop (it reads files)."""
    global _tls_default
    if _tls_default is None:
        _tls_default = await asyncio.to_thread(ssl.create_default_context)
    return _tls_default


def _serialize(method: str, url: URL, headers: dict[str, str], body: bytes | memoryview | None) -> bytes:
    path = url.raw_path or "/"
    query = url.raw_query_string
    lines = [f"{method} {path}?{query} HTTP/1.1\r\n" if query else f"{method} {path} HTTP/1.1\r\n"]
    named = {name.lower() for name in headers}
    if "host" not in named:
        lines.append(f"Host: {url.host_port_subcomponent}\r\n")
    lines.extend(f"{name}: {value}\r\n" for name, value in headers.items())
    if "content-length" not in named:
        if body is not None:
            lines.append(f"Content-Length: {len(body) if isinstance(body, bytes) else body.nbytes}\r\n")
        elif method not in _NO_BODY_METHODS:
            lines.append("Content-Length: 0\r\n")
    lines.append("\r\n")
    text = "".join(lines)
    if _CONTROL.search(text) or text.count("\n") != len(lines) or text.count("\r") != len(lines):
        # aiohttp refuses these too: a CR or LF would split a header (request smuggling)
        raise ValueError(_FORBIDDEN)
    head = text.encode("utf-8")
    return head + body if body else head
