"""Persona: fake-gcs-server answering media downloads as Google Cloud Storage does.

fake-gcs-server 1.54 answers a media GET (``alt=media``) with most of GCS's
headers, but not all of them, and it frames a decompressed answer differently.
This small reverse proxy sits in front of it on 127.0.0.1 and adds what GCS's
documentation says a media answer carries. Each rule names its source:

* ``x-goog-metageneration`` and ``x-goog-stored-content-length`` on every media
  answer: "HTTP headers and query string parameters for XML API", response
  headers (https://cloud.google.com/storage/docs/xml-api/reference-headers); the
  JSON API's media download sends the same set (python-storage reads them in
  ``Blob._extract_headers_from_download``).
* ``x-goog-hash`` as one header line per hash (``crc32c=…`` then ``md5=…``), as the
  same page's example shows it; fake-gcs-server joins them in one line.
* A decompressed answer (decompressive transcoding: the object is stored with
  ``Content-Encoding: gzip`` and the request did not accept gzip) has no
  ``Content-Length`` and no ``Content-Encoding`` header
  (https://cloud.google.com/storage/docs/transcoding, "Decompressive
  transcoding"): it is sent chunked. fake-gcs-server sends the decoded length.
  It has no ``x-goog-hash`` either: GCS knows no hash of the decoded bytes
  (python-storage's ``Download`` docstring says so of transcoded downloads).

Everything else is passed through byte for byte (a resumable session's
``Location`` is pointed at the persona). The persona reads the object's resource
from the emulator to learn what GCS would know; that lookup is its own, never the
client's. Put a ``FaultProxy`` in front of it to count the client's requests.

The proxy runs on its own event loop in its own thread (like ``faultproxy``), so a
sync fixture can start it and a blocked test loop cannot starve it.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, unquote

import aiohttp
import pytest
from aiohttp import web

__all__ = ["GcsReadPersona", "gcs_read_persona"]

_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "proxy-connection"}
)


def _is_gzip(value: str | None) -> bool:
    return (value or "").strip().lower() == "gzip"


class GcsReadPersona:
    """``with GcsReadPersona(upstream) as persona:`` then point a client at ``persona.url``."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.port = 0
        self.media_answers = 0  # media answers the rules were applied to
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> GcsReadPersona:
        self._thread = threading.Thread(target=self._run, name="gcs-read-persona", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise RuntimeError("the GCS read persona failed to start") from self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise RuntimeError("the GCS read persona failed") from self._error

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self._error = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            app = web.Application(client_max_size=1 << 30)

            async def handle(request: web.Request) -> web.StreamResponse:
                return await self._handle(request, session)

            app.router.add_route("*", "/{tail:.*}", handle)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
            site = web.SockSite(runner, sock)
            await site.start()
            self._ready.set()
            try:
                await self._stop.wait()
            finally:
                await runner.cleanup()

    async def _resource(self, session: aiohttp.ClientSession, path: str, generation: str | None) -> Any:
        """The object's JSON resource, as GCS knows it when it answers."""
        path = path.removeprefix("/download")
        params = {"generation": generation} if generation else None
        async with session.get(self.upstream + path, params=params) as resp:
            return await resp.json() if resp.status == 200 else None

    async def _handle(self, request: web.Request, session: aiohttp.ClientSession) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        body = await request.read()
        async with session.request(
            request.method,
            self.upstream + str(request.rel_url),
            headers=headers,
            data=body or None,
            allow_redirects=False,
            skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type"),
        ) as up:
            out = [(k, v) for k, v in up.headers.items() if k.lower() not in _HOP]
            length: int | None = None
            if "Content-Length" in up.headers and request.method != "HEAD":
                length = int(up.headers["Content-Length"])
            media = request.method == "GET" and request.query.get("alt") == "media"
            if media and up.status in (200, 206):
                out, length = await self._as_gcs(session, request.path, up, out, length)
            resp = web.StreamResponse(status=up.status)
            for k, v in out:
                if k.lower() == "location" and v.startswith(self.upstream):
                    v = self.url + v[len(self.upstream) :]
                resp.headers.add(k, v)
            if length is not None:
                resp.content_length = length
            await resp.prepare(request)
            async for chunk in up.content.iter_chunked(64 * 1024):
                await resp.write(chunk)
            await resp.write_eof()
            return resp

    async def _as_gcs(
        self,
        session: aiohttp.ClientSession,
        path: str,
        up: aiohttp.ClientResponse,
        out: list[tuple[str, str]],
        length: int | None,
    ) -> tuple[list[tuple[str, str]], int | None]:
        res = await self._resource(
            session, quote(unquote(path), safe="/"), up.headers.get("X-Goog-Generation")
        )
        if res is None:
            return out, length
        self.media_answers += 1
        out = [(k, v) for k, v in out if k.lower() != "x-goog-hash"]
        # reference-headers: every object GET answer names the metageneration and the stored length.
        out.append(("x-goog-metageneration", str(res.get("metageneration", "1"))))
        out.append(("x-goog-stored-content-length", str(res["size"])))
        # reference-headers: one x-goog-hash header per hash.
        if res.get("crc32c"):
            out.append(("x-goog-hash", f"crc32c={res['crc32c']}"))
        if res.get("md5Hash"):
            out.append(("x-goog-hash", f"md5={res['md5Hash']}"))
        stored_gzip = _is_gzip(res.get("contentEncoding"))
        if stored_gzip and not _is_gzip(up.headers.get("Content-Encoding")):
            # transcoding: a decompressed answer has no Content-Length (sent chunked) ...
            length = None
            # ... and no hashes: GCS knows none of the decoded bytes (python-storage's
            # Download docstring: "transcoded ... downloads where the remote service does
            # not know the correct checksum").
            out = [(k, v) for k, v in out if k.lower() != "x-goog-hash"]
        return out, length


@pytest.fixture
def gcs_read_persona() -> Iterator[Any]:
    """``gcs_read_persona(upstream)`` starts a persona, stopped at teardown."""
    started: list[GcsReadPersona] = []

    def make(upstream: str) -> GcsReadPersona:
        p = GcsReadPersona(upstream).__enter__()
        started.append(p)
        return p

    yield make
    for p in reversed(started):
        p.__exit__(None, None, None)
