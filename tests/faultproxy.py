"""A fault-injecting HTTP/1.1 proxy for tests: put it between a client and a real server.

The proxy listens on 127.0.0.1 (a free port) and pins one upstream connection to each
client connection, forwarding byte for byte: heads, Content-Length and chunked bodies,
HEAD responses, 1xx interim answers (``Expect: 100-continue``) and keep-alive. When the
server closes a connection, the client's is closed too. The one rewrite is a ``Location``
header naming the upstream origin: it is pointed at the proxy, so that resumable-upload
session URIs (fake-gcs-server) keep going through it (``rewrite_location=False``: off).

Rules (``add_rule(fault, method=, path=, query=, header=, when=, times=1, after=0)``) are
tried in order for each request; the first that fires applies its fault. Faults:

- ``Respond(status, body, headers)`` (``s3_error``, ``gcs_error``): answer, forward nothing;
- ``Answer(make)``: answer with ``make(request)``, a ``Respond`` built from the request;
- ``ResetRequest(after=None|N)``: RST before forwarding, or after N request-body bytes;
- ``ResetResponse(after=None|N)`` (``lose_response()``): the server answers (the request is
  applied), the client gets nothing, or the head and N body bytes, then an RST (or FIN);
- ``Stall(seconds|None, "request"|"response", after=None|N)``: a pause, cancelled by stop();
- ``FlipByte(offset, "request"|"response", mask, in_object=False)``: corrupt one body byte
  (``in_object``: byte ``offset`` of the object, wherever a 200 or 206 answer holds it);
- ``LieLength(declared, "request"|"response")``: rewrite Content-Length, send that much;
- ``TruncateRequest(after)``: keep the declared length, send ``after`` bytes, then EOF;
- ``Rewrite("request"|"response", headers, status)``: edit a head (e.g. drop ``Range``).

Every request is recorded (``proxy.requests``, ``proxy.matching(...)``) with its headers,
body length, fault, the server's status, whether it was forwarded, and why it ended.

Threading: the proxy runs its own event loop in its own thread. Sync fixtures can start
it, it keeps serving while the test's loop is blocked, and a test cannot starve it.
Rules and records are shared under a lock; records are updated by the proxy thread while
a request is in flight, so call ``proxy.wait_idle()`` (or ``await proxy.settled()``)
before asserting on a request whose client saw an error.

Counting attempts: aiohttp's ClientSession silently resends an idempotent request once
when a kept-alive connection breaks (``_retry_connection``); a client that does not turn
that off shows one more request here than its own retry loop made.

Invariants: bodies stream in pieces of at most 64 KiB under flow control (nothing is
buffered whole); a reset is a real RST (SO_LINGER 0), sent once what came before it has
reached the peer; ``stop()`` cancels every exchange, closes every socket, joins the thread,
and raises if the proxy itself failed.

S3 (SeaweedFS; ``S3Server`` is a dataclass, so point a copy at the proxy)::

    from dataclasses import replace
    from faultproxy import FaultProxy, lose_response, s3_error

    with FaultProxy(s3_server.endpoint) as proxy:
        settings = replace(s3_server, endpoint=proxy.url).settings(key_prefix="t1/")
        proxy.add_rule(s3_error(503, "SlowDown"), method="PUT", times=2)
        proxy.add_rule(lose_response(), method="PUT", header="If-None-Match")
        ...  # config.override({name: settings}) and use the bucket
        proxy.wait_idle()
        assert len(proxy.matching(method="PUT")) == 4

GCS (fake-gcs-server)::

    with FaultProxy(gcs_server.endpoint) as proxy:
        settings = {"url": f"gs://{gcs_server.bucket}?endpoint={proxy.url}&emulator=true"}
        proxy.add_rule(ResetResponse(after=1000), method="GET", query="alt=media")
        proxy.add_rule(gcs_error(503), method="PUT", query="upload_id=", after=1)
        ...

As a pytest fixture: import it into the test module (``from faultproxy import fault_proxy
as fault_proxy``) or list ``"faultproxy"`` in the root conftest's ``pytest_plugins``::

    def test_x(fault_proxy):
        proxy = fault_proxy(upstream_url)  # started now, stopped at teardown
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import re
import socket
import struct
import termios
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Literal, Protocol, cast
from urllib.parse import urlsplit

import pytest

__all__ = [
    "Answer",
    "FaultProxy",
    "FlipByte",
    "LieLength",
    "Request",
    "ResetRequest",
    "ResetResponse",
    "Respond",
    "Rewrite",
    "Rule",
    "Stall",
    "TruncateRequest",
    "fault_proxy",
    "gcs_error",
    "lose_response",
    "s3_error",
]

CHUNK = 64 * 1024
HEAD_LIMIT = 64 * 1024
Side = Literal["request", "response"]


# -- faults ----------------------------------------------------------------------


@dataclass(frozen=True)
class Respond:
    """Answer with this status (and body/headers) without forwarding anything upstream."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    reason: str | None = None  # default: the standard phrase


