"""Browser uploads with limits, with aiohttp.web: the app signs a form, the browser sends the file.

    GET  /              a page with a file input
    POST /upload-form   {"key": ..., "url": ..., "fields": {...}}: a signed form for a new key

The file never passes through this app: the browser POSTs it straight to the
storage (S3, GCS, or ``aiobucket serve`` for the local backend), which refuses
anything over MAX_SIZE, anything that is not an image, and the form itself once
TTL has passed or if a field was changed. Storage answers 2xx and stores the file,
or 4xx and stores nothing.

Run it on the local backend (the bucket lives under ./.aiobucket/):

    pip install 'aiobucket[serve]'
    aiobucket serve &                         # takes the form POSTs, on 127.0.0.1:8787
    python examples/upload_form_app.py        # then open http://127.0.0.1:8000/

On S3 or GCS, configure the bucket there (AIOBUCKET_CONFIG) and give it the CORS
rules from ``aiobucket infra examples --format cors --origin http://127.0.0.1:8000``.
In a real service the key would come from the signed-in user, not from uuid4().
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

from aiohttp import web

import aiobucket
from aiobucket import Bucket, SignedUploader

Uploads = Bucket("uploads")

MAX_SIZE = 5 * 1024 * 1024
TTL = timedelta(minutes=10)

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>Upload a picture</title>
<input type="file" id="file" accept="image/*">
<p id="status"></p>
<script>
document.getElementById("file").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  const status = document.getElementById("status");
  const form = await (await fetch("/upload-form", { method: "POST" })).json();
  const body = new FormData();
  for (const [name, value] of Object.entries(form.fields)) body.append(name, value);
  body.append("Content-Type", file.type);  // the form fixes only the prefix, image/
  body.append("file", file);               // always last
  const response = await fetch(form.url, { method: "POST", body });
  status.textContent = response.ok ? `stored as ${form.key}` : `refused: ${await response.text()}`;
});
</script>
"""

routes = web.RouteTableDef()


def uploads() -> SignedUploader:
    """The handlers may only sign uploads: no reads, lists or deletes through here."""
    return Uploads.ref(SignedUploader)


@routes.get("/")
async def page(request: web.Request) -> web.Response:
    return web.Response(text=PAGE, content_type="text/html")


@routes.post("/upload-form")
async def upload_form(request: web.Request) -> web.Response:
    key = f"pictures/{uuid.uuid4().hex}"
    form = await uploads().signed_upload_form(
        key, max_size=MAX_SIZE, content_type_prefix="image/", ttl=TTL, metadata={"source": "browser"}
    )
    return web.json_response({"key": key, **form.to_json()})


async def aiobucket_clients(app: web.Application) -> AsyncIterator[None]:
    yield
    await aiobucket.aclose()


def create_app() -> web.Application:
    app = web.Application()
    app.add_routes(routes)
    app.cleanup_ctx.append(aiobucket_clients)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    args = parser.parse_args()
    web.run_app(create_app(), host=args.host, port=args.port)
