"""The lean HTTP/1.1 client (``providers/_http/h1.py``) against aiohttp, the library it
stands in for: the same requests must put the same bytes on the wire, the same answers
must read the same (status, headers, body), and the same failures must raise the same
exception types, classified the same by ``retry.transport_failure``. Then its pool:
keep-alive, the connection limit, cancels and flow control.

Both clients talk to a raw server on 127.0.0.1 that records every request's bytes and
answers from a script (bytes as a server would send them)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict
from yarl import URL

from aiobucket.providers._http import h1
from aiobucket.providers._http.retry import transport_failure
from aiobucket.providers._http.transport import Transport

pytestmark = pytest.mark.anyio

Answer = bytes | Callable[[bytes], bytes | None]
"""The bytes to send for a request (given its head), or None to close without answering."""


@dataclass
class Server:
    answer: Answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    open_now: int = 0
    most_open: int = 0
    hold: asyncio.Event | None = None
    close_after: bool = False
    """Close each connection after its first answer (as after ``Connection: close``)."""
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length) if length else b""
                self.requests.append(head + body)
                if self.hold is not None:
                    await self.hold.wait()
                out = self.answer(head) if callable(self.answer) else self.answer
                if out is None:
                    return
                writer.write(out)
                await writer.drain()
                if self.close_after:
                    return
        finally:
            self.open_now -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    @property
    def url(self) -> URL:
        return URL(f"http://127.0.0.1:{self.port}/b/k%2Fx?a=1&b=")


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    state = Server()
    srv = await asyncio.start_server(state.handle, "127.0.0.1", 0)
    state.port = srv.sockets[0].getsockname()[1]
    yield state
    srv.close()
    await srv.wait_closed()


def lean_pool(limit: int = 8, read_timeout: float | None = 5.0) -> h1.Pool:
    return h1.Pool(limit=limit, connect_timeout=5.0, read_timeout=read_timeout, ssl_context=None)


async def via_aiohttp(
    method: str, url: URL, headers: dict[str, str], body: bytes | None, read_timeout: float = 5.0
) -> tuple[int, list[tuple[str, str]], bytes]:
    """aiohttp as the transport configures it (no automatic headers, no decompression)."""
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=5.0, sock_read=read_timeout)
    skip = ["Accept-Encoding", "Accept", "User-Agent", "Content-Type"]
    async with (
        aiohttp.ClientSession(timeout=timeout, auto_decompress=False, skip_auto_headers=skip) as session,
        session.request(method, url, headers=headers, data=body, allow_redirects=False) as resp,
    ):
        return resp.status, list(resp.headers.items()), await resp.read()


async def via_h1(
    method: str, url: URL, headers: dict[str, str], body: bytes | None, read_timeout: float = 5.0
) -> tuple[int, list[tuple[str, str]], bytes]:
    pool = lean_pool(read_timeout=read_timeout)
    try:
        reply = await pool.request(method, url, headers, body)
        try:
            return reply.status, list(reply.headers.items()), await reply.read()
        finally:
            reply.release()
    finally:
        pool.close()


REQUESTS: list[tuple[str, dict[str, str], bytes | None]] = [
    ("GET", {"x-amz-date": "20261206T000000Z"}, None),
    ("HEAD", {"Range": "bytes=0-9"}, None),
    ("PUT", {"Content-Type": "text/plain", "x-amz-meta-name": "café"}, b"abc"),
    ("PUT", {}, None),
    ("POST", {}, b""),
    ("POST", {"host": "bucket.example.com:9000"}, b"<Delete/>"),
    ("DELETE", {"If-Match": '"e"'}, None),
    ("PUT", {"Content-Length": "3"}, b"xyz"),
    ("OPTIONS", {}, None),
]


@pytest.mark.parametrize(("method", "headers", "body"), REQUESTS)
async def test_the_bytes_on_the_wire_are_aiohttps(
    server: Server, method: str, headers: dict[str, str], body: bytes | None
) -> None:
    server.answer = lambda head: (
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n" + (b"" if head.startswith(b"HEAD") else b"ok")
    )
    await via_aiohttp(method, server.url, headers, body)
    await via_h1(method, server.url, headers, body)
    theirs, ours = server.requests
    assert ours == theirs


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:{port}", "http://127.0.0.1:{port}/a%20b/%E2%82%AC?list-type=2&prefix=a%2Fb&x"],
)
async def test_paths_and_queries_are_sent_as_aiohttp_sends_them(server: Server, url: str) -> None:
    target = URL(url.format(port=server.port), encoded=True)
    await via_aiohttp("GET", target, {}, None)
    await via_h1("GET", target, {}, None)
    theirs, ours = server.requests
    assert ours == theirs


@pytest.mark.parametrize("value", ["b\r\nX-Evil: 1", "b\nc", "b\rc", "nul\x00", "del\x7f"])
async def test_a_control_character_in_a_header_is_refused_as_aiohttp_refuses_it(
    server: Server, value: str
) -> None:
    for send in (via_aiohttp, via_h1):
        with pytest.raises(ValueError, match="Forbidden control character"):
            await send("GET", server.url, {"x-amz-meta-a": value}, None)
    await via_h1("GET", server.url, {"x-amz-meta-a": "a\ttab is fine"}, None)
    assert len(server.requests) == 1


ANSWERS = {
    "content-length": b'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nETag: "e"\r\n\r\nhello',
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n",
    "repeated headers": b"HTTP/1.1 200 OK\r\nx-amz-meta-a: 1\r\nX-Amz-Meta-A: 2\r\nContent-Length: 0\r\n\r\n",
    "utf-8 header": "HTTP/1.1 200 OK\r\nx-amz-meta-n: café\r\nContent-Length: 0\r\n\r\n".encode(),
    "no content": b"HTTP/1.1 204 No Content\r\nx-ms-request-id: 1\r\n\r\n",
    "not modified": b'HTTP/1.1 304 Not Modified\r\nETag: "e"\r\n\r\n',
    "error": b"HTTP/1.1 404 Not Found\r\nContent-Type: application/xml\r\nContent-Length: 42\r\n\r\n"
    b"<Error><Code>NoSuchKey</Code></Error>\n\n\n\n\n",
    "interim 100": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "gzip kept": b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\n\x1f\x8b\x08\x00",
}


def folded(answer: tuple[int, list[tuple[str, str]], bytes]) -> tuple[int, list[tuple[str, str]], bytes]:
    """Field names compared without case (RFC 9110, 5.1): aiohttp spells the ones it knows
    its own way (``Etag``), the lean client as the server sent them."""
    status, headers, body = answer
    return status, [(name.lower(), value) for name, value in headers], body


@pytest.mark.parametrize("name", sorted(ANSWERS))
async def test_answers_read_as_aiohttp_reads_them(server: Server, name: str) -> None:
    server.answer = ANSWERS[name]
    theirs = folded(await via_aiohttp("GET", server.url, {}, None))
    assert folded(await via_h1("GET", server.url, {}, None)) == theirs


async def test_an_answer_framed_by_the_end_of_the_connection(server: Server) -> None:
    server.answer = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end"
    server.close_after = True
    theirs = await via_aiohttp("GET", server.url, {}, None)
    assert folded(await via_h1("GET", server.url, {}, None)) == folded(theirs)
    assert theirs[2] == b"until the end"


async def test_a_head_answer_has_no_body_and_its_connection_is_reused(server: Server) -> None:
    server.answer = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
    pool = lean_pool()
    try:
        for _ in range(3):
            reply = await pool.request("HEAD", server.url, {}, None)
            assert reply.status == 200 and reply.content_length == 1000
            assert await reply.read() == b""
            reply.release()
    finally:
        pool.close()
    assert server.connections == 1 and len(server.requests) == 3


EXPECTED: dict[str, type[BaseException]] = {
    "closed before an answer": aiohttp.ServerDisconnectedError,
    "body cut short": aiohttp.ClientPayloadError,
    "malformed status line": aiohttp.ClientError,  # aiohttp: ClientResponseError 400; h1: payload
}
FAILURES: dict[str, Answer] = {
    "closed before an answer": lambda head: None,
    "body cut short": b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf",
    "malformed status line": b"HTPP/1.1 200 OK\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(FAILURES))
async def test_failures_are_aiohttps_and_classified_the_same(server: Server, name: str) -> None:
    server.answer = FAILURES[name]
    server.close_after = True
    failures: list[tuple[type[BaseException], tuple[bool, bool] | None]] = []
    for send in (via_aiohttp, via_h1):
        with pytest.raises(aiohttp.ClientError) as caught:
            await send("GET", server.url, {}, None, read_timeout=30.0)
        failures.append((type(caught.value), transport_failure(caught.value)))
    theirs, ours = failures
    assert theirs[1] == ours[1] == (True, True)  # retryable, maybe sent
    assert not issubclass(theirs[0], asyncio.TimeoutError)  # the failure itself, not a stall
    assert issubclass(ours[0], EXPECTED[name]) and issubclass(theirs[0], EXPECTED[name])


async def test_a_refused_connection_is_aiohttps_and_never_sent() -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    url = URL(f"http://127.0.0.1:{port}/")
    failures = []
    for send in (via_aiohttp, via_h1):
        with pytest.raises(aiohttp.ClientConnectorError) as caught:
            await send("GET", url, {}, None)
        failures.append((type(caught.value), transport_failure(caught.value)))
    assert failures[0] == failures[1] == (aiohttp.ClientConnectorError, (False, False))


async def test_a_stalled_answer_times_out_as_in_aiohttp(server: Server) -> None:
    server.hold = asyncio.Event()
    kinds = []
    for send in (via_aiohttp, via_h1):
        with pytest.raises(asyncio.TimeoutError) as caught:
            await send("GET", server.url, {}, None, read_timeout=0.2)
        kinds.append((type(caught.value), transport_failure(caught.value)))
    server.hold.set()
    assert kinds[0] == kinds[1] == (aiohttp.SocketTimeoutError, (True, True))


async def test_keep_alive_reuses_one_connection_and_close_is_honoured(server: Server) -> None:
    pool = lean_pool()
    try:
        for _ in range(5):
            reply = await pool.request("GET", server.url, {}, None)
            assert await reply.read() == b"ok"
            reply.release()
        assert server.connections == 1
        server.answer = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
        for _ in range(2):
            reply = await pool.request("GET", server.url, {}, None)
            assert await reply.read() == b"ok"
            reply.release()
        assert server.connections == 2  # the first answer with Connection: close ended the first
    finally:
        pool.close()


async def test_a_connection_the_server_closed_while_idle_is_not_reused(server: Server) -> None:
    server.close_after = True  # closed after its answer, without saying so
    pool = lean_pool()
    try:
        reply = await pool.request("GET", server.url, {}, None)
        assert await reply.read() == b"ok"
        reply.release()
        while pool._open:  # noqa: ASYNC110 - the server's close reaches the idle connection
            await asyncio.sleep(0.01)
        reply = await pool.request("GET", server.url, {}, None)
        assert await reply.read() == b"ok"
        reply.release()
    finally:
        pool.close()
    assert len(server.requests) == 2 and server.connections == 2


async def test_a_half_read_body_closes_its_connection(server: Server) -> None:
    server.answer = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100000
    pool = lean_pool()
    try:
        reply = await pool.request("GET", server.url, {}, None)
        assert len(await reply.content.read(10)) == 10
        reply.release()  # not at its end: closed, not pooled
        assert pool._open == 0
        reply = await pool.request("GET", server.url, {}, None)
        assert len(await reply.read()) == 100000
        reply.release()
        assert pool._open == 1
    finally:
        pool.close()
    assert server.connections == 2


async def test_the_limit_holds_and_a_cancelled_waiter_passes_its_turn(server: Server) -> None:
    server.hold = asyncio.Event()
    pool = lean_pool(limit=2)

    async def one() -> bytes:
        reply = await pool.request("GET", server.url, {}, None)
        try:
            return await reply.read()
        finally:
            reply.release()

    try:
        tasks = [asyncio.create_task(one()) for _ in range(6)]
        while len(server.requests) < 2 or len(pool._waiters) < 4:  # noqa: ASYNC110 - a polled state
            await asyncio.sleep(0.01)
        tasks[2].cancel()  # a waiter gives up
        await asyncio.gather(tasks[2], return_exceptions=True)
        server.hold.set()
        results = await asyncio.gather(*tasks[:2], *tasks[3:])
    finally:
        pool.close()
    assert results == [b"ok"] * 5
    assert server.most_open == 2 and server.connections == 2


async def test_a_cancel_during_the_exchange_closes_the_connection(server: Server) -> None:
    server.hold = asyncio.Event()
    pool = lean_pool()
    try:
        task = asyncio.create_task(pool.request("GET", server.url, {}, None))
        while not server.requests:  # noqa: ASYNC110 - a polled state
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert pool._open == 0 and not pool._idle.get(("http", "127.0.0.1", server.port))
    finally:
        server.hold.set()
        pool.close()


async def test_a_slow_reader_bounds_what_is_buffered(server: Server) -> None:
    size = 32 * 1024 * 1024
    server.answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + b"z" * size
    pool = lean_pool()
    try:
        reply = await pool.request("GET", server.url, {}, None)
        conn: Any = reply._conn
        most, got = 0, 0
        while chunk := await reply.content.read(64 * 1024):
            got += len(chunk)
            most = max(most, conn.buffered)
            await asyncio.sleep(0)  # let the socket deliver more, if it is read
        reply.release()
    finally:
        pool.close()
    assert got == size
    # paused above HIGH_WATER; one socket read of up to 256 KiB may land on top of it
    assert most <= h1.HIGH_WATER + 256 * 1024


async def test_the_transport_sends_small_requests_through_h1_and_large_ones_through_aiohttp(
    server: Server,
) -> None:
    transport = Transport(pool=4, connect_timeout=5, read_timeout=5)
    try:
        small = await transport.send("PUT", server.url, {}, b"s" * 10)
        large = await transport.send("PUT", server.url, {}, memoryview(b"l" * (h1.SMALL_BODY + 1)))
        assert (small.status, small.body, large.status, large.body) == (200, b"ok", 200, b"ok")
        assert transport._pool_h1 is not None and transport._pool_h1._open == 1
        assert transport._session is not None
    finally:
        await transport.aclose()
    assert [len(r) for r in server.requests][1] > h1.SMALL_BODY
    assert CIMultiDict(small.headers)["Content-Length"] == "2"


async def test_a_gcs_read_sends_the_same_bytes_through_either_client(server: Server) -> None:
    """GCS's streamed reads go through the lean client unless aiohttp must send them (a proxy,
    or a user's aiohttp trace): the request GCS sees is the same either way."""
    from aiobucket.providers.gcs._http import GcsHttp, HttpSettings

    server.answer = b"HTTP/1.1 200 OK\r\nX-Goog-Generation: 1\r\nContent-Length: 2\r\n\r\nok"
    root = f"http://127.0.0.1:{server.port}"
    bodies = []
    for traces in ((), (aiohttp.TraceConfig(),)):
        http = GcsHttp(HttpSettings(endpoint=root, emulator=True, trace_configs=traces))
        try:
            url = http.media_url("b", "dir/k", "alt=media")
            resp = await http.open(url, key="dir/k", what="download", headers={"Accept-Encoding": "gzip"})
            assert isinstance(resp, h1.Reply) is not bool(traces)
            bodies.append((resp.status, resp.headers["X-Goog-Generation"], await resp.content.read(10)))
            resp.release()
        finally:
            await http.aclose()
    theirs, ours = server.requests[1], server.requests[0]
    assert ours == theirs and b"Accept-Encoding: gzip" in ours
    assert bodies == [(200, "1", b"ok")] * 2


