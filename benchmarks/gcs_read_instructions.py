"""Client instructions per small GCS read, counted by callgrind (load on a shared machine does not skew it).

    python benchmarks/gcs_read_instructions.py                      # aiobucket, gcloud-aio-storage, aiohttp
    python benchmarks/gcs_read_instructions.py --only aiobucket --src ../main/src   # another tree's code

A server in its own process answers every GET as GCS's JSON API answers a media GET
of a 4 KiB object: the same headers (``X-Goog-Generation``, ``X-Goog-Hash``,
``X-Goog-Stored-Content-Length``, ``ETag``, ``Last-Modified``, ...), so each client
does all of its per-read work. Each client reads 4 KiB objects sequentially (2,000 keys in turn) under
``valgrind --tool=callgrind``, once ``--reads`` times and once ``--reads`` + 100
times; the difference over 100 is the instructions of one read, start-up excluded.
Only the client is counted (user space: the kernel's share of a socket call is not).

Rows: ``aiobucket`` (``Bucket.download(key).read()``, emulator mode: no token),
``aiobucket-provider`` (the GCS provider's ``get`` and its body, without the public
reader), ``gcloud-aio-storage`` (``Storage.download``), ``aiohttp`` (a bare GET and
``read()``). Needs valgrind; ``--plain`` prints client CPU per read instead.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._callgrind import canned_server, instructions

MODES = ["aiobucket", "aiobucket-provider", "gcloud-aio-storage", "aiohttp"]
KEYS = 2000
"""Reads cycle through this many keys, as the benchmark's small GETs do (and past yarl's
cache of 128 parsed URLs, which one key read over and over would always hit)."""


def serve(port: int) -> None:
    """The media GET answer, as GCS sends it for a 4 KiB object (headers as seen from the JSON API)."""
    import base64
    import hashlib

    import google_crc32c
    from aiohttp import web

    body = b"s" * 4096
    headers = {
        "X-GUploader-UploadID": "ABPtcPo" + "x" * 80,
        "Content-Type": "application/octet-stream",
        "ETag": '"CLjf35ybvoADEAE="',
        "Expires": "Mon, 01 Jan 1990 00:00:00 GMT",
        "Pragma": "no-cache",
        "Cache-Control": "no-cache, no-store, max-age=0, must-revalidate",
        "Last-Modified": "Sun, 06 Dec 2026 07:07:20 GMT",
        "X-Goog-Generation": "1796540840135323",
        "X-Goog-Metageneration": "1",
        "X-Goog-Stored-Content-Encoding": "identity",
        "X-Goog-Stored-Content-Length": str(len(body)),
        "X-Goog-Hash": "crc32c={},md5={}".format(
            base64.b64encode(google_crc32c.value(body).to_bytes(4, "big")).decode(),
            base64.b64encode(hashlib.md5(body).digest()).decode(),
        ),
        "X-Goog-Storage-Class": "STANDARD",
        "Accept-Ranges": "bytes",
        "Server": "UploadServer",
    }

    async def media(request: web.Request) -> web.Response:
        return web.Response(body=body, headers=headers)

    app = web.Application()
    app.router.add_get("/storage/v1/b/{bucket}/o/{key}", media)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


async def client(mode: str, reads: int, root: str) -> float:
    """Read ``reads`` times after 20 warm-up reads; the client CPU seconds per read."""
    import aiohttp

    close: list[object] = []
    if mode.startswith("aiobucket"):
        import aiobucket
        from aiobucket.providers.base import GetOptions

        aiobucket.configure({"bench": f"gs://bench?endpoint={root}&emulator=true"})
        bucket = aiobucket.Bucket("bench")
        provider, _ = bucket._handle.provider()  # for the provider alone, below the reader
        opts = GetOptions()
        close.append(aiobucket.aclose)

        async def one(key: str) -> int:
            if mode == "aiobucket":
                return len(await bucket.download(key).read())
            _, body = await provider.get(key, opts)
            n = 0
            async for chunk in body:
                n += len(chunk)
            await body.aclose()
            return n

    else:
        session = aiohttp.ClientSession()
        close.append(session.close)
        from gcloud.aio.storage import Storage

        storage = Storage(session=session, api_root=root)

        async def one(key: str) -> int:
            if mode == "gcloud-aio-storage":
                return len(await storage.download("bench", key))
            async with session.get(
                f"{root}/storage/v1/b/bench/o/{key.replace('/', '%2F')}?alt=media"
            ) as resp:
                return len(await resp.read())

    keys = [f"small/{i:05d}" for i in range(KEYS)]
    for i in range(20):
        assert await one(keys[i]) == 4096
    started = time.process_time()
    for i in range(reads):
        await one(keys[(20 + i) % KEYS])
    cpu = (time.process_time() - started) / max(reads, 1)
    for fn in close:
        await fn()  # type: ignore[operator]
    return cpu


def count(mode: str, reads: int, root: str, src: str | None) -> int:
    """Instructions of a whole client run with ``reads`` reads (callgrind's total)."""
    return instructions(__file__, ["--client", mode, "--reads", str(reads), "--root", root], src)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", help="comma-separated rows: " + ", ".join(MODES))
    ap.add_argument("--src", help="put this aiobucket source tree first on the path (another checkout's src)")
    ap.add_argument(
        "--reads", type=int, default=30, help="reads of the shorter run (the longer has 100 more)"
    )
    ap.add_argument("--plain", action="store_true", help="client CPU per read (2,000 reads), no valgrind")
    ap.add_argument("--client", help=argparse.SUPPRESS)
    ap.add_argument("--root", help=argparse.SUPPRESS)
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve)
        return
    if args.client:
        import asyncio

        print(f"{asyncio.run(client(args.client, args.reads, args.root)) * 1e6:.1f}", file=sys.stderr)
        return

    with canned_server(__file__, "/storage/v1/b/bench/o/x?alt=media", "the GCS-like server") as root:
        for mode in args.only.split(",") if args.only else MODES:
            if args.plain:
                env = {**os.environ, **({"PYTHONPATH": args.src} if args.src else {})}
                cmd = [sys.executable, __file__, "--client", mode, "--reads", "2000", "--root", root]
                cpu = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stderr
                print(f"{mode:20} {float(cpu.split()[-1]):8.1f} µs client CPU per read")
                continue
            short = count(mode, args.reads, root, args.src)
            long = count(mode, args.reads + 100, root, args.src)
            print(f"{mode:20} {(long - short) // 100:>9,} instructions per read")


if __name__ == "__main__":
    main()
