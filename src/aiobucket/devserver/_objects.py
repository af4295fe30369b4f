"""``aiobucket serve``: the object routes (``/o/{bucket}/{stored key}``), CORS, and the app.

URLs carry the *stored* key (the bucket's key_prefix included), as ``public_url()``
and the signed URLs do; the server strips the prefix and goes through the public
Bucket API (attrs, download, upload), so every rule of the library applies.

Access: GET and HEAD on a public bucket need no signature; everything else needs a
valid, unexpired HMAC signature (see ``aiobucket.providers.local._signing``), else 403.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
import signal
import sys
from collections.abc import Iterable
from typing import TextIO
from urllib.parse import unquote

import anyio.to_thread
from aiohttp import web

from .. import _runtime
from ..errors import BucketError, InvalidArgument, ObjectChanged, RangeNotSatisfiable
from ..http import ByteRange, open_range, parse_range
from ..providers.local import _signing, is_bucket
from ..reader import Reader
from ..types import ObjectAttrs, Preconditions, UploadAttrs
from ._common import (
    CHUNK,
    Registry,
    Served,
    check_key,
    error_response,
    object_headers,
)
from ._forms import add_routes as add_form_routes
from ._forms import check_signed_put

REGISTRY = web.AppKey("registry", Registry)
TOKEN = web.AppKey("token", str)
HOSTS = web.AppKey("hosts", frozenset)
PREFIX = "/o/"

CORS_METHODS = "GET, HEAD, PUT, OPTIONS"
CORS_HEADERS = "Content-Type, Range, If-Match, If-None-Match, Cache-Control, Content-Disposition"
CORS_EXPOSE = "ETag, Content-Range, Content-Length, Content-Type, Accept-Ranges, Last-Modified"
_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_, ")


def _text(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text + "\n")


async def _add_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Every response under /o/ (errors too) is readable from any origin; nothing is sniffed."""
    response.headers["X-Content-Type-Options"] = "nosniff"
    if request.rel_url.raw_path.startswith(PREFIX):
        response.headers["Access-Control-Allow-Origin"] = "*"
        response.headers["Access-Control-Expose-Headers"] = CORS_EXPOSE


def _preflight(request: web.Request) -> web.Response:
    asked = request.headers.get("Access-Control-Request-Headers", "")
    allow = asked if asked and set(asked) <= _TOKEN_CHARS else CORS_HEADERS
    return web.Response(
        status=204,
        headers={
            "Access-Control-Allow-Methods": CORS_METHODS,
            "Access-Control-Allow-Headers": allow,
            "Access-Control-Max-Age": "600",
        },
    )


async def _authorize(
    request: web.Request, served: Served, op: str, stored: str, version: str | None
) -> str | None:
    q = request.query
    signed = "signature" in q or "expires" in q
    if op == "GET" and served.public and not signed:
        return None
    try:
        load = functools.partial(_signing.load_key, served.root, create=False)
        secret = await anyio.to_thread.run_sync(load)
    except OSError as exc:
        return f"cannot read the bucket's signing key: {exc}"
    if secret is None:
        return "the URL is not validly signed (this bucket has never signed a URL)"
    return _signing.verify(
        secret,
        op,
        served.name,
        stored,
        version,
        q.get("expires"),
        q.get("signature"),
        content_type=q.get("content_type"),
        content_length=q.get("content_length"),
        create_only=q.get("create_only"),
    )


async def handle_object(request: web.Request) -> web.StreamResponse:
    if request.method == "OPTIONS":
        return _preflight(request)
    if request.method not in ("GET", "HEAD", "PUT"):
        raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD", "PUT", "OPTIONS"])
    raw = request.rel_url.raw_path[len(PREFIX) :]
    raw_bucket, sep, raw_key = raw.partition("/")
    served = request.app[REGISTRY].get(raw_bucket)
    if served is None or not sep:
        return _text(404, f"no such bucket here: {raw_bucket!r}")
    try:
        stored = check_key(unquote(raw_key, errors="strict"))
        if not stored.startswith(served.key_prefix) or stored == served.key_prefix:
            return _text(404, "the key is outside this bucket's key_prefix")
        key = check_key(stored[len(served.key_prefix) :])
    except (InvalidArgument, UnicodeDecodeError) as exc:
        return _text(400, f"bad key: {exc}")
    version = request.query.get("version")
    op = "PUT" if request.method == "PUT" else "GET"
    denied = await _authorize(request, served, op, stored, version)
    if denied is None and op == "PUT":
        denied = check_signed_put(request)  # the Content-Type and size it signed
    if denied is not None:
        return _text(403, f"access denied: {denied}")
    try:
        if op == "PUT":
            if version is not None:
                return _text(400, "PUT takes no version")
            return await put_object(request, served, key)
        return await get_object(request, served, key, version)
    except BucketError as exc:
        return error_response(exc)


def _preconditions(request: web.Request) -> Preconditions:
    # create_only=1 was vouched for by the signature (_authorize): the URL is create-only.
    if request.query.get("create_only") == "1" or request.headers.get("If-None-Match", "").strip() == "*":
        return Preconditions(not_exists=True)
    match = request.headers.get("If-Match", "").strip().removeprefix("W/").strip('"')
    return Preconditions(if_match=match) if match and match != "*" else Preconditions()