def test_a_read_joins_what_the_socket_delivered_in_pieces() -> None:
    """A consumer slower than the socket gets up to ``n`` bytes per read, joined across
    socket reads (as aiohttp's ``read(n)``), and never more than ``n``."""
    conn: Any = h1._Conn.__new__(h1._Conn)
    conn.chunks = collections.deque([b"a" * 10, b"b" * 10, b"c" * 10])
    conn.buffered, conn.paused, conn.transport = 30, False, None
    assert conn.take(25) == b"a" * 10 + b"b" * 10 + b"c" * 5
    assert conn.take(25) == b"c" * 5 and conn.buffered == 0
    conn.chunks.append(b"d" * 10)
    conn.buffered = 10
    assert conn.take(4) == b"dddd" and list(conn.chunks) == [b"d" * 6]


async def test_an_answer_read_whole_is_never_held_by_flow_control(server: Server) -> None:
    """A listing or an error body is read whole: one larger than ``HIGH_WATER`` must not
    pause the socket for good (that would end in a stall timeout), even after a streamed
    read of part of it paused it."""
    size = h1.HIGH_WATER * 2
    server.answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + b"w" * size
    pool = h1.Pool(limit=2, connect_timeout=5.0, read_timeout=3.0, ssl_context=None)
    try:
        reply = await pool.request("GET", server.url, {}, None)
        assert len(await reply.read()) == size
        reply.release()
        reply = await pool.request("GET", server.url, {}, None)
        first = await reply.content.read(10)
        while not reply._conn.paused:  # type: ignore[union-attr]  # noqa: ASYNC110 - a polled state
            await asyncio.sleep(0.01)
        assert len(first) + len(await reply.read()) == size
        reply.release()
    finally:
        pool.close()


