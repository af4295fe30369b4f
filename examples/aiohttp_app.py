"""The profile-picture service with aiohttp.web: streaming uploads and downloads.

    PUT    /profile-picture/{user_id}   store the request body (any size, streamed); POST works too
    GET    /profile-picture/{user_id}   serve it: Range, and HTTP caching (ETag, 304)
    DELETE /profile-picture/{user_id}   remove it

Run it (the bucket lives under ./.aiobucket/ unless AIOBUCKET_CONFIG says otherwise):

    pip install aiobucket aiohttp
    python examples/aiohttp_app.py            # http://127.0.0.1:8000 (--port 0: any free port)

    curl -T me.jpg -H 'Content-Type: image/jpeg' http://127.0.0.1:8000/profile-picture/42
    curl -r 0-99 http://127.0.0.1:8000/profile-picture/42 | xxd | head
    aiobucket infra examples/ --strict          # the IAM permissions this code needs

Memory stays bounded however large the body: the request is streamed into the
writer chunk by chunk, and the object is streamed back out chunk by chunk.
In a real service the user id would come from authentication, not from the path.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

import aiobucket
from aiobucket import Bucket, InvalidArgument, ObjectChanged, ObjectNotFound, UploadAttrs
from aiobucket.http import serve

# Declared once, at module level. Declaring does no I/O; configuration decides where it lives.
ProfilePictures = Bucket("profile-pictures")

CHUNK = 256 * 1024
ROUTE = "/profile-picture/{user_id:[A-Za-z0-9_-]{1,64}}"
routes = web.RouteTableDef()


def key_for(request: web.Request) -> str:
    return f"users/{request.match_info['user_id']}"


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


@routes.put(ROUTE)  # curl -T sends PUT: "store this at this key"
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
    return web.json_response(attrs.to_json())


@routes.delete(ROUTE)
async def delete_profile_picture(request: web.Request) -> web.StreamResponse:
    await ProfilePictures.remove(key_for(request))  # ObjectNotFound -> 404
    return web.Response(status=204)


# -- download -----------------------------------------------------------------------


@routes.get(ROUTE)
async def serve_profile_picture(request: web.Request) -> web.StreamResponse:
    # One call answers the GET: 304 when the client's copy is current (If-None-Match,
    # If-Modified-Since: no body leaves the store), 206 for a Range, 416 for a range
    # beyond the end, else 200; with ETag, Last-Modified and Cache-Control. "no-cache"
    # (unless the object has its own Cache-Control) lets browsers keep the picture but
    # ask each time, so a new picture shows at once and an unchanged one costs a 304.
    try:
        resp = await serve(ProfilePictures, key_for(request), request.headers, cache_control="no-cache")
    except ObjectChanged:
        raise web.HTTPServiceUnavailable(text="the picture is changing; try again") from None
    if resp.reader is None:
        return web.Response(status=resp.status, headers=resp.headers)
    # The reader is open: from here on, every path closes it.
    try:
        response = web.StreamResponse(status=resp.status, headers=resp.headers)
        await response.prepare(request)
        try:
            async for chunk in resp.reader:
                await response.write(chunk)
        except ConnectionError:  # reset in write(), or "Connection lost" while draining
            return response  # the client went away mid-download; the finally closes the reader
        await response.write_eof()
        return response
    finally:
        await resp.aclose()


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
