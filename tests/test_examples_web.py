"""The FastAPI and aiohttp examples, end to end under real servers.

Each test starts ``python examples/<app>.py --port 0`` as a subprocess (uvicorn
or aiohttp's web.run_app) with the profile-pictures bucket on a ``file://``
directory, drives it with httpx or a raw socket, and checks the storage state
and the server process (peak memory, open files) from outside. The server is
stopped with SIGTERM in teardown, must exit 0, and must not have logged a
traceback or a ResourceWarning (an unclosed reader or writer); its log is
printed, so a failing test shows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.util
import random
import signal
import socket
import struct
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from webapp_harness import EXAMPLES, PART_SIZE, AppServer, eventually

import aiobucket
from aiobucket import Bucket, ObjectAttrs, ObjectNotFound, config

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024
APPS = ["fastapi_app", "aiohttp_app"]
BIG = 200 * MiB
# The writer holds at most about two parts (the filling buffer and the part being
# written; the local backend writes one part at a time); 64 MiB covers everything
# else (the server's socket buffers, the allocator's slack, the download chunks).
RSS_LIMIT = 2 * PART_SIZE + 64 * MiB  # 80 MiB, against a 200 MiB stream


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
    # uvicorn re-raises the SIGTERM once its graceful shutdown is done; aiohttp exits 0.
    assert rc == (-signal.SIGTERM if srv.app == "fastapi_app" else 0), f"{srv.app}: exit {rc}"
    for bad in ("Traceback", "ResourceWarning", "Exception ignored", "Error handling request"):
        assert bad not in log, f"the {srv.app} server logged {bad!r}"
    if srv.app == "fastapi_app":
        assert "Application shutdown complete." in log  # the aiobucket lifespan ran and closed


async def stored(srv: AppServer, key: str) -> ObjectAttrs | None:
    """What the bucket holds at ``key``, read by this process straight from the store."""
    with config.override({"profile-pictures": srv.root.as_uri()}):
        try:
            return await Bucket("profile-pictures").attrs(key)
        except ObjectNotFound:
            return None
        finally:
            await aiobucket.aclose()


def random_bytes(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


async def put(client: httpx.AsyncClient, srv: AppServer, user: str, data: bytes) -> dict[str, object]:
    # PUT, as `curl -T` in the README sends (test_upload_accepts_put_and_post covers POST)
    r = await client.put(srv.url(user), content=data, headers={"Content-Type": "image/png"})
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


# -- 200 MiB through a streaming upload and download, bounded memory -------------------


async def test_200_mib_upload_and_download_keep_server_memory_bounded(server: AppServer) -> None:
    async with httpx.AsyncClient(timeout=httpx.Timeout(300.0)) as client:
        # Warm up (imports, the index, thread pools) so the baseline is a running server.
        await put(client, server, "warmup", b"x" * 1000)
        assert (await client.get(server.url("warmup"))).content == b"x" * 1000
        before = server.vm_hwm()

        sent = hashlib.md5()
        chunk_size = 1 * MiB

        async def body() -> AsyncIterator[bytes]:
            rnd = random.Random(200)
            for _ in range(BIG // chunk_size):
                chunk = rnd.randbytes(chunk_size)
                sent.update(chunk)
                yield chunk

        r = await client.post(server.url("big"), content=body(), headers={"Content-Type": "image/jpeg"})
        assert r.status_code == 200, r.text
        after_upload = server.vm_hwm()
        attrs = r.json()
        assert attrs["size"] == BIG
        assert attrs["etag"] == sent.hexdigest()  # the local backend's etag is the MD5
        assert attrs["content_type"] == "image/jpeg"
        on_disk = await stored(server, "users/big")
        assert on_disk is not None and on_disk.size == BIG and on_disk.etag == sent.hexdigest()
        assert server.tmp_files() == []

        received = hashlib.md5()
        async with client.stream("GET", server.url("big")) as resp:
            assert resp.status_code == 200
            assert resp.headers["content-length"] == str(BIG)
            assert resp.headers["content-type"] == "image/jpeg"
            assert resp.headers["etag"] == f'"{sent.hexdigest()}"'
            async for chunk in resp.aiter_raw():
                received.update(chunk)
        assert received.hexdigest() == sent.hexdigest()
        after_download = server.vm_hwm()

    up, down = after_upload - before, after_download - after_upload
    print(
        f"{server.app}: VmHWM before {before / MiB:.1f} MiB, after the 200 MiB upload "
        f"{after_upload / MiB:.1f} MiB (+{up / MiB:.1f}), after the download "
        f"{after_download / MiB:.1f} MiB (+{down / MiB:.1f}); limit +{RSS_LIMIT / MiB:.0f} MiB"
    )
    assert up < RSS_LIMIT, f"peak RSS grew {up / MiB:.1f} MiB during a {BIG / MiB:.0f} MiB upload"
    assert after_download - before < RSS_LIMIT, "peak RSS grew too much during the download"


# -- downloads: whole, ranged, suffix, unsatisfiable, missing ----------------------------


async def test_download_ranges_and_missing_objects(server: AppServer) -> None:
    data = random_bytes(3 * MiB + 123, seed=1)
    size = len(data)
    async with httpx.AsyncClient(timeout=60.0) as client:
        attrs = await put(client, server, "42", data)
        assert attrs["size"] == size and attrs["content_type"] == "image/png"
        etag = f'"{attrs["etag"]}"'

        r = await client.get(server.url("42"))
        assert r.status_code == 200 and r.content == data
        assert r.headers["content-type"] == "image/png"
        assert r.headers["content-length"] == str(size)
        assert r.headers["etag"] == etag
        assert r.headers["accept-ranges"] == "bytes"
        assert "last-modified" in r.headers

        cases = {
            "bytes=100-199": (100, 199),
            f"bytes={size - 10}-": (size - 10, size - 1),
            "bytes=0-": (0, size - 1),
            f"bytes={MiB}-{10 * size}": (MiB, size - 1),  # the end is clamped
            "bytes=-500": (size - 500, size - 1),
            f"bytes=-{size + 5}": (0, size - 1),  # a suffix longer than the object
        }
        for header, (first, last) in cases.items():
            r = await client.get(server.url("42"), headers={"Range": header})
            assert r.status_code == 206, header
            assert r.headers["content-range"] == f"bytes {first}-{last}/{size}", header
            assert r.headers["content-length"] == str(last - first + 1), header
            assert r.headers["etag"] == etag
            assert r.content == data[first : last + 1], header

        for header in (f"bytes={size}-", f"bytes={size + 1}-{size + 9}", "bytes=-0"):
            r = await client.get(server.url("42"), headers={"Range": header})
            assert r.status_code == 416, header
            assert r.headers["content-range"] == f"bytes */{size}", header

        # A Range it does not serve (several ranges, other units) gets the whole object.
        for header in ("bytes=0-1,5-6", "items=0-1"):
            r = await client.get(server.url("42"), headers={"Range": header})
            assert r.status_code == 200 and r.content == data, header

        r = await client.get(server.url("42"), headers={"If-None-Match": etag})
        assert r.status_code == 304 and r.content == b""

        r = await client.get(server.url("nobody"))
        assert r.status_code == 404
        assert r.json() == {"detail": "no profile picture"}
        assert (await client.get(server.url("nobody"), headers={"Range": "bytes=0-9"})).status_code == 404

        assert (await client.delete(server.url("42"))).status_code == 204
        assert (await client.get(server.url("42"))).status_code == 404
        assert (await client.delete(server.url("42"))).status_code == 404
    assert await stored(server, "users/42") is None
    # Every reader the server opened gets closed.
    await eventually(lambda: server.open_files_under(server.root / "blobs") == [], "all readers closed")


# -- a client that goes away mid-upload ------------------------------------------------


async def _start_raw_upload(
    srv: AppServer, user: str, framing: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Send request headers and then body bytes until the server has a part on disk."""
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    length = "Transfer-Encoding: chunked" if framing == "chunked" else f"Content-Length: {BIG}"
    writer.write(
        f"POST /profile-picture/{user} HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\n"
        f"Content-Type: image/jpeg\r\n{length}\r\n\r\n".encode()
    )
    chunk = random_bytes(MiB, seed=7)
    frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" if framing == "chunked" else chunk
    # More than one part (8 MiB) must reach the server before the local backend opens a
    # tmp file; the tmp file appearing proves the upload is under way.
    for _ in range(64):
        if srv.tmp_files():
            break
        writer.write(frame)
        await writer.drain()
    await eventually(lambda: bool(srv.tmp_files()), "the upload started a tmp file")
    return reader, writer