GCS_CALLS: list[tuple[str, str, dict[str, str] | None, dict[str, str], bytes | memoryview | None]] = [
    ("GET", "/storage/v1/b/b/o/dir%2Fk", {"fields": "name,generation"}, {}, None),
    ("GET", "/storage/v1/b/b/o", {"prefix": "a b/é", "delimiter": "/"}, {}, None),
    ("DELETE", "/storage/v1/b/b/o/k", {"ifGenerationMatch": "7"}, {}, None),
    (
        "POST",
        "/upload/storage/v1/b/b/o",
        {"uploadType": "multipart"},
        {"Content-Type": "multipart/related; boundary=x"},
        b"--x--",
    ),
    ("POST", "/storage/v1/b/b/o/k/rewriteTo/b/o/k2", None, {}, None),
    (
        "PUT",
        "/upload/storage/v1/b/b/o",
        {"upload_id": "u1"},
        {"Content-Range": "bytes 0-2/3"},
        memoryview(b"abc"),
    ),
    ("PATCH", "/storage/v1/b/b/o/k", None, {"Content-Type": "application/json"}, b'{"metadata":{}}'),
]


@pytest.mark.parametrize(("method", "path", "params", "headers", "data"), GCS_CALLS)
async def test_a_gcs_call_sends_the_same_bytes_through_either_client(
    server: Server,
    method: str,
    path: str,
    params: dict[str, str] | None,
    headers: dict[str, str],
    data: bytes | memoryview | None,
) -> None:
    """GCS's whole-answer requests (metadata, listings, small uploads) go through the lean
    client unless aiohttp must send them: the request is the same, and so is the answer,
    a gzip-encoded one decoded as aiohttp's session decodes it."""
    import gzip

    from aiobucket.providers.gcs._http import GcsHttp, HttpSettings, Kind

    # Google's APIs gzip an answer for a client that accepts it (aiohttp's session sends
    # "Accept-Encoding: gzip, deflate"): https://cloud.google.com/storage/docs/json_api/v1/how-tos/performance#gzip
    packed = gzip.compress(b'{"name": "k"}')
    server.answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
        + f"Content-Length: {len(packed)}\r\n\r\n".encode()
        + packed
    )
    root = f"http://127.0.0.1:{server.port}"
    answers = []
    for traces in ((), (aiohttp.TraceConfig(),)):
        http = GcsHttp(HttpSettings(endpoint=root, emulator=True, trace_configs=traces))
        try:
            reply = await http.call(
                method,
                root + path,
                kind=Kind.READ,
                key="k",
                what="t",
                params=params,
                headers=headers,
                data=data,
            )
            assert (http._pool_h1 is None) is bool(traces)
            answers.append((reply.status, reply.body, reply.headers["Content-Encoding"]))
        finally:
            await http.aclose()
    ours, theirs = server.requests
    assert ours == theirs
    assert answers == [(200, b'{"name": "k"}', "gzip")] * 2


async def test_a_gcs_call_ends_at_its_total_limit_through_either_client(server: Server) -> None:
    """A small GCS request has a total limit (``request_timeout``): an answer that never
    comes ends as TimeoutError after the configured attempts, through either client."""
    from aiobucket.errors import BackendError
    from aiobucket.providers.gcs._http import GcsHttp, HttpSettings, Kind, RetryPolicy

    server.hold = asyncio.Event()
    root = f"http://127.0.0.1:{server.port}"
    policy = RetryPolicy(initial=0.01, cap=0.01, attempts=2)
    for traces in ((), (aiohttp.TraceConfig(),)):
        settings = HttpSettings(
            endpoint=root, emulator=True, trace_configs=traces, request_timeout=0.2, retry=policy
        )
        http = GcsHttp(settings)
        try:
            with pytest.raises(BackendError) as failed:
                await http.call("GET", root + "/storage/v1/b/b/o/k", kind=Kind.READ, key="k", what="t")
            assert isinstance(failed.value.__cause__, TimeoutError)
        finally:
            await http.aclose()
    server.hold.set()
    assert len(server.requests) == 4  # 2 attempts each