@dataclass(frozen=True)
class ResetRequest:
    """RST both connections: before forwarding (``after=None``) or after head + ``after`` body bytes.

    If the body is not longer than ``after`` (a GET, say), the whole request reached the
    server before the reset, so it may have been applied.
    """

    after: int | None = None


@dataclass(frozen=True)
class ResetResponse:
    """Forward the request, let the server answer, then drop the client connection.

    ``after=None``: the server's whole response is read and discarded, the client gets
    nothing (the lost response). ``after=N``: the head and N body bytes reach the client.
    ``rst=False`` closes with FIN instead of RST.
    """

    after: int | None = None
    rst: bool = True


@dataclass(frozen=True)
class Stall:
    """Sleep ``seconds`` (``None``: until the proxy stops) at one point of the exchange.

    request: before forwarding (``after=None``) or after ``after`` request-body bytes;
    response: after the server's head arrives (``after=None``) or after ``after`` body bytes.
    """

    seconds: float | None
    where: Side = "request"
    after: int | None = None


@dataclass(frozen=True)
class FlipByte:
    """XOR the body byte at ``offset`` with ``mask`` (decoded body offset, framing excluded).

    ``in_object=True`` (responses): ``offset`` is an offset in the object, so that a rule
    firing on every GET plays a byte corrupted at rest: a 206 answer is shifted by the start
    of its ``Content-Range`` (and left alone when it does not hold that byte).
    """

    offset: int = 0
    where: Side = "response"
    mask: int = 0x01
    in_object: bool = False


@dataclass(frozen=True)
class LieLength:
    """Rewrite Content-Length to ``declared`` (dropping Transfer-Encoding).

    Shorter: only ``declared`` bytes are sent, the rest is consumed and dropped, so the
    receiver sees a complete but short body. Longer: the whole body is sent, then the
    connection is half-closed (request) or closed (response), so the receiver sees it end early.
    """

    declared: int
    where: Side = "response"


@dataclass(frozen=True)
class TruncateRequest:
    """Keep the declared length but forward only ``after`` body bytes, then half-close upstream.

    The rest of the client's body is consumed; the server's answer (if any) is relayed and
    both connections are closed.
    """

    after: int


@dataclass(frozen=True)
class Rewrite:
    """Forward, with one side's head edited: ``headers`` maps a name to its new value (``None``
    removes it), ``status`` replaces the response's status. E.g. drop ``Range`` so that the
    server answers 200 with the whole object, or change ``X-Goog-Generation`` on the answer.
    Framing headers are the caller's business: the body is still read as the server framed it.
    """

    where: Side = "response"
    headers: Mapping[str, str | Callable[[str | None], str | None] | None] = field(default_factory=dict)
    """A value may be a function of the header's current value (None when absent)."""
    status: int | None = None


@dataclass(frozen=True)
class Answer:
    """Answer with ``make(request)``, a ``Respond`` built from the request's head (personas:
    an error body that names the request's bucket)."""

    make: Callable[[Request], Respond]


Fault = (
    Answer | Rewrite | Respond | ResetRequest | ResetResponse | Stall | FlipByte | LieLength | TruncateRequest
)


