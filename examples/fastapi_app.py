"""The profile-picture service with FastAPI: streaming uploads and downloads.

    PUT    /profile-picture/{user_id}   store the request body (any size, streamed); POST works too
    GET    /profile-picture/{user_id}   serve it: Range, and HTTP caching (ETag, 304)
    DELETE /profile-picture/{user_id}   remove it

Run it (the bucket lives under ./.aiobucket/ unless AIOBUCKET_CONFIG says otherwise):

    pip install aiobucket fastapi uvicorn
    python examples/fastapi_app.py            # http://127.0.0.1:8000 (--port 0: any free port)

    curl -T me.jpg -H 'Content-Type: image/jpeg' http://127.0.0.1:8000/profile-picture/42
    curl -r 0-99 http://127.0.0.1:8000/profile-picture/42 | xxd | head
    aiobucket infra examples/ --strict          # the IAM permissions this code needs

Memory stays bounded however large the body: the request is streamed into the
writer chunk by chunk, and the object is streamed back out chunk by chunk.
In a real service the user id would come from authentication (a dependency
such as ``Depends(current_user)``), not from the path.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncGenerator
from typing import Annotated

from fastapi import FastAPI, HTTPException, Path, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

import aiobucket
from aiobucket import Bucket, InvalidArgument, ObjectChanged, ObjectNotFound, Reader, UploadAttrs
from aiobucket.http import serve

# Declared once, at module level. Declaring does no I/O; configuration decides where it lives.
ProfilePictures = Bucket("profile-pictures")

# Closes aiobucket's clients and file handles when the server shuts down.
app = FastAPI(title="profile pictures", lifespan=aiobucket.lifespan)

UserId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


def key_for(user_id: str) -> str:
    return f"users/{user_id}"


@app.exception_handler(ObjectNotFound)
async def not_found(request: Request, exc: ObjectNotFound) -> JSONResponse:
    return JSONResponse({"detail": "no profile picture"}, status_code=404)


@app.exception_handler(InvalidArgument)
async def invalid(request: Request, exc: InvalidArgument) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=400)


@app.api_route("/profile-picture/{user_id}", methods=["PUT", "POST"])
async def upload_profile_picture(user_id: UserId, request: Request) -> Response:
    content_type = request.headers.get("content-type") or "application/octet-stream"
    writer = ProfilePictures.upload(key_for(user_id), attrs=UploadAttrs(content_type=content_type))
    try:
        # Leaving the block normally commits. If the body stream raises (the client
        # disconnected: Starlette raises ClientDisconnect) or this task is cancelled,
        # the exception passes through the block, which aborts the upload first: the
        # parts sent so far are discarded and nothing is stored under the key (an
        # existing picture stays as it was). Only a complete body is ever committed.
        async with writer:
            async for chunk in request.stream():  # chunks as they arrive; never the whole body
                await writer.write(chunk)
    except ClientDisconnect:
        # Already aborted by the block. There is nobody left to answer; uvicorn drops this.
        return Response(status_code=400)
    attrs = await writer.close()  # committed by the block; close() again returns its attrs
    return JSONResponse(attrs.to_json())


@app.delete("/profile-picture/{user_id}", status_code=204)
async def delete_profile_picture(user_id: UserId) -> Response:
    await ProfilePictures.remove(key_for(user_id))  # ObjectNotFound -> 404
    return Response(status_code=204)


# -- download -----------------------------------------------------------------------


class ReaderResponse(StreamingResponse):
    """Streams an aiobucket Reader and always closes it.

    When the client disconnects, Starlette stops iterating the body but does not close
    the iterator: the generator's ``finally`` would then run whenever the garbage
    collector gets to it, and the reader's file handle or HTTP connection would linger
    until then. Closing the generator here, however the response ends, runs that
    ``finally`` and releases the reader at once.
    """

    def __init__(self, reader: Reader, status_code: int, headers: dict[str, str]) -> None:
        self._chunks = self._stream(reader)
        super().__init__(self._chunks, status_code=status_code, headers=headers)

    @staticmethod
    async def _stream(reader: Reader) -> AsyncGenerator[bytes, None]:
        try:
            async for chunk in reader:
                yield chunk
        finally:
            await reader.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._chunks.aclose()


@app.get("/profile-picture/{user_id}")
async def serve_profile_picture(user_id: UserId, request: Request) -> Response:
    # One call answers the GET: 304 when the client's copy is current (If-None-Match,
    # If-Modified-Since: no body leaves the store), 206 for a Range, 416 for a range
    # beyond the end, else 200; with ETag, Last-Modified and Cache-Control. "no-cache"
    # (unless the object has its own Cache-Control) lets browsers keep the picture but
    # ask each time, so a new picture shows at once and an unchanged one costs a 304.
    try:
        resp = await serve(ProfilePictures, key_for(user_id), request.headers, cache_control="no-cache")
    except ObjectChanged:
        raise HTTPException(503, "the picture is changing; try again") from None
    if resp.reader is None:
        return Response(status_code=resp.status, headers=resp.headers)
    return ReaderResponse(resp.reader, resp.status, resp.headers)


if __name__ == "__main__":
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port)