async def put_object(request: web.Request, served: Served, key: str) -> web.Response:
    """Stream the body into upload(): memory stays at about one part, whatever the size."""
    attrs = UploadAttrs(content_type=request.headers.get("Content-Type") or None)
    async with served.bucket().upload(key, attrs=attrs, preconditions=_preconditions(request)) as w:
        async for chunk in request.content.iter_chunked(CHUNK):
            await w.write(chunk)
    done = await w.close()  # committed on leaving the block; this returns the same attrs
    return web.Response(status=200, headers={"ETag": f'"{done.etag}"'})


def _not_modified(request: web.Request, attrs: ObjectAttrs) -> web.Response | None:
    """304 when If-None-Match names the current ETag (checked before Range, as RFC 9110 says)."""
    etag = f'"{attrs.etag}"'
    inm = request.headers.get("If-None-Match")
    tags = {t.strip().removeprefix("W/") for t in (inm or "").split(",")}
    return web.Response(status=304, headers={"ETag": etag}) if inm and ("*" in tags or etag in tags) else None


def _range_headers(headers: dict[str, str], rng: ByteRange | None, size: int) -> tuple[int, int]:
    """(status, body length) for a whole object or a range; sets Content-Range for a range."""
    if rng is None:
        return 200, size
    headers["Content-Range"] = f"bytes {rng[0]}-{rng[1]}/{size}"
    return 206, rng[1] - rng[0] + 1


async def get_object(
    request: web.Request, served: Served, key: str, version: str | None
) -> web.StreamResponse:
    b = served.bucket(for_version=version is not None)
    header = request.headers.get("Range")
    if request.method == "HEAD":  # no body: the attributes and the parsed range say everything
        attrs = await b.attrs(key, version=version)
        if (not_modified := _not_modified(request, attrs)) is not None:
            return not_modified
        try:
            rng = parse_range(header, attrs.size)
        except RangeNotSatisfiable:
            return web.Response(status=416, headers={"Content-Range": f"bytes */{attrs.size}"})
        headers = object_headers(attrs)
        status, length = _range_headers(headers, rng, attrs.size)
        resp = web.StreamResponse(status=status, headers=headers)
        resp.content_length = length
        await resp.prepare(request)
        await resp.write_eof()
        return resp
    try:
        # The library's pinned ranged open: a suffix range never splices two versions.
        reader, attrs, rng = await open_range(b, key, header, version=version)
    except RangeNotSatisfiable as exc:
        if request.headers.get("If-None-Match"):
            not_modified = _not_modified(request, await b.attrs(key, version=version))
            if not_modified is not None:
                return not_modified
        return web.Response(status=416, headers={"Content-Range": f"bytes */{exc.size}"})
    except ObjectChanged:
        return _text(503, "the object kept changing while it was being opened; try again")
    if (not_modified := _not_modified(request, attrs)) is not None:
        await reader.aclose()
        return not_modified
    headers = object_headers(attrs)
    status, length = _range_headers(headers, rng, attrs.size)
    return await _stream(request, reader, status, headers, length)


async def _stream(
    request: web.Request, reader: Reader, status: int, headers: dict[str, str], length: int
) -> web.StreamResponse:
    resp = web.StreamResponse(status=status, headers=headers)
    resp.content_length = length
    async with reader:  # closed on every path: EOF, error, client gone, cancellation
        try:
            await resp.prepare(request)
            async for chunk in reader:
                await resp.write(chunk)  # waits for the socket to drain: bounded memory
            await resp.write_eof()
        except ConnectionError:
            pass  # the client went away; the reader is closed on the way out
    return resp


async def _close_clients(app: web.Application) -> None:
    await _runtime.aclose()


def make_app(registry: Registry, *, hosts: Iterable[str] = (), token: str | None = None) -> web.Application:
    """The whole server: object routes plus the bucket browser."""
    from . import _browser

    app = web.Application()
    app[REGISTRY] = registry
    app[TOKEN] = token or secrets.token_urlsafe(32)
    app[HOSTS] = frozenset({"127.0.0.1", "localhost", "::1", *hosts})
    app.router.add_route("*", PREFIX + "{tail:.*}", handle_object)
    add_form_routes(app)
    _browser.add_routes(app)
    app.on_response_prepare.append(_add_headers)
    app.on_cleanup.append(_close_clients)
    return app


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def serve(
    host: str,
    port: int,
    names: list[str],
    *,
    public: list[str],
    versioned: bool,
    out: TextIO = sys.stdout,
) -> int:
    """Run until SIGINT or SIGTERM; then close connections and aiobucket's clients, and return 0."""
    registry = Registry(names, public=public, versioned=versioned)
    for name in names:
        if registry.get(name) is None:
            raise InvalidArgument(
                "only local (file://) buckets can be served; check its configuration", bucket=name
            )
    app = make_app(registry, hosts=[host])
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        url = _url(bound_host, bound_port)
        served = registry.all()
        out.write(f"aiobucket serve: listening on {url}  (bucket browser at /, objects at /o/BUCKET/KEY)\n")
        for s in served:
            access = f"public: {s.public_reason}" if s.public else "private: signed URLs only"
            # A misspelt name is served too (an app may write it later), but it shows.
            empty = "" if is_bucket(s.root) else "  (nothing written yet)"
            out.write(f"  {s.name:<24} {access:<48} {s.root}{empty}\n")
        if not names:
            out.write("  (and any other bucket that lives on the local backend)\n")
        base = _signing.dev_server_base()
        if base != url:
            out.write(f"  note: the library signs URLs for {base}; set {_signing.ENV_DEV_SERVER}={url}\n")
        out.write("Press Ctrl-C to stop.\n")
        out.flush()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        signals = (signal.SIGINT, signal.SIGTERM)
        for sig in signals:
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)
    finally:
        await runner.cleanup()
    return 0