def s3_error(status: int, code: str, message: str = "injected by faultproxy") -> Respond:
    """An S3-style XML error answer, e.g. ``s3_error(503, "SlowDown")``."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>faultproxy</RequestId></Error>"
    ).encode()
    return Respond(status, body, {"Content-Type": "application/xml"})


def gcs_error(status: int, message: str = "injected by faultproxy", reason: str = "backendError") -> Respond:
    """A GCS JSON API error answer, e.g. ``gcs_error(503)``."""
    body = (
        f'{{"error":{{"code":{status},"message":"{message}",'
        f'"errors":[{{"message":"{message}","reason":"{reason}"}}]}}}}'
    ).encode()
    return Respond(status, body, {"Content-Type": "application/json; charset=UTF-8"})


def lose_response() -> ResetResponse:
    """The server applies the request; its response never reaches the client."""
    return ResetResponse(after=None)


# -- requests and rules ------------------------------------------------------------


@dataclass
class Request:
    """One request as the proxy saw it (updated by the proxy thread while in flight)."""

    method: str
    target: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    connection: int
    body_length: int = 0  # request-body bytes received from the client
    fault: Fault | None = None
    forwarded: bool = False  # the head reached the server
    status: int | None = None  # the server's (or the injected) final status
    error: str | None = None  # why the exchange ended the connection, if it did
    done: bool = False

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for n, v in self.headers if n.lower() == name), None)


@dataclass
class Rule:
    """Filters (all must hold) plus a fault; fires on matches ``after+1 .. after+times``.

    ``path``: a str is a substring of the path, a compiled pattern is searched in it.
    ``query``: substring of the raw query. ``header``: that header is present.
    ``when``: any predicate over the ``Request`` (head only; the body has not arrived).
    ``times=None`` fires forever. ``seen`` counts matches, ``hits`` counts firings.
    """

    fault: Fault
    method: str | None = None
    path: str | re.Pattern[str] | None = None
    query: str | None = None
    header: str | None = None
    when: Callable[[Request], bool] | None = None
    times: int | None = 1
    after: int = 0
    seen: int = 0
    hits: int = 0

    def matches(self, req: Request) -> bool:
        if self.method is not None and req.method.upper() != self.method.upper():
            return False
        if isinstance(self.path, str) and self.path not in req.path:
            return False
        if isinstance(self.path, re.Pattern) and not self.path.search(req.path):
            return False
        if self.query is not None and self.query not in req.query:
            return False
        if self.header is not None and req.header(self.header) is None:
            return False
        return self.when is None or self.when(req)

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times


# -- HTTP/1.1 framing ---------------------------------------------------------------


class _Closed(Exception):
    """The exchange ended the connection (a fault, or a peer went away)."""


class _Head:
    """A message head kept as raw lines, so an untouched head is forwarded byte for byte."""

    def __init__(self, raw: bytes) -> None:
        lines = raw[:-4].split(b"\r\n")
        self.start = lines[0]
        self.lines = lines[1:]

    def items(self) -> list[tuple[str, str]]:
        out = []
        for line in self.lines:
            name, _, value = line.partition(b":")
            out.append((name.strip().decode("latin-1"), value.strip().decode("latin-1")))
        return out

    def get(self, name: str) -> str | None:
        name = name.lower()
        return next((v for n, v in self.items() if n.lower() == name), None)

    def set(self, name: str, value: str | None) -> None:
        """Replace every ``name`` line with one (or none, for ``None``)."""
        keep = [ln for ln, (n, _) in zip(self.lines, self.items(), strict=True) if n.lower() != name.lower()]
        if value is not None:
            keep.append(f"{name}: {value}".encode("latin-1"))
        self.lines = keep

    def encode(self) -> bytes:
        return b"\r\n".join([self.start, *self.lines]) + b"\r\n\r\n"

    def framing(self) -> int | Literal["chunked", "eof"]:
        te = (self.get("transfer-encoding") or "").lower()
        if "chunked" in te:
            return "chunked"
        cl = self.get("content-length")
        return int(cl) if cl is not None else "eof"

    def wants_close(self) -> bool:
        conn = (self.get("connection") or "").lower()
        return "close" in conn or (self.start.startswith(b"HTTP/1.0") and "keep-alive" not in conn)


async def _read_head(reader: asyncio.StreamReader) -> bytes | None:
    """The next head, or None if the peer closed cleanly between messages."""
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise _Closed("peer closed inside a head") from exc
        return None


class _Source(Protocol):
    async def read(self) -> tuple[bool, bytes]: ...


class _Sink(Protocol):
    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...


class _Body:
    """Reads one body as ``(is_data, bytes)`` pieces: data, or raw chunked framing to relay as is."""

    def __init__(self, reader: asyncio.StreamReader, framing: int | Literal["chunked", "eof"]) -> None:
        self.reader = reader
        self.framing = framing
        self.left = framing if isinstance(framing, int) else 0
        # size: expect a chunk-size line; data: inside a chunk or a sized body; crlf: after a chunk
        self.state = "end" if framing == 0 else ("size" if framing == "chunked" else "data")

    async def read(self) -> tuple[bool, bytes]:
        """The next piece; ``(False, b"")`` at the end."""
        r = self.reader
        if self.state == "end":
            return False, b""
        if self.framing == "eof":
            data = await r.read(CHUNK)
            self.state = "data" if data else "end"
            return bool(data), data
        if self.state == "data":
            data = await r.read(min(CHUNK, self.left))
            if not data:
                raise _Closed("body ended early")
            self.left -= len(data)
            if self.left == 0:
                self.state = "crlf" if self.framing == "chunked" else "end"
            return True, data
        if self.state == "crlf":
            self.state = "size"
            return False, await r.readexactly(2)
        line = await r.readuntil(b"\r\n")
        size = int(line.split(b";")[0].strip(), 16)
        if size:
            self.left, self.state = size, "data"
            return False, line
        frames = [line]  # the last chunk, then trailers up to the empty line
        while frames[-1] != b"\r\n":
            frames.append(await r.readuntil(b"\r\n"))
        self.state = "end"
        return False, b"".join(frames)


@dataclass
class _Plan:
    """Where one side of an exchange deviates (offsets are decoded body bytes)."""

    cut_at: int | None = None  # reset after this many body bytes
    flip_at: int | None = None
    flip_mask: int = 1
    stall_at: int | None = None
    stall_for: float | None = None
    client: asyncio.StreamReader | None = None  # watched during a stall
    limit: int | None = None  # send at most this many body bytes (LieLength, TruncateRequest)


def _plans(fault: Fault | None) -> tuple[_Plan, _Plan]:
    req, resp = _Plan(), _Plan()
    if isinstance(fault, ResetRequest) and fault.after is not None:
        req.cut_at = fault.after
    elif isinstance(fault, ResetResponse) and fault.after is not None:
        resp.cut_at = fault.after
    elif isinstance(fault, Stall) and fault.after is not None:
        side = req if fault.where == "request" else resp
        side.stall_at, side.stall_for = fault.after, fault.seconds
    elif isinstance(fault, FlipByte):
        side = req if fault.where == "request" else resp
        side.flip_at, side.flip_mask = fault.offset, fault.mask
    elif isinstance(fault, LieLength):
        (req if fault.where == "request" else resp).limit = fault.declared
    elif isinstance(fault, TruncateRequest):
        req.limit = fault.after
    return req, resp


def _range_start(head: _Head, status: int) -> int:
    """Where in the object a response body starts: a 206's Content-Range start, else 0."""
    match = re.match(r"bytes (\d+)-", head.get("content-range") or "")
    return int(match.group(1)) if status == 206 and match else 0


