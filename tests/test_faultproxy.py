"""The fault proxy itself, against a small real aiohttp server and a real aiohttp client.

Each fault is shown as the client sees it and, where it matters, as the server saw it
(applied or not). The upstream server runs in the test's loop; the proxy in its own thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from faultproxy import (
    FaultProxy,
    FlipByte,
    LieLength,
    Request,
    ResetRequest,
    ResetResponse,
    Respond,
    Rewrite,
    Stall,
    TruncateRequest,
    gcs_error,
    lose_response,
    s3_error,
)
from faultproxy import fault_proxy as fault_proxy  # the fixture, for test_fixture_factory

pytestmark = pytest.mark.anyio

KiB = 1024
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
DISCONNECTS = (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError)


@dataclass
class Upstream:
    """The real server behind the proxy: a key/value store that logs what it received."""

    url: str
    store: dict[str, bytes] = field(default_factory=dict)
    seen: list[tuple[str, str, int]] = field(default_factory=list)  # (method, path, client port)
    failed_reads: int = 0


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    up = Upstream("")

    @web.middleware
    async def log(request: web.Request, handler: Handler) -> web.StreamResponse:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        up.seen.append((request.method, request.path, peer[1] if peer else 0))
        return await handler(request)

    async def put(request: web.Request) -> web.Response:
        try:
            data = await request.read()
        except Exception:
            up.failed_reads += 1
            raise
        up.store[request.match_info["key"]] = data
        return web.json_response({"md5": hashlib.md5(data).hexdigest(), "length": len(data)})

    async def get(request: web.Request) -> web.Response:
        data = up.store.get(request.match_info["key"])
        if data is None:
            raise web.HTTPNotFound()
        headers = {"X-Md5": hashlib.md5(data).hexdigest()}
        if "Range" not in request.headers:
            return web.Response(body=data, headers=headers)
        start = request.http_range.start or 0
        headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        return web.Response(status=206, body=data[start:], headers=headers)

    async def chunked(request: web.Request) -> web.StreamResponse:
        data = up.store[request.match_info["key"]]
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(0, len(data), 7 * KiB):
            await resp.write(data[i : i + 7 * KiB])
        await resp.write_eof()
        return resp

    async def session(request: web.Request) -> web.Response:
        return web.Response(status=201, headers={"Location": f"{up.url}/o/sess?upload_id=1"})

    app = web.Application(middlewares=[log])
    app.router.add_put("/o/{key}", put)
    app.router.add_get("/o/{key}", get)
    app.router.add_get("/chunked/{key}", chunked)
    app.router.add_post("/session", session)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    up.url = f"http://127.0.0.1:{port}"
    try:
        yield up
    finally:
        await runner.cleanup()


@pytest.fixture
def proxy(upstream: Upstream) -> Iterator[FaultProxy]:
    # Session-scoped personas keep their own proxies running: only this proxy's threads count.
    before = set(threading.enumerate())
    with FaultProxy(upstream.url) as p:
        yield p
    assert not any(t.name.startswith("faultproxy") for t in set(threading.enumerate()) - before)


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    # One connection at a time, so keep-alive reuse is observable.
    conn = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=10)) as s:
        # aiohttp silently resends an idempotent request once when a kept-alive connection
        # fails; the tests count attempts, so turn that off (aiobucket's GCS session does too).
        s._retry_connection = False
        yield s


async def _put(client: aiohttp.ClientSession, url: str, data: bytes | AsyncIterator[bytes]) -> int:
    async with client.put(url, data=data) as r:
        await r.read()
        return r.status


async def _pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


# -- pass-through ------------------------------------------------------------------


async def test_passthrough_put_get_head_chunked_keepalive(
    upstream: Upstream, proxy: FaultProxy, client: aiohttp.ClientSession
) -> None:
    data = os.urandom(300 * KiB + 5)
    assert await _put(client, f"{proxy.url}/o/a", data) == 200
    assert upstream.store["a"] == data
    async with client.get(f"{proxy.url}/o/a") as r:
        assert r.status == 200 and await r.read() == data
        assert r.headers["X-Md5"] == hashlib.md5(data).hexdigest()
    async with client.head(f"{proxy.url}/o/a") as r:
        assert r.status == 200 and r.headers["Content-Length"] == str(len(data))
        assert await r.read() == b""
    # chunked both ways
    assert await _put(client, f"{proxy.url}/o/b", _pieces(data, 10 * KiB)) == 200
    assert upstream.store["b"] == data
    async with client.get(f"{proxy.url}/chunked/b") as r:
        assert r.headers["Transfer-Encoding"] == "chunked"
        assert await r.read() == data
    # 100-continue: the server's interim answer is relayed before the body flows
    async with client.put(f"{proxy.url}/o/c", data=data[:1000], expect100=True) as r:
        assert r.status == 200
    assert upstream.store["c"] == data[:1000]
    async with client.get(f"{proxy.url}/o/missing") as r:
        assert r.status == 404
    await proxy.settled()
    reqs = proxy.requests
    assert [r.method for r in reqs] == ["PUT", "GET", "HEAD", "PUT", "GET", "PUT", "GET"]
    assert [r.body_length for r in reqs] == [len(data), 0, 0, len(data), 0, 1000, 0]
    assert [r.status for r in reqs] == [200, 200, 200, 200, 200, 200, 404]
    # keep-alive: each client connection is mirrored by one upstream connection, and they
    # are reused (the client's pool may open a second one under load, never one a request)
    client_connections = {r.connection for r in reqs}
    assert len(client_connections) <= 2 < len(reqs)
    assert len({port for _, _, port in upstream.seen}) == len(client_connections)


async def test_location_pointing_upstream_is_rewritten(
    proxy: FaultProxy, client: aiohttp.ClientSession
) -> None:
    async with client.post(f"{proxy.url}/session") as r:
        assert r.headers["Location"] == f"{proxy.url}/o/sess?upload_id=1"


# -- injected answers ---------------------------------------------------------------


async def test_respond_without_forwarding_then_pass(
    upstream: Upstream, proxy: FaultProxy, client: aiohttp.ClientSession
) -> None:
    rule = proxy.add_rule(s3_error(503, "SlowDown"), method="PUT", times=2)
    data = os.urandom(100 * KiB)
    for _ in range(2):
        async with client.put(f"{proxy.url}/o/k", data=data) as r:
            assert r.status == 503
            assert r.headers["Content-Type"] == "application/xml"
            assert b"<Code>SlowDown</Code>" in await r.read()
    assert "k" not in upstream.store and upstream.seen == []
    assert await _put(client, f"{proxy.url}/o/k", data) == 200
    assert upstream.store["k"] == data
    assert (rule.seen, rule.hits) == (2, 2)
    await proxy.settled()
    reqs = proxy.requests
    assert [r.status for r in reqs] == [503, 503, 200]
    assert [r.forwarded for r in reqs] == [False, False, True]
    assert reqs[0].fault == s3_error(503, "SlowDown") and reqs[2].fault is None
    assert [r.body_length for r in reqs] == [len(data)] * 3  # the refused bodies were consumed...
    assert {r.connection for r in reqs} == {1}  # ...so the connection stayed usable


async def test_after_selects_the_nth_match_and_filters_combine(
    upstream: Upstream, proxy: FaultProxy, client: aiohttp.ClientSession
) -> None:
    upstream.store["x"] = b"x"
    proxy.add_rule(gcs_error(500), method="GET", path=re.compile(r"^/o/x$"), query="alt=media", after=1)
    proxy.add_rule(Respond(412), header="If-Match")
    proxy.add_rule(Respond(404, b"nope"), when=lambda r: r.path.endswith("/y"))
    statuses = []
    for url, headers in [
        ("/o/x?alt=media", {}),  # 1st match of rule 1: skipped
        ("/o/x", {}),  # no query: no match
        ("/o/x?alt=media", {}),  # 2nd match: 500
        ("/o/x?alt=media", {}),  # rule used up
        ("/o/x", {"If-Match": '"e"'}),
        ("/o/y", {}),
    ]:
        async with client.get(proxy.url + url, headers=headers) as r:
            statuses.append(r.status)
            body = await r.read()
    assert statuses == [200, 200, 500, 200, 412, 404]
    assert body == b"nope"
    assert [m for m, _, _ in upstream.seen] == ["GET"] * 3
    await proxy.settled()
    assert proxy.requests[2].header("x-unknown") is None
    assert len(proxy.matching(method="GET", query="alt=media")) == 3


# -- resets ---------------------------------------------------------------------------


async def test_reset_before_forwarding(
    upstream: Upstream, proxy: FaultProxy, client: aiohttp.ClientSession
) -> None:
    proxy.add_rule(ResetRequest(), method="PUT")
    with pytest.raises(DISCONNECTS):
        await _put(client, f"{proxy.url}/o/k", b"data")
    assert upstream.seen == [] and upstream.store == {}
    assert await _put(client, f"{proxy.url}/o/k", b"data") == 200  # a fresh connection works
    await proxy.settled()
    first, second = proxy.requests
    assert not first.forwarded and first.status is None and second.connection != first.connection


async def test_reset_mid_request_is_not_applied(
    upstream: Upstream, proxy: FaultProxy, client: aiohttp.ClientSession
) -> None:
    proxy.add_rule(ResetRequest(after=100 * KiB), method="PUT")
    with pytest.raises(DISCONNECTS):
        await _put(client, f"{proxy.url}/o/k", os.urandom(1024 * KiB))
    await proxy.settled()
    (rec,) = proxy.requests
    assert rec.forwarded and rec.status is None and rec.body_length >= 100 * KiB
    for _ in range(100):  # the server notices the cut asynchronously
        if upstream.failed_reads:
            break
        await asyncio.sleep(0.01)
    assert upstream.failed_reads == 1 and "k" not in upstream.store


async def test_lost_response_is_applied_on_the_server(
    upstream: Upstream, proxy: FaultProxy, client: aiohttp.ClientSession
) -> None:
    proxy.add_rule(lose_response(), method="PUT")
    data = os.urandom(200 * KiB)
    with pytest.raises(DISCONNECTS):
        await _put(client, f"{proxy.url}/o/k", data)
    assert upstream.store["k"] == data
    await proxy.settled()
    (rec,) = proxy.requests
    assert rec.status == 200 and rec.fault == lose_response() and rec.body_length == len(data)


@pytest.mark.parametrize("path", ["/o/k", "/chunked/k"])
async def test_reset_mid_response_after_n_bytes(
    upstream: Upstream, proxy: FaultProxy, client: aiohttp.ClientSession, path: str
) -> None:
    upstream.store["k"] = data = os.urandom(500 * KiB)
    proxy.add_rule(ResetResponse(after=123_457), method="GET")
    got = bytearray()
    with pytest.raises(DISCONNECTS):
        async with client.get(proxy.url + path) as r:
            assert r.status == 200
            async for piece in r.content.iter_any():
                got += piece
    assert len(got) == 123_457, len(got)
    assert bytes(got) == data[:123_457]
    async with client.get(proxy.url + path) as r:  # once only
        assert await r.read() == data


# -- stalls -------------------------------------------------------------------------


async def test_stall_mid_response_times_the_client_out(
    upstream: Upstream, proxy: FaultProxy, client: aiohttp.ClientSession
) -> None:
    upstream.store["k"] = data = os.urandom(100 * KiB)
    proxy.add_rule(Stall(None, "response", after=10), method="GET")
    async with client.get(f"{proxy.url}/o/k") as r:
        assert await r.content.readexactly(10) == data[:10]  # what came before the stall
        with pytest.raises(TimeoutError):  # and nothing after it
            await asyncio.wait_for(r.content.read(1), 0.2)
    await proxy.settled()  # the client gave up and closed: the stall ends instead of lingering
    assert proxy.requests[0].error == "_Closed: the client went away during a stall"
    proxy.add_rule(Stall(0.05, "request"), method="GET")  # a short stall still completes
    async with client.get(f"{proxy.url}/o/k") as r:
        assert await r.read() == data


async def test_stop_cancels_a_stalled_exchange(upstream: Upstream, client: aiohttp.ClientSession) -> None:
    p = FaultProxy(upstream.url).start()
    p.add_rule(Stall(None, "request"))
    task = asyncio.create_task(_put(client, f"{p.url}/o/k", b"x"))
    for _ in range(500):
        if p.requests:
            break
        await asyncio.sleep(0.01)
    await asyncio.to_thread(p.stop)  # returns although the stall would never end
    with pytest.raises(DISCONNECTS):
        await task
    assert upstream.seen == [] and p.requests[0].done


# -- corruption and length lies ------------------------------------------------------


async def test_flip_a_response_byte(
    upstream: Upstream, proxy: FaultProxy, client: aiohttp.ClientSession
) -> None:
    upstream.store["k"] = data = os.urandom(300 * KiB)
    proxy.add_rule(FlipByte(200_000, "response", mask=0x80), path="/chunked/")
    async with client.get(f"{proxy.url}/chunked/k") as r:
        got = await r.read()
    assert len(got) == len(data)
    assert [i for i in range(len(data)) if got[i] != data[i]] == [200_000]
    assert got[200_000] == data[200_000] ^ 0x80


async def test_flip_an_object_byte_in_whole_and_ranged_answers(
    upstream: Upstream, proxy: FaultProxy, client: aiohttp.ClientSession
) -> None:
    """``in_object``: the same object byte is wrong in every answer that holds it."""
    upstream.store["k"] = data = os.urandom(300 * KiB)
    at = 200_000
    proxy.add_rule(FlipByte(at, in_object=True), method="GET", times=None)
    for start in (0, 150_000, at, at + 1):
        headers = {"Range": f"bytes={start}-"} if start else {}
        async with client.get(f"{proxy.url}/o/k", headers=headers) as r:
            assert r.status == (206 if start else 200)
            got = await r.read()
        want = data[start:]
        diff = [start + i for i in range(len(want)) if got[i] != want[i]]
        assert diff == ([at] if start <= at else [])


async def test_flip_a_request_byte(
    upstream: Upstream, proxy: FaultProxy, client: aiohttp.ClientSession
) -> None:
    data = os.urandom(100 * KiB)
    proxy.add_rule(FlipByte(0, "request"), method="PUT")
    assert await _put(client, f"{proxy.url}/o/k", data) == 200
    stored = upstream.store["k"]
    assert stored[0] == data[0] ^ 1 and stored[1:] == data[1:]


async def test_response_length_lies(
    upstream: Upstream, proxy: FaultProxy, client: aiohttp.ClientSession
) -> None:
    upstream.store["k"] = data = os.urandom(50 * KiB)
    proxy.add_rule(LieLength(1000), path="/chunked/")  # shorter: a complete, truncated body
    async with client.get(f"{proxy.url}/chunked/k") as r:
        assert r.headers["Content-Length"] == "1000" and "Transfer-Encoding" not in r.headers
        assert await r.read() == data[:1000]
    async with client.get(f"{proxy.url}/o/k") as r:  # and the connection is still in sync
        assert await r.read() == data
    proxy.add_rule(LieLength(len(data) + 10))  # longer: the body ends early
    with pytest.raises(aiohttp.ClientPayloadError):
        async with client.get(f"{proxy.url}/o/k") as r:
            await r.read()


async def test_request_length_lies(
    upstream: Upstream, proxy: FaultProxy, client: aiohttp.ClientSession
) -> None:
    data = os.urandom(50 * KiB)
    proxy.add_rule(LieLength(1000, "request"))  # the server stores a short, complete body
    assert await _put(client, f"{proxy.url}/o/short", _pieces(data, 4 * KiB)) == 200
    assert upstream.store["short"] == data[:1000]
    proxy.add_rule(TruncateRequest(after=1000))  # declared length kept: the server sees it end early
    with pytest.raises(DISCONNECTS):
        status = await _put(client, f"{proxy.url}/o/cut", data)
        assert status >= 400  # a server may answer the short body with an error instead
        raise aiohttp.ServerDisconnectedError()
    assert "cut" not in upstream.store
    await proxy.settled()
    assert [r.body_length for r in proxy.requests] == [len(data), len(data)]


# -- the fixture ------------------------------------------------------------------------


async def test_fixture_factory(upstream: Upstream, fault_proxy: Callable[..., FaultProxy]) -> None:
    p = fault_proxy(upstream.url)
    p.add_rule(Respond(500), times=None)
    async with aiohttp.ClientSession() as s:
        for _ in range(3):
            async with s.get(f"{p.url}/o/k") as r:
                assert r.status == 500
    p.clear()
    assert p.requests == []
    async with aiohttp.ClientSession() as s, s.get(f"{p.url}/o/k") as r:
        assert r.status == 404
    records: list[Request] = p.requests
    assert [r.status for r in records] == [404]


# -- head rewrites, closing, lifecycle ----------------------------------------------------


async def test_rewrite_request_and_response_heads(
    upstream: Upstream, proxy: FaultProxy, client: aiohttp.ClientSession
) -> None:
    upstream.store["k"] = data = os.urandom(10 * KiB)
    # Dropping Range makes the server answer a resume with the whole object.
    proxy.add_rule(Rewrite("request", {"Range": None}), header="Range")
    async with client.get(f"{proxy.url}/o/k", headers={"Range": "bytes=100-"}) as r:
        assert r.status == 200 and await r.read() == data
    async with client.get(f"{proxy.url}/o/k", headers={"Range": "bytes=100-"}) as r:
        assert r.status == 206 and await r.read() == data[100:]
    proxy.add_rule(Rewrite("response", {"X-Md5": "0" * 32, "X-New": "1"}, status=203))
    async with client.get(f"{proxy.url}/o/k") as r:
        assert (r.status, r.headers["X-Md5"], r.headers["X-New"]) == (203, "0" * 32, "1")
        assert await r.read() == data
    await proxy.settled()
    assert [r.status for r in proxy.requests] == [200, 206, 200]  # what the server answered


async def test_connection_ends_are_mirrored(proxy: FaultProxy, client: aiohttp.ClientSession) -> None:
    # An injected answer that says "Connection: close" closes the client connection.
    proxy.add_rule(Respond(503, headers={"Connection": "close"}))
    async with client.get(f"{proxy.url}/o/k") as r:
        assert r.status == 503
    async with client.get(f"{proxy.url}/o/k") as r:
        assert r.status == 404
    await proxy.settled()
    first, second = proxy.requests
    assert first.connection != second.connection and first.error is None


async def test_an_idle_server_close_closes_the_client_connection() -> None:
    async def answer_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")  # no "Connection: close"
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(answer_then_close, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        async with FaultProxy(f"http://127.0.0.1:{port}") as p:
            reader, writer = await asyncio.open_connection("127.0.0.1", p.port)
            try:
                writer.write(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
                assert await reader.read() == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"  # then EOF
            finally:
                writer.close()
                await writer.wait_closed()
            await p.settled()
            assert p.requests[0].status == 200
    finally:
        server.close()
        await server.wait_closed()


async def test_errors_are_recorded_and_rules_can_fire_forever(
    upstream: Upstream, proxy: FaultProxy, client: aiohttp.ClientSession
) -> None:
    rule = proxy.add_rule(ResetResponse(after=0, rst=False), times=None)
    for _ in range(3):
        with pytest.raises(DISCONNECTS):
            async with client.put(f"{proxy.url}/o/k", data=b"abc") as r:
                await r.read()
    assert rule.hits == 3 and upstream.store["k"] == b"abc"
    await proxy.settled()
    assert {r.error for r in proxy.requests} == {"_Closed: response reset by fault"}
    await asyncio.to_thread(proxy.wait_closed)  # each reset connection closes (raises if one stays)
    assert proxy.open_connections == 0
    proxy.clear()
    assert proxy.requests == []
    assert await _put(client, f"{proxy.url}/o/k", b"abcd") == 200


async def test_request_declared_longer_than_sent(
    upstream: Upstream, proxy: FaultProxy, client: aiohttp.ClientSession
) -> None:
    proxy.add_rule(LieLength(5000, "request"))  # 3000 bytes sent, 5000 declared
    with pytest.raises(DISCONNECTS):
        status = await _put(client, f"{proxy.url}/o/k", os.urandom(3000))
        assert status >= 400
        raise aiohttp.ServerDisconnectedError()
    assert "k" not in upstream.store
