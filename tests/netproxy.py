"""A corporate network on loopback: a CONNECT proxy, and a TLS front for a plain-HTTP server.

- ``TunnelProxy()``: an HTTP proxy that answers ``CONNECT host:port`` with 200 and then
  pipes bytes both ways (what ``HTTPS_PROXY`` points clients at). It counts the tunnels
  (``tunnels``: the targets asked for) and the bytes each way (``sent``, ``received``).
  Anything but CONNECT gets 405: plain-HTTP proxying is ``faultproxy.FaultProxy``'s job
  (it takes absolute-form requests and records each one).
- ``TLSFront(upstream, cert)``: TLS on 127.0.0.1 in front of an ``http://`` server, so
  that a real S3 server (SeaweedFS) can be reached over https with a throwaway CA
  (``trustme``), whose PEM tests hand to the client as ``AWS_CA_BUNDLE``.

Each runs its own event loop in a thread (like FaultProxy), so sync fixtures can start it
and a test's loop cannot starve it. ``stop()`` closes every socket and joins the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from urllib.parse import urlsplit

__all__ = ["TLSFront", "TunnelProxy"]

_CHUNK = 64 * 1024


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, count: list[int]) -> None:
    try:
        while data := await src.read(_CHUNK):
            count[0] += len(data)
            dst.write(data)
            await dst.drain()
    except (ConnectionError, OSError, ssl.SSLError):
        pass
    finally:
        with contextlib.suppress(Exception):
            dst.close()


async def _splice(
    a: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    b: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    out: list[int],
    back: list[int],
) -> None:
    await asyncio.gather(_pipe(a[0], b[1], out), _pipe(b[0], a[1], back))


class _Server:
    """A loopback server run on its own loop in a thread."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl = ssl_context
        self.port = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    def start(self) -> _Server:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()

        def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self._writers.add(writer)
            task = asyncio.get_running_loop().create_task(self.handle(reader, writer))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        server = await asyncio.start_server(accept, "127.0.0.1", 0, ssl=self._ssl)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            server.close()
            for t in list(self._tasks):
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            for w in self._writers:
                with contextlib.suppress(Exception):
                    w.close()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError


class TunnelProxy(_Server):
    """CONNECT only; counts tunnels and bytes."""

    def __init__(self) -> None:
        super().__init__()
        self.tunnels: list[str] = []
        self.authorizations: list[str | None] = []
        """Each CONNECT's Proxy-Authorization header (None: none sent)."""
        self.refused: list[str] = []
        self._sent, self._received = [0], [0]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def sent(self) -> int:
        """Bytes from clients to servers, through every tunnel."""
        return self._sent[0]

    @property
    def received(self) -> int:
        return self._received[0]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        if method != "CONNECT":
            self.refused.append(f"{method} {target}")
            writer.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
            writer.close()
            return
        host, _, port = target.rpartition(":")
        self.tunnels.append(target)
        lines = head.decode("latin-1").split("\r\n")[1:]
        auth = [
            v.strip() for n, _, v in (x.partition(":") for x in lines) if n.lower() == "proxy-authorization"
        ]
        self.authorizations.append(auth[0] if auth else None)
        try:
            up = await asyncio.open_connection(host.strip("[]"), int(port))
        except OSError:
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            writer.close()
            return
        self._writers.add(up[1])
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        await _splice((reader, writer), up, self._sent, self._received)

    def __enter__(self) -> TunnelProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class TLSFront(_Server):
    """TLS termination on 127.0.0.1 in front of ``upstream`` (http://host:port)."""

    def __init__(self, upstream: str, server_context: ssl.SSLContext) -> None:
        super().__init__(server_context)
        parts = urlsplit(upstream)
        assert parts.hostname is not None
        self._host, self._port = parts.hostname, parts.port or 80
        self.connections = 0

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        up = await asyncio.open_connection(self._host, self._port)
        self._writers.add(up[1])
        await _splice((reader, writer), up, [0], [0])

    def __enter__(self) -> TLSFront:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