def _rewrite(head: _Head, fault: Rewrite) -> None:
    for name, value in fault.headers.items():
        head.set(name, value(head.get(name)) if callable(value) else value)
    if fault.status is not None:
        version = head.start.split(b" ", 1)[0]
        head.start = version + f" {fault.status} {_phrase(fault.status)}".encode()


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Injected"


async def _stall(seconds: float | None, client: asyncio.StreamReader) -> None:
    """Pause ``seconds`` (``None``: until cancelled), ending early if the client goes away,
    so that a client that gave up does not leave a stalled exchange behind."""
    loop = asyncio.get_running_loop()
    deadline = None if seconds is None else loop.time() + seconds
    while deadline is None or loop.time() < deadline:
        await asyncio.sleep(0.05 if deadline is None else min(0.05, max(0.0, deadline - loop.time())))
        if client.at_eof() or client.exception() is not None:
            raise _Closed("the client went away during a stall")


def _kill(writer: asyncio.StreamWriter | None, rst: bool = True) -> None:
    """Close at once; with ``rst`` the peer gets a TCP RST (SO_LINGER 0)."""
    if writer is None or (writer.transport.is_closing() and not rst):
        return
    sock = writer.get_extra_info("socket")
    if rst and sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
    else:
        writer.close()


async def _cut(writer: asyncio.StreamWriter, rst: bool = True) -> None:
    """End a connection on purpose, after what was already written has reached the peer.

    An RST makes the kernel drop unsent data, so without the wait a reset "after N bytes"
    would deliver fewer. The wait is bounded: a peer that stops reading still gets reset.
    """
    sock = writer.get_extra_info("socket")
    outq = getattr(termios, "TIOCOUTQ", None)
    if rst and sock is not None and outq is not None and not writer.transport.is_closing():
        with contextlib.suppress(OSError, ConnectionError):
            await writer.drain()
            for _ in range(200):
                unacked = struct.unpack("i", fcntl.ioctl(sock.fileno(), outq, b"\0\0\0\0"))[0]
                if unacked == 0:
                    break
                await asyncio.sleep(0.005)
    _kill(writer, rst)


