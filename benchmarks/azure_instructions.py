"""Client instructions per small Azure PUT and GET, counted by callgrind (unskewed by load).

    python benchmarks/azure_instructions.py                         # aiobucket, PUT and GET
    python benchmarks/azure_instructions.py --only get --src ../main/src   # another tree's code
    python benchmarks/azure_instructions.py --profile put           # where a PUT's time goes (cProfile)

A server in its own process answers as Azurite 3.35 answers a 4 KiB Put Blob (201, empty
body) and Get Blob (200, the 4 KiB body): the same headers (``ETag``, ``Last-Modified``,
``Content-MD5``, ``x-ms-blob-content-md5``, ``x-ms-request-id``, ...), so the client does all
of its per-operation work; the server checks no signature. The client (aiobucket with an
account key: SharedKey signing on every request) runs ``--ops`` operations at concurrency 32
under ``valgrind --tool=callgrind``, once with ``--ops`` and once with ``--ops`` + 1,000; the
difference over 1,000 is one operation's instructions, start-up excluded. Keys cycle through
2,000 names, past yarl's cache of parsed URLs. Only the client's user space is counted.
Rows: ``put`` (``Bucket.upload(key)`` with one ``write`` of 4 KiB) and ``get``
(``Bucket.download(key).read()``). Needs valgrind; ``--plain`` prints client CPU per
operation instead (20,000 operations, no valgrind).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._callgrind import canned_server, instructions

MODES = ["put", "get"]
KEYS = 2000
CONCURRENCY = 32
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def serve(port: int) -> None:
    """Put Blob and Get Blob answers with Azurite 3.35's headers (captured from one)."""
    import base64
    import hashlib

    from aiohttp import web

    body = b"s" * 4096
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    common = {
        "Server": "Azurite-Blob/3.35.0",
        "etag": '"0x234AE87468FBEC0"',
        "last-modified": "Sun, 06 Dec 2026 13:27:32 GMT",
        "x-ms-request-id": "a67006eb-62ce-4a3f-a920-fd3c4449c136",
        "x-ms-version": "2025-11-05",
        "date": "Sun, 06 Dec 2026 13:27:32 GMT",
    }
    put = {**common, "content-md5": md5, "x-ms-request-server-encrypted": "true"}
    get = {
        **common,
        "x-ms-creation-time": "Sun, 06 Dec 2026 13:27:32 GMT",
        "content-type": "application/octet-stream",
        "content-md5": md5,
        "x-ms-blob-type": "BlockBlob",
        "x-ms-lease-state": "available",
        "x-ms-lease-status": "unlocked",
        "accept-ranges": "bytes",
        "x-ms-server-encrypted": "true",
        "x-ms-blob-content-md5": md5,
    }

    async def blob(request: web.Request) -> web.Response:
        if request.method == "PUT":
            await request.read()
            return web.Response(status=201, headers=put)
        return web.Response(body=body, headers=get)

    app = web.Application()
    app.router.add_route("*", "/{account}/{container}/{key:.+}", blob)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


async def client(mode: str, ops: int, root: str, profile: bool = False) -> float:
    """``ops`` operations at concurrency 32 after 64 warm-up ones; client CPU seconds per op."""
    import aiobucket

    url = f"az://bench?account={ACCOUNT}&endpoint={root}"
    aiobucket.configure({"bench": {"url": url, "account_key": ACCOUNT_KEY}})
    bucket = aiobucket.Bucket("bench")
    data = os.urandom(4096)

    async def one(i: int) -> None:
        key = f"small/{i % KEYS:05d}"
        if mode == "put":
            async with bucket.upload(key) as w:
                await w.write(data)
        else:
            assert len(await bucket.download(key).read()) == 4096

    async def run(n: int) -> None:
        sem = asyncio.Semaphore(CONCURRENCY)

        async def bounded(i: int) -> None:
            async with sem:
                await one(i)

        await asyncio.gather(*(bounded(i) for i in range(n)))

    await run(64)
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    started = time.process_time()
    await run(ops)
    cpu = (time.process_time() - started) / max(ops, 1)
    if profiler is not None:
        import pstats

        profiler.disable()
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(90)
    await aiobucket.aclose()
    return cpu


def count(mode: str, ops: int, root: str, src: str | None) -> int:
    """Instructions of a whole client run with ``ops`` operations (callgrind's total)."""
    return instructions(__file__, ["--client", mode, "--ops", str(ops), "--root", root], src)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="comma-separated rows: " + ", ".join(MODES))
    ap.add_argument("--src", help="put this aiobucket source tree first on the path (another checkout's src)")
    ap.add_argument("--ops", type=int, default=200, help="operations of the short run (the long: 1,000 more)")
    ap.add_argument("--plain", action="store_true", help="client CPU per operation (20,000), no valgrind")
    ap.add_argument("--profile", metavar="MODE", help="cProfile 20,000 operations of MODE, no valgrind")
    ap.add_argument("--client", help=argparse.SUPPRESS)
    ap.add_argument("--root", help=argparse.SUPPRESS)
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve)
        return
    if args.client:
        cpu = asyncio.run(client(args.client, args.ops, args.root, profile=args.profile is not None))
        print(f"{cpu * 1e6:.1f}", file=sys.stderr)
        return

    env = {**os.environ, **({"PYTHONPATH": args.src} if args.src else {})}
    with canned_server(__file__, f"/{ACCOUNT}/bench/x", "the Azurite-like server") as root:
        if args.profile:
            cmd = [sys.executable, __file__, "--client", args.profile, "--ops", "20000", "--root", root]
            cmd += ["--profile", "x"]
            print(subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout)
            return
        for mode in args.only.split(",") if args.only else MODES:
            if args.plain:
                cmd = [sys.executable, __file__, "--client", mode, "--ops", "20000", "--root", root]
                cpu = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stderr
                print(f"{mode:4} {float(cpu.split()[-1]):8.1f} µs client CPU per operation")
                continue
            short = count(mode, args.ops, root, args.src)
            long = count(mode, args.ops + 1000, root, args.src)
            print(f"{mode:4} {(long - short) // 1000:>9,} instructions per operation")


if __name__ == "__main__":
    main()
