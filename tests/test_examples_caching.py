"""HTTP caching in the FastAPI and aiohttp examples, end to end under real servers.

Each test starts ``python examples/<app>.py --port 0`` (see webapp_harness), stores a
picture through its POST route and then revalidates it the way browsers and CDNs do:
If-None-Match (strong, weak, lists, ``*``), If-Modified-Since, and a Range guarded by
If-Range. Every answer is checked for the validators a cache needs: ETag,
Last-Modified and Cache-Control, on the 304 too.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path

import httpx
import pytest
from webapp_harness import AppServer, eventually

pytestmark = pytest.mark.anyio

APPS = ["fastapi_app", "aiohttp_app"]
PICTURE = bytes(range(256)) * 400


@pytest.fixture(params=APPS)
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AppServer]:
    srv = AppServer(request.param, tmp_path)
    try:
        srv.wait_listening()
        yield srv
    finally:
        rc = srv.stop()
        log = srv.log()
        print(f"----- {srv.app} server log (exit {rc}) -----\n{log}")
    assert rc == (-signal.SIGTERM if srv.app == "fastapi_app" else 0), f"{srv.app}: exit {rc}"
    for bad in ("Traceback", "ResourceWarning", "Exception ignored", "Error handling request"):
        assert bad not in log, f"the {srv.app} server logged {bad!r}"


async def _upload(client: httpx.AsyncClient, srv: AppServer, user: str, data: bytes) -> str:
    r = await client.post(srv.url(user), content=data, headers={"Content-Type": "image/png"})
    assert r.status_code == 200, r.text
    etag: str = r.json()["etag"]
    return etag


def _assert_validators(r: httpx.Response, etag: str) -> None:
    assert r.headers["etag"] == f'"{etag}"'
    assert r.headers["cache-control"] == "no-cache"
    modified = parsedate_to_datetime(r.headers["last-modified"])
    assert modified.tzinfo is not None and modified <= datetime.now(UTC) + timedelta(seconds=5)


async def test_revalidation_answers_304_with_the_validators(server: AppServer) -> None:
    async with httpx.AsyncClient(timeout=60.0) as client:
        etag = await _upload(client, server, "7", PICTURE)
        first = await client.get(server.url("7"))
        assert first.status_code == 200 and first.content == PICTURE
        _assert_validators(first, etag)
        last_modified = first.headers["last-modified"]

        matching = [f'"{etag}"', f'W/"{etag}"', f'"0000", "{etag}"', "*"]
        for value in matching:
            r = await client.get(server.url("7"), headers={"If-None-Match": value})
            assert r.status_code == 304, value
            assert r.content == b"", value
            _assert_validators(r, etag)
            assert r.headers["last-modified"] == last_modified

        r = await client.get(server.url("7"), headers={"If-None-Match": '"some-other-version"'})
        assert r.status_code == 200 and r.content == PICTURE

        r = await client.get(server.url("7"), headers={"If-Modified-Since": last_modified})
        assert r.status_code == 304 and r.content == b""
        _assert_validators(r, etag)
        earlier = format_datetime(parsedate_to_datetime(last_modified) - timedelta(hours=1), usegmt=True)
        r = await client.get(server.url("7"), headers={"If-Modified-Since": earlier})
        assert r.status_code == 200 and r.content == PICTURE
        # If-None-Match wins over If-Modified-Since (RFC 9110 13.1.3).
        later = format_datetime(datetime.now(UTC) + timedelta(days=1), usegmt=True)
        r = await client.get(
            server.url("7"), headers={"If-None-Match": '"stale"', "If-Modified-Since": later}
        )
        assert r.status_code == 200 and r.content == PICTURE
        # Garbage dates are ignored, not errors.
        r = await client.get(server.url("7"), headers={"If-Modified-Since": "yesterday-ish"})
        assert r.status_code == 200

        # A Range request whose client copy is current is a 304 too.
        r = await client.get(server.url("7"), headers={"If-None-Match": f'"{etag}"', "Range": "bytes=0-9"})
        assert r.status_code == 304 and r.content == b""
    await eventually(lambda: server.open_files_under(server.root / "blobs") == [], "every reader closed")


async def test_a_new_picture_replaces_the_cached_one(server: AppServer) -> None:
    async with httpx.AsyncClient(timeout=60.0) as client:
        old = await _upload(client, server, "8", PICTURE)
        new_picture = PICTURE[::-1]
        new = await _upload(client, server, "8", new_picture)
        assert new != old
        r = await client.get(server.url("8"), headers={"If-None-Match": f'"{old}"'})
        assert r.status_code == 200 and r.content == new_picture
        _assert_validators(r, new)


async def test_if_range_resumes_only_the_same_picture(server: AppServer) -> None:
    async with httpx.AsyncClient(timeout=60.0) as client:
        etag = await _upload(client, server, "9", PICTURE)
        size = len(PICTURE)
        r = await client.get(server.url("9"), headers={"Range": "bytes=100-", "If-Range": f'"{etag}"'})
        assert r.status_code == 206 and r.content == PICTURE[100:]
        assert r.headers["content-range"] == f"bytes 100-{size - 1}/{size}"
        _assert_validators(r, etag)
        # The client holds an older version: the whole current picture, not a splice.
        r = await client.get(server.url("9"), headers={"Range": "bytes=100-", "If-Range": '"older"'})
        assert r.status_code == 200 and r.content == PICTURE
        # A weak validator never satisfies If-Range.
        r = await client.get(server.url("9"), headers={"Range": "bytes=100-", "If-Range": f'W/"{etag}"'})
        assert r.status_code == 200 and r.content == PICTURE
        # Past the end, but for an older version: the whole picture rather than 416.
        r = await client.get(server.url("9"), headers={"Range": f"bytes={size}-", "If-Range": '"older"'})
        assert r.status_code == 200 and r.content == PICTURE
        r = await client.get(server.url("9"), headers={"Range": f"bytes={size}-", "If-Range": f'"{etag}"'})
        assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{size}"
    await eventually(lambda: server.open_files_under(server.root / "blobs") == [], "every reader closed")