async def _copy(src: _Source, dst: _Sink, plan: _Plan, reframe: bool) -> tuple[int, bool]:
    """Stream ``src`` into ``dst`` applying ``plan``; ``reframe`` drops chunked framing.

    Returns (data bytes read, whether to cut now). A cut or stall point the body never
    reaches applies at its end. Bytes past ``plan.limit`` are read and dropped.
    """
    offset = 0
    stall_at = plan.stall_at
    while True:
        is_data, piece = await src.read()
        if not piece:
            if stall_at is not None:
                assert plan.client is not None
                await _stall(plan.stall_for, plan.client)
            await dst.drain()
            return offset, plan.cut_at is not None
        if not is_data:
            if not reframe:
                dst.write(piece)
            continue
        end = offset + len(piece)
        if plan.flip_at is not None and offset <= plan.flip_at < end:
            i = plan.flip_at - offset
            piece = piece[:i] + bytes([piece[i] ^ plan.flip_mask]) + piece[i + 1 :]
        if plan.limit is not None:
            piece = piece[: max(0, plan.limit - offset)]
        if plan.cut_at is not None and end >= plan.cut_at:
            dst.write(piece[: plan.cut_at - offset])
            await dst.drain()
            return end, True
        if stall_at is not None and end >= stall_at:
            dst.write(piece[: stall_at - offset])
            await dst.drain()
            assert plan.client is not None
            await _stall(plan.stall_for, plan.client)
            piece = piece[stall_at - offset :]
            stall_at = None
        if piece:
            dst.write(piece)
            await dst.drain()
        offset = end


class _NullSink:
    """A sink for bodies that are consumed and dropped."""

    def write(self, data: bytes) -> None:
        pass

    async def drain(self) -> None:
        pass


class _Counting:
    """A request body that counts the data bytes read into its record as they arrive."""

    def __init__(self, inner: _Source, req: Request) -> None:
        self.inner, self.req = inner, req

    async def read(self) -> tuple[bool, bytes]:
        is_data, piece = await self.inner.read()
        if is_data:
            self.req.body_length += len(piece)
        return is_data, piece


# -- the proxy --------------------------------------------------------------------