async def _drop(writer: asyncio.StreamWriter, how: str) -> None:
    if how == "reset":  # RST instead of FIN
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
@pytest.mark.parametrize("how", ["fin", "reset"])
async def test_client_abort_mid_upload_stores_nothing(server: AppServer, how: str, framing: str) -> None:
    _, writer = await _start_raw_upload(server, "quitter", framing)
    await _drop(writer, how)

    # The server notices, the upload aborts, and its tmp file is removed.
    await eventually(lambda: server.tmp_files() == [], "the aborted upload's tmp file was removed")
    assert await stored(server, "users/quitter") is None
    assert server.blob_files() == []
    async with httpx.AsyncClient(timeout=60.0) as client:
        assert (await client.get(server.url("quitter"))).status_code == 404
        # The server is fine afterwards.
        await put(client, server, "quitter", b"second try")
        assert (await client.get(server.url("quitter"))).content == b"second try"
    for sub in ("tmp", "blobs"):
        path = server.root / sub
        await eventually(lambda p=path: server.open_files_under(p) == [], f"no {sub}/ file open")


async def test_client_abort_mid_overwrite_keeps_the_old_picture(server: AppServer) -> None:
    old = random_bytes(1000, seed=3)
    async with httpx.AsyncClient(timeout=60.0) as client:
        before = await put(client, server, "keeper", old)
        blobs = server.blob_files()
        _, writer = await _start_raw_upload(server, "keeper", "chunked")
        await _drop(writer, "reset")
        await eventually(lambda: server.tmp_files() == [], "the aborted upload's tmp file was removed")
        r = await client.get(server.url("keeper"))
        assert r.status_code == 200 and r.content == old
        assert r.headers["etag"] == f'"{before["etag"]}"'
    on_disk = await stored(server, "users/keeper")
    assert on_disk is not None and on_disk.etag == before["etag"]
    assert server.blob_files() == blobs


