"""The shared HTTP transport (S3, Azure): the headers it sends, and its shield for a write on the wire.

``_on_wire`` makes the same promise as ``run_to_completion``: a cancel of the caller waits for the
exchange to end and is then re-raised, delayed and never swallowed; the exchange
is never interrupted; its outcome is retrieved; no task is left behind.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from yarl import URL

from aiobucket.providers._http.transport import Transport, _on_wire

pytestmark = pytest.mark.anyio


async def spin(n: int = 20) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


class Exchange:
    def __init__(self, result: Any = "response", error: BaseException | None = None) -> None:
        self.release = asyncio.Event()
        self.started = False
        self.finished = False
        self.result = result
        self.error = error

    async def __call__(self) -> Any:
        self.started = True
        await self.release.wait()
        self.finished = True
        if self.error is not None:
            raise self.error
        return self.result


def shielded() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name() == "aiobucket-shielded"]


async def test_returns_the_result_and_raises_the_error() -> None:
    ok = Exchange(result=7)
    ok.release.set()
    assert await _on_wire(ok()) == 7
    err = ValueError("reset")
    bad = Exchange(error=err)
    bad.release.set()
    with pytest.raises(ValueError) as info:
        await _on_wire(bad())
    assert info.value is err
    assert not shielded()


@pytest.mark.parametrize("cancels", [1, 2, 3])
async def test_a_cancel_waits_for_the_exchange_then_is_re_raised(cancels: int) -> None:
    exchange = Exchange()
    caller = asyncio.create_task(_on_wire(exchange()))
    await spin()
    assert exchange.started
    inner = shielded()
    assert len(inner) == 1
    for _ in range(cancels):
        caller.cancel()
        await spin()
        assert not caller.done()  # still waiting: the request is on the wire
        assert not exchange.finished
    exchange.release.set()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert exchange.finished and caller.cancelled()
    assert inner[0].done() and inner[0].result() == "response"
    assert not [t for t in shielded() if not t.done()]


async def test_the_cancel_wins_over_a_later_failure() -> None:
    exchange = Exchange(error=ConnectionResetError("reset after the cancel"))
    caller = asyncio.create_task(_on_wire(exchange()))
    await spin()
    caller.cancel()
    await spin()
    exchange.release.set()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert exchange.finished


async def test_no_automatic_headers_reach_the_wire() -> None:
    """Only the headers we sign (and aiohttp's Host/Content-Length) are sent: no Accept,
    Accept-Encoding, User-Agent, nor a default Content-Type on a PUT without one."""
    seen: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head)
        await reader.readexactly(5)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = Transport(pool=2, connect_timeout=5, read_timeout=5)
    try:
        url = URL(f"http://127.0.0.1:{port}/b/k", encoded=True)
        resp = await transport.send("PUT", url, {"x-amz-date": "d"}, memoryview(b"hello"), shield=True)
        assert resp.status == 200
    finally:
        await transport.aclose()
        server.close()
        await server.wait_closed()
    lines = seen[0].decode("latin-1").split("\r\n")
    names = sorted(line.split(":", 1)[0].lower() for line in lines[1:] if line)
    assert lines[0] == "PUT /b/k HTTP/1.1"
    assert names == ["content-length", "host", "x-amz-date"]