class _Conn:
    """One client connection and the upstream connection pinned to it."""

    def __init__(
        self,
        ordinal: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        sockets: set[asyncio.StreamWriter],
    ) -> None:
        self.ordinal = ordinal
        self.reader, self.writer = reader, writer
        self.sockets = sockets  # every open writer of the proxy, closed at shutdown whatever happened
        self.up_reader: asyncio.StreamReader | None = None
        self.up_writer: asyncio.StreamWriter | None = None

    async def upstream(self, host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.up_reader is None or self.up_writer is None or self.up_reader.at_eof():
            self._drop_upstream()
            self.up_reader, self.up_writer = await asyncio.open_connection(host, port, limit=HEAD_LIMIT)
            self.sockets.add(self.up_writer)
        return self.up_reader, self.up_writer

    async def next_head(self) -> bytes | None:
        """The client's next head; None when it closes, or when the server closes the idle
        upstream connection (the client connection is then closed too, as the server would)."""
        up = self.up_reader
        if up is None:
            return await _read_head(self.reader)
        if up.at_eof():
            self._drop_upstream()
            return None
        head = asyncio.ensure_future(_read_head(self.reader))
        gone = asyncio.ensure_future(up.read(1))  # any byte or EOF from an idle server ends it
        try:
            await asyncio.wait({head, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (head, gone):
                t.cancel()
            await asyncio.gather(head, gone, return_exceptions=True)
        if gone.done() and not gone.cancelled():
            self._drop_upstream()
        if head.done() and not head.cancelled():
            return head.result()
        return None

    def _drop_upstream(self) -> None:
        if self.up_writer is not None:
            _kill(self.up_writer, rst=False)
            self.sockets.discard(self.up_writer)
        self.up_reader = self.up_writer = None

    async def close(self, rst: bool = False) -> None:
        ends = [w for w in (self.writer, self.up_writer) if w is not None]
        for w in ends:  # both first: a cancel during the waits below must not leave one open
            _kill(w, rst)
            self.sockets.discard(w)
        for w in ends:
            with contextlib.suppress(Exception):
                await w.wait_closed()


class FaultProxy:
    """The proxy; ``start()``/``stop()`` (or ``with``/``async with``) from any thread."""

    def __init__(self, upstream: str, *, rewrite_location: bool = True) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be http://host:port, got {upstream!r}")
        self.upstream = f"http://{parts.netloc}"
        self._host, self._port = parts.hostname, parts.port or 80
        self.rewrite_location = rewrite_location
        self.port = 0
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._active = 0
        self._rules: list[Rule] = []
        self._requests: list[Request] = []
        self._conns = 0
        self._open = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.errors: list[Exception] = []  # unexpected failures inside the proxy

    # -- lifecycle

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        if self._thread is not None:
            raise RuntimeError("FaultProxy already started")
        self._thread = threading.Thread(target=self._run, name=f"faultproxy->{self.upstream}", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise RuntimeError("faultproxy failed to start") from self._error
        return self

    def stop(self) -> None:
        """Cancel every exchange (stalls included), close every socket, join the thread."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None or loop is None or stopping is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop may already be gone
            loop.call_soon_threadsafe(stopping.set)
        thread.join()
        self._thread = None
        if self.errors:
            raise RuntimeError(f"faultproxy failed internally: {self.errors!r}") from self.errors[0]

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> FaultProxy:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)

    # -- rules and records

    def add_rule(
        self,
        fault: Fault,
        *,
        method: str | None = None,
        path: str | re.Pattern[str] | None = None,
        query: str | None = None,
        header: str | None = None,
        when: Callable[[Request], bool] | None = None,
        times: int | None = 1,
        after: int = 0,
    ) -> Rule:
        """Add a rule at the end; see ``Rule``. Returns it (``rule.hits`` counts firings)."""
        rule = Rule(fault, method, path, query, header, when, times, after)
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self, *, rules: bool = True, requests: bool = True) -> None:
        with self._lock:
            if rules:
                self._rules.clear()
            if requests:
                self._requests.clear()

    @property
    def requests(self) -> list[Request]:
        """A snapshot of the records, in arrival order."""
        with self._lock:
            return list(self._requests)

    def matching(
        self,
        *,
        method: str | None = None,
        path: str | re.Pattern[str] | None = None,
        query: str | None = None,
    ) -> list[Request]:
        """Recorded requests passing the same filters as a rule."""
        probe = Rule(Respond(0), method, path, query)
        return [r for r in self.requests if probe.matches(r)]

    @property
    def open_connections(self) -> int:
        """Client connections the proxy holds open now (0 once every client has closed)."""
        with self._lock:
            return self._open

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Block until no exchange is in flight (records are final)."""
        with self._idle:
            if not self._idle.wait_for(lambda: self._active == 0, timeout):
                raise TimeoutError(f"faultproxy still has {self._active} exchange(s) in flight")

    def wait_closed(self, timeout: float = 10.0) -> None:
        """Block until the proxy holds no client connection (``wait_idle`` only waits for the
        exchanges: a connection closes after its last one ends)."""
        with self._idle:
            if not self._idle.wait_for(lambda: self._open == 0, timeout):
                raise TimeoutError(f"faultproxy still holds {self._open} client connection(s)")

    async def settled(self) -> None:
        """``wait_idle`` for async tests (does not block the caller's loop)."""
        await asyncio.to_thread(self.wait_idle)

    def _match(self, req: Request) -> Fault | None:
        with self._lock:
            self._requests.append(req)
            for rule in self._rules:
                if rule.exhausted or not rule.matches(req):
                    continue
                rule.seen += 1
                if rule.seen > rule.after:
                    rule.hits += 1
                    fault = rule.fault.make(req) if isinstance(rule.fault, Answer) else rule.fault
                    req.fault = fault
                    return fault
        return None

    # -- the proxy thread

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to start(); the thread must not die silently
            self._error = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        tasks: set[asyncio.Task[None]] = set()
        sockets: set[asyncio.StreamWriter] = set()

        def done(task: asyncio.Task[None]) -> None:
            tasks.discard(task)
            if not task.cancelled() and task.exception() is not None:
                self.errors.append(cast(Exception, task.exception()))  # a proxy bug: stop() raises it

        def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            # A plain callback, not a coroutine: the writer is registered even if stop() cancels
            # the task before its first step (and 3.11's coroutine wrapper logs cancellations).
            sockets.add(writer)
            task = asyncio.get_running_loop().create_task(self._serve(reader, writer, sockets))
            tasks.add(task)
            task.add_done_callback(done)

        server = await asyncio.start_server(accept, "127.0.0.1", 0, limit=HEAD_LIMIT)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            server.close()
            for t in list(tasks):
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for w in sockets:  # only if a task died before closing its own
                _kill(w)
            await server.wait_closed()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, sockets: set[asyncio.StreamWriter]
    ) -> None:
        with self._lock:
            self._conns += 1
            self._open += 1
            conn = _Conn(self._conns, reader, writer, sockets)
        rst = False
        try:
            while True:
                raw = await conn.next_head()
                if raw is None:
                    break
                with self._lock:
                    self._active += 1
                try:
                    keep = await self._exchange(conn, raw)
                finally:
                    with self._idle:
                        self._active -= 1
                        self._idle.notify_all()
                if not keep:
                    break
        except (_Closed, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            rst = True  # a fault, or a peer broke off: mirror it to the other side
        finally:
            try:
                await conn.close(rst)
            finally:
                with self._idle:
                    self._open -= 1
                    self._idle.notify_all()

    async def _exchange(self, conn: _Conn, raw: bytes) -> bool:
        """One request and its response. Returns whether the connection stays open."""
        head = _Head(raw)
        method, target, _ = head.start.decode("latin-1").split(" ", 2)
        if target.startswith("/"):
            path, _, query = target.partition("?")
        else:  # absolute form
            path, query = urlsplit(target).path, urlsplit(target).query
        req = Request(method, target, path, query, head.items(), conn.ordinal)
        try:
            return await self._forward(conn, head, req, self._match(req))
        except BaseException as exc:
            req.error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            req.done = True

    async def _forward(self, conn: _Conn, head: _Head, req: Request, fault: Fault | None) -> bool:
        framing = head.framing()
        raw_body = _Body(conn.reader, 0 if framing == "eof" else framing)
        body = _Counting(raw_body, req)
        expect = (head.get("expect") or "").lower() == "100-continue"
        keep = not head.wants_close()
        if isinstance(fault, Respond):
            if not expect:  # consume the body so that the connection stays usable
                await _copy(body, _NullSink(), _Plan(), True)
            await self._respond(conn.writer, fault, req)
            closing = any(
                k.lower() == "connection" and "close" in v.lower() for k, v in fault.headers.items()
            )
            return keep and not expect and not closing
        if isinstance(fault, ResetRequest) and fault.after is None:
            await _cut(conn.writer)
            raise _Closed("request reset before forwarding")
        if isinstance(fault, Stall) and fault.where == "request" and fault.after is None:
            await _stall(fault.seconds, conn.reader)
        req_plan, resp_plan = _plans(fault)
        req_plan.client = resp_plan.client = conn.reader
        if isinstance(fault, LieLength) and fault.where == "request":
            head.set("Transfer-Encoding", None)
            head.set("Content-Length", str(fault.declared))
        if isinstance(fault, Rewrite) and fault.where == "request":
            _rewrite(head, fault)
        up_reader, up_writer = await conn.upstream(self._host, self._port)
        up_writer.write(head.encode())
        req.forwarded = True
        pump = asyncio.create_task(self._pump(conn, body, req_plan, fault))
        try:
            keep_after = await self._relay(conn, up_reader, req, resp_plan, fault)
            if raw_body.state == "end":  # the pump is only finishing its last write
                await asyncio.wait({pump}, timeout=2.0)
        finally:
            if not pump.done():  # the server answered before the body ended
                pump.cancel()
                keep = False
            await asyncio.gather(pump, return_exceptions=True)
        truncated = isinstance(fault, TruncateRequest) or (
            isinstance(fault, LieLength) and fault.where == "request" and fault.declared > req.body_length
        )
        return keep and keep_after and not truncated

    async def _pump(self, conn: _Conn, body: _Source, plan: _Plan, fault: Fault | None) -> None:
        """Stream the request body upstream, concurrently with ``_relay`` (for 100-continue)."""
        assert conn.up_writer is not None
        try:
            read, cut = await _copy(body, conn.up_writer, plan, isinstance(fault, LieLength))
            if cut:
                await _cut(conn.up_writer)  # the server got exactly the bytes before the cut
                await _cut(conn.writer)
                raise _Closed("request reset by fault")
            if plan.limit is not None and (isinstance(fault, TruncateRequest) or plan.limit > read):
                conn.up_writer.write_eof()  # the server sees the body end before its declared length
        except asyncio.CancelledError:
            raise
        except BaseException:
            # Either side failing ends both, which also wakes _relay waiting on the server.
            _kill(conn.writer)
            _kill(conn.up_writer)
            raise

    async def _relay(
        self, conn: _Conn, up: asyncio.StreamReader, req: Request, plan: _Plan, fault: Fault | None
    ) -> bool:
        """Relay the server's answer (interim 1xx first). Returns whether to keep the connection."""
        while True:
            raw = await _read_head(up)
            if raw is None:
                raise _Closed("the server closed without answering")
            head = _Head(raw)
            status = int(head.start.split(b" ", 2)[1])
            if not 100 <= status < 200 or status == 101:
                break
            conn.writer.write(raw)
            await conn.writer.drain()
        req.status = status
        no_body = req.method == "HEAD" or status in (204, 304)
        framing = 0 if no_body else head.framing()
        body = _Body(up, framing)
        loc = head.get("location")
        if self.rewrite_location and loc and loc.startswith(self.upstream):
            head.set("Location", self.url + loc[len(self.upstream) :])
        if isinstance(fault, ResetResponse) and fault.after is None:
            await _copy(body, _NullSink(), _Plan(), True)  # the server has answered: the request is applied
            await _cut(conn.writer, fault.rst)
            raise _Closed("response lost by fault")
        if isinstance(fault, Stall) and fault.where == "response" and fault.after is None:
            await _stall(fault.seconds, conn.reader)
        if isinstance(fault, Rewrite) and fault.where == "response":
            _rewrite(head, fault)
        if isinstance(fault, FlipByte) and fault.where == "response" and fault.in_object:
            plan.flip_at = fault.offset - _range_start(head, status)
        lie = isinstance(fault, LieLength) and fault.where == "response"
        if lie:
            head.set("Transfer-Encoding", None)
            head.set("Content-Length", str(plan.limit))
        conn.writer.write(head.encode())
        sent, cut = await _copy(body, conn.writer, plan, lie)
        if cut:
            await _cut(conn.writer, not isinstance(fault, ResetResponse) or fault.rst)
            raise _Closed("response reset by fault")
        if lie and plan.limit is not None and plan.limit > sent:
            return False  # declared more than exists: the client sees the connection end early
        return framing != "eof" and not head.wants_close()

    async def _respond(self, writer: asyncio.StreamWriter, fault: Respond, req: Request) -> None:
        req.status = fault.status
        lines = [f"HTTP/1.1 {fault.status} {fault.reason or _phrase(fault.status)}"]
        lines += [f"{k}: {v}" for k, v in fault.headers.items()]
        if "content-length" not in {k.lower() for k in fault.headers}:
            lines.append(f"Content-Length: {len(fault.body)}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        if req.method != "HEAD":
            writer.write(fault.body)
        await writer.drain()


@pytest.fixture
def fault_proxy() -> Iterator[Callable[..., FaultProxy]]:
    """A factory: ``fault_proxy(upstream_url, **options)`` starts a proxy, stopped at teardown."""
    proxies: list[FaultProxy] = []

    def make(upstream: str, **options: bool) -> FaultProxy:
        proxy = FaultProxy(upstream, **options).start()
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.stop()