# -- a client that goes away mid-download -------------------------------------------------


async def test_client_abort_mid_download_closes_the_reader(server: AppServer) -> None:
    data = random_bytes(32 * MiB, seed=5)
    async with httpx.AsyncClient(timeout=60.0) as client:
        await put(client, server, "big", data)
    blobs = server.root / "blobs"
    assert server.open_files_under(blobs) == []

    # A small receive buffer, so the server cannot push the whole object into the kernel.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(f"GET /profile-picture/big HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    await reader.readexactly(MiB)
    # The client stops reading: the server is stuck mid-body with the object open.
    await eventually(lambda: bool(server.open_files_under(blobs)), "the server has the object open")
    await _drop(writer, "reset")
    await eventually(lambda: server.open_files_under(blobs) == [], "the server closed the object")

    async with httpx.AsyncClient(timeout=60.0) as client:
        r = await client.get(server.url("big"), headers={"Range": "bytes=-3"})
        assert r.status_code == 206 and r.content == data[-3:]
    await eventually(lambda: server.open_files_under(blobs) == [], "the server closed the object")


# -- the modules themselves -----------------------------------------------------------------


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_examples_import_without_io(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    fastapi_app = _load("fastapi_app")
    aiohttp_app = _load("aiohttp_app")
    for module in (fastapi_app, aiohttp_app):
        assert isinstance(module.ProfilePictures, Bucket)
        assert module.ProfilePictures.name == "profile-pictures"
    paths = {getattr(r, "path", None) for r in fastapi_app.app.routes}
    assert "/profile-picture/{user_id}" in paths
    app = aiohttp_app.create_app()
    assert {r.method for r in app.router.routes()} >= {"GET", "PUT", "POST", "DELETE"}
    assert list(tmp_path.iterdir()) == []  # declaring buckets and building apps did no I/O


async def test_upload_accepts_put_and_post(server: AppServer) -> None:
    """`curl -T` sends PUT (the README's command); POST, the form-style verb, works too."""
    async with httpx.AsyncClient(timeout=60.0) as client:
        for method, data in (("PUT", b"by put"), ("POST", b"by post")):
            r = await client.request(method, server.url("verbs"), content=data)
            assert r.status_code == 200, (method, r.text)
            assert (await client.get(server.url("verbs"))).content == data
        r = await client.patch(server.url("verbs"), content=b"x")
        assert r.status_code == 405
