"""The HTTP transport of the S3 and Azure providers: two clients per provider, nothing
retried below us.

Invariants:

* A request with no proxy, no ``Expect`` and a body of at most ``h1.SMALL_BODY`` bytes
  goes through the lean client (``h1.Pool``); every other through one aiohttp
  ``ClientSession``. Both are per provider (and so per event loop: the bucket layer makes
  one provider per loop), created lazily on the running loop and closed by ``aclose()``
  (which the bucket layer calls as the loop shuts down, if the user did not); each pool
  holds up to ``max_pool_connections`` connections. Both answer through ``_answer``, so
  what a caller sees does not depend on which one sent the request.
* aiohttp's own retry of idempotent requests on a dropped keep-alive connection is
  off: every retry decision is made in ``retry.py``. Redirects are not followed.
* Timeouts: ``sock_connect`` and ``sock_read``, never a total, so a long stream is
  never cut for its length, only for a stall.
* Request bodies are sent from their start on every attempt (``_View``), in 256 KiB
  slices of the caller's buffer, without copying it.
* Every response body is read and released here, except a successful streamed GET of
  more than 64 KiB, whose body the caller owns and always releases (``Response.raw``).
* A write (``shield=True``) that is on the wire runs to its end even if the caller
  is cancelled; the cancel is re-raised afterwards (``_on_wire``). Nothing else is
  shielded.
* A provider dropped without ``aclose()`` closes both clients' connections quietly when it is
  collected (or at exit): no "Unclosed client session" noise after an error.
* Networks that companies run: ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` are honoured
  as aiohttp's ``trust_env`` reads them (credentials in the proxy URL or ``.netrc``),
  looked up once per endpoint host for the session's life, not on every request. TLS is
  verified against ``ca_bundle`` (the option; for S3, else ``AWS_CA_BUNDLE``, else the
  AWS profile's ``ca_bundle``) when one is named, else against the system's store, which
  ``SSL_CERT_FILE``/``SSL_CERT_DIR`` redirect (``ssl_context``).
* ``expect=True`` (large single PUTs) sends ``Expect: 100-continue`` and the body only
  after the server's 100: a refusal (403, a region redirect) costs no upload, and its
  connection is closed, never reused with a body half-sent. A 417 (an HTTP/1.0 proxy)
  sends the request again at once without it; no answer within ``CONTINUE_WAIT`` (1 s,
  as botocore) sends the body anyway, since aiohttp would wait with no timeout at all.
* An error answer's ``<Error>`` body (S3's and Azure Blob's shape) is parsed here into
  ``Response.code`` and ``.message`` (``parse_error``); what a code means is the
  provider's business (its ``_errors.py``) and the retry policy's rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import ssl
import weakref
import xml.etree.ElementTree as ET
from collections.abc import Coroutine
from typing import Any

import aiohttp
from aiohttp import payload as aiohttp_payload
from aiohttp.helpers import get_env_proxy_for_url, proxies_from_env
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from ..._aio import run_to_completion
from . import h1
from .body import RawBody

__all__ = ["Response", "Transport", "close_pool_quietly", "close_quietly", "parse_error", "ssl_context"]

_SEND_SLICE = 256 * 1024
_READ_WHOLE = 64 * 1024  # a streamed GET this small is read whole (fewer awaits per object)
_SKIP_AUTO = frozenset({"Accept-Encoding", "Accept", "User-Agent", "Content-Type"})
_NO_AUTO_CONTENT_TYPE: CIMultiDict[None] = CIMultiDict({"Content-Type": None})
# aiohttp 3.10+ keeps the skipped names here; ``send()`` reads it for Content-Type.
_FAST_AUTO_HEADERS = hasattr(aiohttp.ClientRequest, "_skip_auto_headers")


class Response:
    """One HTTP answer. ``body`` is read unless ``raw`` (a streamed success) is set."""

    __slots__ = ("attempts", "body", "code", "headers", "maybe_applied", "message", "raw", "status")

    def __init__(
        self,
        status: int,
        headers: CIMultiDictProxy[str],
        body: bytes,
        raw: RawBody | None = None,
    ) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.raw = raw
        self.code = ""
        self.message = ""
        self.attempts = 1
        self.maybe_applied = False


def parse_error(body: bytes) -> tuple[str, str]:
    """(Code, Message) of an XML ``<Error>`` body, in its own namespace or none (S3 uses one,
    Azure and some S3-compatible servers none); ("", "") when the body is empty."""
    if not body:
        return "", ""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return "", body[:200].decode("utf-8", "replace")
    ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    return root.findtext(ns + "Code") or "", root.findtext(ns + "Message") or ""


class _View(aiohttp_payload.Payload):
    """A request body over a buffer, sent from its start every time it is written."""

    _autoclose = True

    def __init__(self, value: memoryview) -> None:
        super().__init__(value, content_type=None)
        self._size = value.nbytes

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return bytes(self._value).decode(encoding, errors)

    async def as_bytes(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return bytes(self._value)

    async def write(self, writer: Any) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(self, writer: Any, content_length: int | None) -> None:
        view: memoryview = self._value
        end = view.nbytes if content_length is None else min(view.nbytes, content_length)
        pos = 0
        while pos < end:
            step = min(pos + _SEND_SLICE, end)
            await writer.write(view[pos:step])
            pos = step


class _Request(aiohttp.ClientRequest):
    """aiohttp's request, minus its per-request work for headers we never send.

    The session skips all of aiohttp's automatic headers (Accept, Accept-Encoding,
    User-Agent, a default Content-Type). aiohttp honours that by building a sorted
    multidict of the skipped names and a copy of the headers on every request;
    here the outcome (none of them added, Content-Type not defaulted) is set
    directly. The bytes on the wire are the same.
    """

    def update_auto_headers(self, skip_auto_headers: Any) -> None:
        if _FAST_AUTO_HEADERS and skip_auto_headers is not None:
            self._skip_auto_headers = _NO_AUTO_CONTENT_TYPE
            return
        super().update_auto_headers(skip_auto_headers)  # pragma: no cover - older aiohttp

    async def send(self, conn: Any) -> aiohttp.ClientResponse:
        """With ``Expect: 100-continue``, the body goes after the server's 100, or after
        ``CONTINUE_WAIT`` seconds without an answer (RFC 9110 10.1.1: "a client ... SHOULD
        NOT wait for an indefinite period"; botocore waits 1 s too): an intermediary that
        drops the header would otherwise leave the request hanging until the read timeout.
        A refusal within that time costs no body (the transport releases it at once)."""
        resp = await super().send(conn)
        waiter = getattr(self, "_continue", None)  # aiohttp's future for the 100
        if isinstance(waiter, asyncio.Future) and not waiter.done():
            timer = self.loop.call_later(CONTINUE_WAIT, _go_on, waiter)
            waiter.add_done_callback(lambda _: timer.cancel())
        return resp


CONTINUE_WAIT = 1.0
"""Seconds a body waits for the server's 100 Continue before it is sent anyway."""


def _go_on(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(True)


def _relay(waiter: asyncio.Future[None], _task: object) -> None:
    if not waiter.done():
        waiter.set_result(None)


async def _on_wire(work: Coroutine[Any, Any, Response]) -> Response:
    """``run_to_completion`` for a write: the same promise, with less work per request.

    The exchange runs in its own task, which a cancel of the caller never reaches;
    the caller waits on a bare future instead of ``asyncio.shield``. A cancel that
    arrives meanwhile waits for the exchange to end (its outcome retrieved, any
    further cancel absorbed), then is re-raised: delayed, never swallowed.
    """
    loop = asyncio.get_running_loop()
    task = loop.create_task(work, name="aiobucket-shielded")
    waiter = loop.create_future()
    task.add_done_callback(functools.partial(_relay, waiter))
    try:
        await waiter
    except asyncio.CancelledError:
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await run_to_completion(task)
        raise
    return task.result()


def close_pool_quietly(pool: h1.Pool) -> None:
    """Close the lean client's connections without awaiting (the loop may be gone); GCS's
    transport uses it too."""
    with contextlib.suppress(Exception):  # best effort, at garbage collection or exit
        pool.close()


def close_quietly(connector: aiohttp.BaseConnector) -> None:
    """Drop the pool's connections without awaiting (the loop may be gone); GCS's transport
    uses it too."""
    with contextlib.suppress(Exception):  # best effort, at garbage collection or exit
        connector._close()


def ssl_context(ca_bundle: str | None) -> ssl.SSLContext | None:
    """The TLS context for the endpoint; None: aiohttp's default (the system's store).

    A CA bundle replaces the system's store, as in botocore (``verify=<path>``).
    ``SSL_CERT_FILE``/``SSL_CERT_DIR`` are read by OpenSSL when a default context is
    made, so one is made here when either is set (aiohttp's own was made at its import).
    Reads files: call it off the event loop.
    """
    if ca_bundle:
        return ssl.create_default_context(cafile=ca_bundle)
    if os.environ.get("SSL_CERT_FILE") or os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context()
    return None


_NO_PROXY: tuple[None, None] = (None, None)
"""(proxy URL, proxy headers) when no proxy applies."""


async def _answer(resp: aiohttp.ClientResponse | h1.Reply, stream: bool) -> Response:
    """The ``Response`` for an answer from either client: its body read whole and the
    connection released, unless it is a streamed success of more than ``_READ_WHOLE``
    bytes (or of unknown length), whose body is handed over as ``raw``."""
    handed_over = False
    try:
        if stream and resp.status < 300:
            length = resp.content_length
            if length is None or length > _READ_WHOLE:
                handed_over = True
                return Response(resp.status, resp.headers, b"", resp)
            # A small body is read here: the connection goes back to the pool at once.
        out = Response(resp.status, resp.headers, await resp.read())
        if resp.status >= 300:
            out.code, out.message = parse_error(out.body)
        return out
    finally:
        if not handed_over:
            resp.release()


class Transport:
    def __init__(self, *, pool: int, connect_timeout: float, read_timeout: float) -> None:
        self.ssl: ssl.SSLContext | None = None
        """Set before the first request (``ssl_context``); None: aiohttp's default."""
        self._proxies: dict[tuple[str, str | None], tuple[URL | None, dict[str, str] | None]] = {}
        self._proxied: bool | None = None
        """The environment names a proxy (read at the first request): only then look one up."""
        self._pool = pool
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=None, sock_connect=connect_timeout, sock_read=read_timeout
        )
        self._session: aiohttp.ClientSession | None = None
        self._pool_h1: h1.Pool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._pool_finalizer: weakref.finalize[Any, Any] | None = None

    def pool(self) -> h1.Pool:
        """The lean client's connections (``h1.py``), for requests that need nothing more."""
        pool = self._pool_h1
        if pool is None or pool.closed:
            pool = self._pool_h1 = h1.Pool(
                limit=self._pool,
                connect_timeout=self._connect_timeout,
                read_timeout=self._read_timeout,
                ssl_context=self.ssl,
            )
            self._pool_finalizer = weakref.finalize(self, close_pool_quietly, pool)
        return pool

    def session(self) -> aiohttp.ClientSession:
        session = self._session
        if session is not None and not session.closed:
            return session
        loop = asyncio.get_running_loop()
        connector = aiohttp.TCPConnector(
            limit=self._pool,
            limit_per_host=0,
            ttl_dns_cache=300,
            ssl=self.ssl if self.ssl is not None else True,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            auto_decompress=False,
            skip_auto_headers=_SKIP_AUTO,
            request_class=_Request,
            read_bufsize=256 * 1024,
            cookie_jar=aiohttp.DummyCookieJar(),  # object stores set no cookies; skip the jar's work
        )
        # aiohttp resends an idempotent request once on a dropped keep-alive
        # connection; our retry layer decides that (and counts the attempt).
        session._retry_connection = False
        self._session, self._loop = session, loop
        self._finalizer = weakref.finalize(self, close_quietly, connector)
        return session

    async def send(
        self,
        method: str,
        url: URL,
        headers: dict[str, str],
        body: memoryview | bytes | None,
        *,
        stream: bool = False,
        shield: bool = False,
        expect: bool = False,
    ) -> Response:
        work = self._exchange(method, url, headers, body, stream, expect)
        if expect:
            work = self._expecting(work, method, url, headers, body, stream)
        if shield:
            return await _on_wire(work)
        return await work

    async def _expecting(
        self,
        work: Coroutine[Any, Any, Response],
        method: str,
        url: URL,
        headers: dict[str, str],
        body: memoryview | bytes | None,
        stream: bool,
    ) -> Response:
        """A server or proxy that does not do ``Expect`` answers 417 (RFC 9110, 10.1.1),
        before any of the body: the request is sent again at once, without it."""
        resp = await work
        if resp.status != 417:
            return resp
        return await self._exchange(method, url, headers, body, stream, False)

    def proxy_for(self, url: URL) -> tuple[URL | None, dict[str, str] | None]:
        """The proxy for ``url``'s host and the headers for it (its credentials, from its URL
        or ``.netrc``), from the environment, looked up once per host."""
        where = (url.scheme, url.raw_host)
        found = self._proxies.get(where)
        if found is None:
            try:
                proxy, auth = get_env_proxy_for_url(url)
            except LookupError:  # no proxy for this scheme, or NO_PROXY names the host
                found = _NO_PROXY
            else:
                found = (proxy, {"Proxy-Authorization": auth.encode()} if auth is not None else None)
            self._proxies[where] = found
        return found

    async def _exchange(
        self,
        method: str,
        url: URL,
        headers: dict[str, str],
        body: memoryview | bytes | None,
        stream: bool,
        expect: bool,
    ) -> Response:
        if self._proxied is None:
            self._proxied = bool(proxies_from_env())
        proxy, proxy_headers = self.proxy_for(url) if self._proxied else _NO_PROXY
        if proxy is None and not expect and (body is None or len(body) <= h1.SMALL_BODY):
            return await _answer(await self.pool().request(method, url, headers, body), stream)
        data: Any = None
        if body is not None:
            data = _View(body) if isinstance(body, memoryview) else aiohttp_payload.BytesPayload(body)
        session = self.session()
        if proxy_headers is not None and url.scheme == "http":
            # A plain-HTTP proxy reads its credentials on the request itself (a CONNECT
            # proxy on the CONNECT); no request signature covers Proxy-Authorization.
            headers = {**headers, **proxy_headers}
            proxy_headers = None
        resp = await session.request(
            method,
            url,
            headers=headers,
            data=data,
            allow_redirects=False,
            proxy=proxy,
            proxy_headers=proxy_headers,
            expect100=expect,
        )
        return await _answer(resp, stream)

    async def aclose(self) -> None:
        session, self._session = self._session, None
        pool, self._pool_h1 = self._pool_h1, None
        self._proxies.clear()
        for finalizer in (self._finalizer, self._pool_finalizer):
            if finalizer is not None:
                finalizer.detach()
        self._finalizer = self._pool_finalizer = None
        if pool is not None:
            pool.close()
            await asyncio.sleep(0)  # the closed connections' sockets close on this turn
        if session is not None and not session.closed:
            await session.close()
