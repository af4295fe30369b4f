"""Browser upload forms end to end: headless Chromium posts a real FormData.

A page served from its own origin (127.0.0.1, another port) builds a FormData
from the form's fields plus a File and ``fetch()``es it, cross-origin, to
SeaweedFS (bucket CORS applied from ``aiobucket infra --format cors``) and to
``aiobucket serve`` (the real command, in a subprocess). For each: an in-limit
file is stored byte for byte; an over-limit file, an expired form and a tampered
policy are refused and leave nothing behind.

Debian's ``chromium`` (``/usr/bin/chromium``) is used, never a browser downloaded
by ``playwright install``; see test_devserver_browser for the launch rules.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import http.server
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from test_devserver import Server, write_config
from test_devserver_browser import ARGS, CHROMIUM, _require_browser

import aiobucket
from aiobucket import Bucket, config, infra

T = TypeVar("T")

PAGE = b"""<!doctype html>
<meta charset="utf-8">
<title>upload form test</title>
<script>
// What an app's upload page does: the signed fields, a Content-Type when the form
// leaves it to the browser, then the file, last.
window.postForm = async (form, size, type, overrides) => {
  const fd = new FormData();
  const fields = { ...form.fields, ...overrides };
  for (const [name, value] of Object.entries(fields)) fd.append(name, value);
  if (!("Content-Type" in fields)) fd.append("Content-Type", type);
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + 7) & 255;
  fd.append("file", new File([bytes], "picked.bin", { type }));
  try {
    const response = await fetch(form.url, { method: "POST", body: fd });
    return { status: response.status, text: await response.text() };
  } catch (error) {
    return { status: 0, text: String(error) };
  }
};
</script>
<p>ready</p>
"""


def content(size: int) -> bytes:
    """The bytes the page's postForm() sends."""
    return bytes((i * 31 + 7) & 255 for i in range(size))


def run(make: Callable[[], Awaitable[T]]) -> T:
    """Run library code on its own loop: Playwright's sync API owns this thread's loop."""

    async def main() -> T:
        try:
            return await make()
        finally:
            await aiobucket.aclose()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result(timeout=120)


async def stored(bucket: Bucket, key: str) -> bytes | None:
    try:
        return await bucket.download(key).read()
    except aiobucket.ObjectNotFound:
        return None


@pytest.fixture
def page_origin() -> Iterator[str]:
    """A one-page site on 127.0.0.1: the upload page's own origin."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(PAGE)))
            self.end_headers()
            self.wfile.write(PAGE)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def four_cases(origin: str, bucket: Bucket, prefix: str) -> list[str]:
    """Drive the page through the four cases; returns the page's problems (console errors)."""
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    limit = 64 * 1024

    def sign(key: str, **kw: Any) -> dict[str, object]:
        async def make() -> dict[str, object]:
            form = await bucket.signed_upload_form(key, **kw)
            return form.to_json()

        return run(make)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
            page.goto(origin + "/")

            def post(form: dict[str, object], size: int, ctype: str, **over: str) -> dict[str, Any]:
                result: dict[str, Any] = page.evaluate(
                    "([f, n, t, o]) => window.postForm(f, n, t, o)", [form, size, ctype, over]
                )
                assert result["status"] != 0, f"fetch failed (CORS or network): {result['text']}"
                return result

            # 1. In limit: stored byte for byte, with the browser's Content-Type.
            form = sign(f"{prefix}in.png", max_size=limit, min_size=1, content_type_prefix="image/")
            result = post(form, 50_000, "image/png")
            assert 200 <= result["status"] < 300, result
            assert run(lambda: stored(bucket, f"{prefix}in.png")) == content(50_000)
            attrs = run(lambda: bucket.attrs(f"{prefix}in.png"))
            assert attrs.content_type == "image/png"

            # 2. Over the limit (32 times over, so the browser is still sending when refused).
            form = sign(f"{prefix}over.bin", max_size=limit)
            result = post(form, 32 * limit, "application/octet-stream")
            assert result["status"] == 400 and "TooLarge" in result["text"], result
            assert run(lambda: stored(bucket, f"{prefix}over.bin")) is None

            # 3. Expired: a one-second form, used three seconds later.
            form = sign(f"{prefix}late.bin", max_size=limit, ttl=1)
            time.sleep(3)
            result = post(form, 100, "application/octet-stream")
            assert result["status"] == 403, result
            assert run(lambda: stored(bucket, f"{prefix}late.bin")) is None

            # 4. Tampered: the policy's max_size raised, the signature kept.
            form = sign(f"{prefix}tampered.bin", max_size=limit)
            fields = form["fields"]
            assert isinstance(fields, dict)
            document = base64.b64decode(fields["policy"])
            assert document.count(str(limit).encode()) == 1
            raised = base64.b64encode(document.replace(str(limit).encode(), str(limit * 64).encode()))
            result = post(form, 2 * limit, "application/octet-stream", policy=raised.decode())
            assert result["status"] == 403, result
            assert run(lambda: stored(bucket, f"{prefix}tampered.bin")) is None
        finally:
            browser.close()
    return problems


def test_browser_form_uploads_to_the_dev_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, page_origin: str
) -> None:
    _require_browser()
    cfg = write_config(tmp_path)
    monkeypatch.setenv("AIOBUCKET_CONFIG", str(cfg))
    config.reset()
    server = Server(tmp_path)
    try:
        monkeypatch.setenv("AIOBUCKET_DEV_SERVER", server.wait_listening())
        problems = four_cases(page_origin, Bucket("priv"), "forms/")  # priv has key_prefix pp/
        # Nothing half-written is left in the bucket's directory either: one blob, the stored one.
        root = tmp_path / "store" / "priv"
        assert [p for p in (root / "tmp").iterdir()] == []
        assert len([p for p in (root / "blobs").rglob("*") if p.is_file()]) == 1
    finally:
        rc = server.stop()
        config.reset()
        log = server.log()
        print(f"----- aiobucket serve log (exit {rc}) -----\n{log}")
    assert rc == 0
    assert "Traceback" not in log and "ResourceWarning" not in log
    assert not problems, problems


def test_browser_form_uploads_to_seaweedfs(s3_server: Any, page_origin: str) -> None:
    _require_browser()
    name = f"bf-{uuid.uuid4().hex[:10]}"
    manifest = infra.Manifest()
    manifest.services["web"] = {name: {"SignedUploader"}}
    rules = infra.cors(manifest, [page_origin], location=lambda b: [("s3", s3_server.bucket)])
    cors = rules[f"s3://{s3_server.bucket}"]["configuration"]

    async def s3(op: str, **kw: Any) -> Any:
        from aiobotocore.session import AioSession

        async with AioSession().create_client(
            "s3",
            endpoint_url=s3_server.endpoint,
            region_name=s3_server.region,
            aws_access_key_id=s3_server.access_key,
            aws_secret_access_key=s3_server.secret_key,
        ) as client:
            return await getattr(client, op)(Bucket=s3_server.bucket, **kw)

    run(lambda: s3("put_bucket_cors", CORSConfiguration=cors))
    try:
        applied = run(lambda: s3("get_bucket_cors"))["CORSRules"]
        assert applied[0]["AllowedOrigins"] == [page_origin]
        assert sorted(applied[0]["AllowedMethods"]) == ["POST", "PUT"]
        with config.override({name: {**s3_server.settings(), "key_prefix": f"{name}/"}}):
            problems = four_cases(page_origin, Bucket(name), "forms/")
    finally:
        run(lambda: s3("delete_bucket_cors"))
    assert not problems, problems
