"""``aiobucket serve``: the bucket browser, server-rendered HTML plus a little vanilla JS.

Pages: ``/`` lists the buckets, ``/b/{bucket}?prefix=...`` lists objects with
folders by "/". Uploads, downloads and deletes go to the admin routes
``/api/b/{bucket}/o/{key}`` (bucket-level keys, no key_prefix), guarded so only
the browser page of this very server process can use them:

* the Host header must name this server (127.0.0.1, localhost, ::1 or --host),
  which defeats DNS rebinding;
* an Origin header, when sent, must be this server's own origin;
* PUT and DELETE need ``X-Aiobucket-Token``: a random per-process token embedded
  in the page. A custom header forces a CORS preflight, which these routes never
  grant, so other sites cannot even send the request;
* GET (downloads, for plain ``<a download>`` links) accepts the token from the
  header or from a ``SameSite=Strict``, HttpOnly cookie set with the page.

Every key, prefix and name is escaped with ``html.escape`` (attributes quoted);
the JS reads keys from ``data-`` attributes and sets text with ``textContent``.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from datetime import datetime
from html import escape
from importlib import resources
from urllib.parse import quote, unquote, urlsplit

from aiohttp import web

from ..errors import BucketError, InvalidArgument, ObjectNotFound
from ..listing import ListItem
from ..types import ObjectAttrs, Query
from ._common import Served, check_key, error_response, object_headers
from ._objects import HOSTS, REGISTRY, TOKEN, _stream, put_object

API = "/api/b/"
LIMIT = 1000
_STATIC = {"browser.css": "text/css", "browser.js": "text/javascript"}


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/b/{bucket}", listing)
    app.router.add_get("/static/{name}", static)
    app.router.add_route("*", API + "{tail:.*}", admin)


def _cookie_name(request: web.Request) -> str:
    # Cookies ignore ports: name it per port so two servers do not overwrite each other's.
    port = urlsplit(f"//{request.host}").port or 80
    return f"aiobucket_token_{port}"


def _host_ok(request: web.Request) -> bool:
    try:
        hostname = urlsplit(f"//{request.host}").hostname
    except ValueError:
        return False
    return hostname is not None and hostname in request.app[HOSTS]


def _guard(request: web.Request, *, write: bool) -> web.Response | None:
    if not _host_ok(request):
        return web.Response(status=403, text="unexpected Host header\n")
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        return web.Response(status=403, text="cross-origin requests are not allowed here\n")
    token = request.app[TOKEN]
    sent = request.headers.get("X-Aiobucket-Token")
    if sent is None and not write:
        sent = request.cookies.get(_cookie_name(request))
    if sent is None or not hmac.compare_digest(sent.encode(), token.encode()):
        return web.Response(status=403, text="the browser token is missing or wrong; reload the page\n")
    return None


# -- pages ---------------------------------------------------------------------------


def _page(request: web.Request, title: str, body: str) -> web.Response:
    token = request.app[TOKEN]
    html = (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f'<meta name="aiobucket-token" content="{escape(token)}">'
        f"<title>{escape(title)} · aiobucket</title>"
        '<link rel=icon href="data:,"><link rel=stylesheet href="/static/browser.css">'
        '<script src="/static/browser.js" defer></script>'
        f"</head><body>{body}</body></html>\n"
    )
    resp = web.Response(text=html, content_type="text/html", headers={"Cache-Control": "no-store"})
    resp.set_cookie(_cookie_name(request), token, httponly=True, samesite="Strict", path="/")
    return resp


def _not_found(request: web.Request, what: str) -> web.Response:
    body = f'<header><a href="/">aiobucket</a></header><main><p>{escape(what)}</p></main>'
    resp = _page(request, "not found", body)
    resp.set_status(404)
    return resp


async def index(request: web.Request) -> web.Response:
    if not _host_ok(request):
        return web.Response(status=403, text="unexpected Host header\n")
    rows = []
    for s in request.app[REGISTRY].all():
        access = f"public ({s.public_reason})" if s.public else "private (signed URLs)"
        rows.append(
            f'<tr><td><a href="/b/{quote(s.name)}">{escape(s.name)}</a></td>'
            f"<td>{escape(access)}</td><td><code>{escape(s.key_prefix) or '—'}</code></td>"
            f"<td><code>{escape(str(s.root))}</code></td></tr>"
        )
    table = (
        "<table><thead><tr><th>Bucket</th><th>Access</th><th>Key prefix</th><th>Root</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
        if rows
        else "<p>No local buckets yet. Upload with <code>aiobucket cp FILE BUCKET:KEY</code>.</p>"
    )
    body = f'<header><a href="/">aiobucket</a> · buckets</header><main>{table}</main>'
    return _page(request, "buckets", body)


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    size, unit = n / 1024, "KiB"
    for bigger in ("MiB", "GiB"):
        if size < 1024:
            break
        size, unit = size / 1024, bigger
    return f"{size:.1f} {unit}"


def _when(t: datetime | None) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S %Z") if t else "—"


def _prefix_link(bucket: str, prefix: str) -> str:
    return f"/b/{quote(bucket)}?prefix={quote(prefix, safe='')}"


def _object_row(bucket: str, prefix: str, a: ObjectAttrs) -> str:
    href = f"{API}{quote(bucket)}/o/{quote(a.name, safe='/~')}?download=1"
    key = escape(a.name)
    return (
        f'<tr class=object data-key="{key}">'
        f'<td><a class=download href="{escape(href)}" download title="{key}">'
        f"{escape(a.name[len(prefix) :])}</a></td>"
        f"<td>{escape(_size(a.size))}</td><td>{escape(a.content_type)}</td>"
        f"<td><code>{escape(a.etag)}</code></td><td>{escape(_when(a.last_modified))}</td>"
        f'<td><button type=button class=delete data-key="{key}">Delete</button></td></tr>'
    )


async def _none() -> AsyncIterator[ListItem]:
    return
    yield  # pragma: no cover - makes this an async generator


async def listing(request: web.Request) -> web.Response:
    if not _host_ok(request):
        return web.Response(status=403, text="unexpected Host header\n")
    served = request.app[REGISTRY].get(request.match_info["bucket"])
    if served is None:
        return _not_found(request, f"no such local bucket: {request.match_info['bucket']}")
    prefix = request.query.get("prefix", "")
    b = served.bucket()
    folders: list[str] = []
    objects: list[ObjectAttrs] = []
    more = False
    try:
        entries = b.list(Query(prefix=prefix, delimiter="/", limit=LIMIT + 1)) if served.exists else _none()
        async for err, entry in entries:
            if err is not None:
                raise err
            assert entry is not None
            if len(folders) + len(objects) == LIMIT:
                more = True
                break
            if entry.is_prefix:
                folders.append(entry.name)
                continue
            try:
                objects.append(await b.attrs(entry.name))
            except ObjectNotFound:
                continue  # deleted meanwhile
    except InvalidArgument as exc:
        return _not_found(request, f"bad prefix: {exc}")
    except BucketError as exc:
        return error_response(exc)

    top = escape(_prefix_link(served.name, ""))
    crumbs = ['<a href="/">aiobucket</a>', f'<a href="{top}">{escape(served.name)}</a>']
    parts = prefix.split("/")
    for i, part in enumerate(parts[:-1]):
        sub = "/".join(parts[: i + 1]) + "/"
        crumbs.append(f'<a href="{escape(_prefix_link(served.name, sub))}">{escape(part)}</a>')
    if parts[-1]:
        crumbs.append(escape(parts[-1]))
    rows = []
    if prefix:
        parent = prefix[: prefix.rstrip("/").rfind("/") + 1] if "/" in prefix.rstrip("/") else ""
        up = escape(_prefix_link(served.name, parent))
        rows.append(f'<tr class=up><td colspan=6><a href="{up}">↑ ..</a></td></tr>')
    rows += [
        f'<tr class=folder><td colspan=6><a href="{escape(_prefix_link(served.name, f))}">'
        f"{escape(f[len(prefix) :])}</a></td></tr>"
        for f in folders
    ]
    rows += [_object_row(served.name, prefix, a) for a in objects]
    access = f"public ({served.public_reason})" if served.public else "private: objects need signed URLs"
    body = (
        f"<header>{' / '.join(crumbs)}</header>"
        f'<main data-bucket="{escape(served.name)}" data-prefix="{escape(prefix)}">'
        f"<p class=meta>{escape(access)} · root <code>{escape(str(served.root))}</code></p>"
        "<div id=drop class=drop>Drop files here to upload them to "
        f"<code>{escape(prefix) or '/'}</code>, or "
        "<label class=pick>choose files <input type=file id=file-input multiple></label></div>"
        "<p id=status role=status></p>"
        "<table><thead><tr><th>Name</th><th>Size</th><th>Content type</th><th>ETag</th>"
        f"<th>Modified</th><th></th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        + (f"<p class=meta>Showing the first {LIMIT} entries.</p>" if more else "")
        + ("" if rows else "<p class=empty>No objects here.</p>")
        + "</main>"
    )
    return _page(request, f"{served.name}/{prefix}", body)


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in _STATIC:
        raise web.HTTPNotFound()
    data = resources.files("aiobucket.devserver").joinpath("static", name).read_bytes()
    return web.Response(body=data, content_type=_STATIC[name], headers={"Cache-Control": "no-cache"})


# -- the admin routes the page uses ----------------------------------------------------


async def admin(request: web.Request) -> web.StreamResponse:
    method = request.method
    if method not in ("GET", "HEAD", "PUT", "DELETE"):
        raise web.HTTPMethodNotAllowed(method, ["GET", "HEAD", "PUT", "DELETE"])
    denied = _guard(request, write=method in ("PUT", "DELETE"))
    if denied is not None:
        return denied
    raw_bucket, sep, rest = request.rel_url.raw_path[len(API) :].partition("/")
    served = request.app[REGISTRY].get(raw_bucket)
    if served is None or not sep or not rest.startswith("o/"):
        return web.Response(status=404, text="no such bucket here\n")
    try:
        key = check_key(unquote(rest[2:], errors="strict"))
    except (InvalidArgument, UnicodeDecodeError) as exc:
        return web.Response(status=400, text=f"bad key: {exc}\n")
    try:
        if method == "PUT":
            return await put_object(request, served, key)
        if method == "DELETE":
            await served.bucket().remove(key)
            return web.Response(status=204)
        return await _download(request, served, key)
    except BucketError as exc:
        return error_response(exc)


async def _download(request: web.Request, served: Served, key: str) -> web.StreamResponse:
    reader = served.bucket().download(key)
    try:
        attrs = await reader.attrs()
    except BaseException:
        await reader.aclose()
        raise
    headers = object_headers(attrs)
    if "download" in request.query:
        name = key.rsplit("/", 1)[-1]
        ascii_name = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name)
        headers["Content-Disposition"] = (
            f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"
        )
    if request.method == "HEAD":
        await reader.aclose()
        resp = web.StreamResponse(headers=headers)
        resp.content_length = attrs.size
        await resp.prepare(request)
        await resp.write_eof()
        return resp
    return await _stream(request, reader, 200, headers, attrs.size)
