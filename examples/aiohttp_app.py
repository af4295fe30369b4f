"""The profile-picture service with aiohttp.web: streaming uploads and downloads.

    POST   /profile-picture/{user_id}   store the request body (any size, streamed)
    GET    /profile-picture/{user_id}   serve it, with Range, ETag and If-None-Match
    DELETE /profile-picture/{user_id}   remove it

Run it (the bucket lives under ./.aiobucket/ unless AIOBUCKET_CONFIG says otherwise):

    pip install aiobucket aiohttp
    python examples/aiohttp_app.py            # http://127.0.0.1:8000 (--port 0: any free port)

    curl -T me.jpg -H 'Content-Type: image/jpeg' http://127.0.0.1:8000/profile-picture/42
    curl -r 0-99 http://127.0.0.1:8000/profile-picture/42 | xxd | head

Memory stays bounded however large the body: the request is streamed into the
writer chunk by chunk, and the object is streamed back out chunk by chunk.
In a real service the user id would come from authentication, not from the path.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from email.utils import format_datetime

from aiohttp import web

import aiobucket
from aiobucket import (
    Bucket,
    InvalidArgument,
    ObjectAttrs,
    ObjectNotFound,
    RangeNotSatisfiable,
    Reader,
    UploadAttrs,
)

# Declared once, at module level. Declaring does no I/O; configuration decides where it lives.
ProfilePictures = Bucket("profile-pictures")

CHUNK = 256 * 1024
ROUTE = "/profile-picture/{user_id:[A-Za-z0-9_-]{1,64}}"
routes = web.RouteTableDef()


def key_for(request: web.Request) -> str:
    return f"users/{request.match_info['user_id']}"


def attrs_json(attrs: ObjectAttrs) -> dict[str, object]:
    return {
        "name": attrs.name,
        "size": attrs.size,
        "etag": attrs.etag,
        "content_type": attrs.content_type,
        "last_modified": attrs.last_modified.isoformat() if attrs.last_modified else None,
    }


@web.middleware
async def bucket_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except ObjectNotFound:
        return web.json_response({"detail": "no profile picture"}, status=404)
    except InvalidArgument as exc:
        return web.json_response({"detail": str(exc)}, status=400)


@routes.post(ROUTE)
async def upload_profile_picture(request: web.Request) -> web.StreamResponse:
    content_type = request.headers.get("Content-Type") or "application/octet-stream"
    writer = ProfilePictures.upload(key_for(request), attrs=UploadAttrs(content_type=content_type))
    try:
        # Leaving the block normally commits. If reading the body fails (the client
        # disconnected: aiohttp raises ConnectionResetError from the payload) or this
        # task is cancelled (web.run_app(handler_cancellation=True)), the exception
        # passes through the block, which aborts the upload first: the parts sent so
        # far are discarded and nothing is stored under the key (an existing picture
        # stays as it was). Only a complete body is ever committed.
        async with writer:
            async for chunk in request.content.iter_chunked(CHUNK):  # never the whole body
                await writer.write(chunk)
    except ConnectionResetError:
        # Already aborted by the block. There is nobody left to answer.
        return web.Response(status=400)
    attrs = await writer.close()  # committed by the block; close() again returns its attrs
    return web.json_response(attrs_json(attrs))


@routes.delete(ROUTE)
async def delete_profile_picture(request: web.Request) -> web.StreamResponse:
    await ProfilePictures.remove(key_for(request))  # ObjectNotFound -> 404
    return web.Response(status=204)


# -- download -----------------------------------------------------------------------

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
Range = tuple[int, int]


class Unsatisfiable(Exception):
    def __init__(self, size: int) -> None:
        self.size = size


def byte_range(header: str | None, size: int) -> Range | None:
    """The inclusive (first, last) byte positions a ``Range`` header asks for, or None
    to send the whole object. Raises Unsatisfiable when no requested byte exists.

    One range of ``bytes=a-b``, ``bytes=a-`` or ``bytes=-n``; anything else (several
    ranges, other units, garbage) is ignored, which RFC 9110 allows.
    """
    m = _RANGE.fullmatch(header.replace(" ", "")) if header else None
    if m is None or m.groups() == ("", ""):
        return None
    first, last = m.groups()
    if not first:  # suffix: the last n bytes
        n = int(last)
        if n == 0 or size == 0:
            raise Unsatisfiable(size)
        return max(0, size - n), size - 1
    start = int(first)
    if last and int(last) < start:
        return None  # invalid, so ignored
    if start >= size:
        raise Unsatisfiable(size)
    return start, size - 1 if not last else min(int(last), size - 1)


async def open_download(key: str, range_header: str | None) -> tuple[Reader, ObjectAttrs, Range | None]:
    """Open a reader on the object, or on the byte range the client asked for.

    A range needs the object's size first (``bytes=-n``, clamping the end), so it is
    resolved against attrs(); the opened reader's etag then proves it is still the same
    object. If it was replaced in between, resolve again.
    """
    for _ in range(3):
        if range_header is None:
            reader = ProfilePictures.download(key)
            return reader, await reader.attrs(), None
        head = await ProfilePictures.attrs(key)
        rng = byte_range(range_header, head.size)
        if rng is None:
            range_header = None
            continue
        reader = ProfilePictures.download(key, offset=rng[0], length=rng[1] - rng[0] + 1)
        try:
            attrs = await reader.attrs()
        except RangeNotSatisfiable:
            continue  # it shrank meanwhile; the failed reader is closed already
        if attrs.etag == head.etag:
            return reader, attrs, rng
        await reader.aclose()
    raise web.HTTPServiceUnavailable(text="the picture is changing; try again")


@routes.get(ROUTE)
async def serve_profile_picture(request: web.Request) -> web.StreamResponse:
    try:
        reader, attrs, rng = await open_download(key_for(request), request.headers.get("Range"))
    except Unsatisfiable as exc:
        return web.Response(status=416, headers={"Content-Range": f"bytes */{exc.size}"})

    # The reader is open: from here on, every path closes it.
    try:
        headers = {"ETag": f'"{attrs.etag}"', "Accept-Ranges": "bytes"}
        if attrs.last_modified is not None:
            headers["Last-Modified"] = format_datetime(attrs.last_modified, usegmt=True)
        if_none_match = request.headers.get("If-None-Match", "")
        if headers["ETag"] in [t.strip().removeprefix("W/") for t in if_none_match.split(",")]:
            return web.Response(status=304, headers=headers)
        headers["Content-Type"] = attrs.content_type
        response = web.StreamResponse(status=200 if rng is None else 206, headers=headers)
        if rng is None:
            response.content_length = attrs.size
        else:
            response.content_length = rng[1] - rng[0] + 1
            response.headers["Content-Range"] = f"bytes {rng[0]}-{rng[1]}/{attrs.size}"
        await response.prepare(request)
        try:
            async for chunk in reader:
                await response.write(chunk)
        except ConnectionResetError:
            return response  # the client went away mid-download; the finally closes the reader
        await response.write_eof()
        return response
    finally:
        await reader.aclose()


async def aiobucket_clients(app: web.Application) -> AsyncIterator[None]:
    """Close aiobucket's clients and file handles when the app shuts down."""
    yield
    await aiobucket.aclose()


def create_app() -> web.Application:
    app = web.Application(middlewares=[bucket_errors])
    app.add_routes(routes)
    app.cleanup_ctx.append(aiobucket_clients)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    args = parser.parse_args()
    web.run_app(create_app(), host=args.host, port=args.port)
