"""Azure Blob Storage on Azurite: aiobucket against azure-storage-blob's aio client and obstore.

    .venv-bench/bin/python benchmarks/azure_blob.py                 # 500 small ops, 256 MiB, 3 rounds
    .venv-bench/bin/python benchmarks/azure_blob.py --quick         # 50 small ops, 16 MiB, 1 round

One Azurite (the test fixture's code, ``tests/servers/azurite_server.py``) on loopback;
every measurement is a fresh interpreter (``--worker``) that creates its client, warms it
up with one small PUT and GET, then times the scenario and reports throughput and client
CPU (``time.process_time()`` of the whole process, a library's threads included) per
operation or per GiB. Scenarios: small PUT and GET of 4 KiB objects at concurrency 32;
a big upload streamed from 1 MiB chunks and its download into a discarding sink.
Each library is driven as its docs show: aiobucket's ``upload()``/``download()``, the
SDK's ``upload_blob``/``download_blob().chunks()``, obstore's ``put_async``/``get_async``.
Libraries are interleaved round after round; the table shows medians.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

KiB, MiB = 1024, 1024 * 1024
LIBS = ("aiobucket", "azure-sdk", "obstore")
SCENARIOS = ("put_small", "get_small", "upload_big", "download_big")
SMALL = 4 * KiB
CONCURRENCY = 32


async def _chunks(size: int) -> AsyncIterator[bytes]:
    block = os.urandom(MiB)
    for i in range(0, size, MiB):
        yield block[: min(MiB, size - i)]


# -- drivers: open, put, get, upload (stream), download (count) -------------------------------


class AiobucketDriver:
    async def open(self, env: dict[str, Any]) -> None:
        import aiobucket

        aiobucket.configure({"bench": {"url": env["url"], "account_key": env["key"], "key_prefix": "bench/"}})
        self.b = aiobucket.Bucket("bench")

    async def put(self, key: str, data: bytes) -> None:
        async with self.b.upload(key) as w:
            await w.write(data)

    async def get(self, key: str) -> int:
        return len(await self.b.download(key).read())

    async def upload(self, key: str, size: int) -> None:
        async with self.b.upload(key) as w:
            async for c in _chunks(size):
                await w.write(c)

    async def download(self, key: str) -> int:
        n = 0
        async with self.b.download(key) as r:
            async for c in r:
                n += len(c)
        return n

    async def close(self) -> None:
        import aiobucket

        await aiobucket.aclose()


class SdkDriver:
    async def open(self, env: dict[str, Any]) -> None:
        from azure.storage.blob.aio import BlobServiceClient

        self.svc = BlobServiceClient(
            env["account_url"], credential={"account_name": env["account"], "account_key": env["key"]}
        )
        self.c = self.svc.get_container_client(env["container"])

    async def put(self, key: str, data: bytes) -> None:
        await self.c.upload_blob("bench/" + key, data, overwrite=True)

    async def get(self, key: str) -> int:
        stream = await self.c.download_blob("bench/" + key)
        return len(await stream.readall())

    async def upload(self, key: str, size: int) -> None:
        await self.c.upload_blob(
            "bench/" + key, _chunks(size), length=size, overwrite=True, max_concurrency=8
        )

    async def download(self, key: str) -> int:
        stream = await self.c.download_blob("bench/" + key, max_concurrency=8)
        n = 0
        async for c in stream.chunks():
            n += len(c)
        return n

    async def close(self) -> None:
        await self.svc.close()


class ObstoreDriver:
    async def open(self, env: dict[str, Any]) -> None:
        from obstore.store import AzureStore

        os.environ["AZURITE_BLOB_STORAGE_URL"] = env["endpoint"]  # object_store's emulator endpoint
        self.store = AzureStore(
            env["container"],
            prefix="bench",
            config={"use_emulator": True},
            client_options={"allow_http": True},
        )

    async def put(self, key: str, data: bytes) -> None:
        import obstore as obs

        await obs.put_async(self.store, key, data)

    async def get(self, key: str) -> int:
        import obstore as obs

        resp = await obs.get_async(self.store, key)
        return len(await resp.bytes_async())

    async def upload(self, key: str, size: int) -> None:
        import obstore as obs

        await obs.put_async(self.store, key, _chunks(size))

    async def download(self, key: str) -> int:
        import obstore as obs

        resp = await obs.get_async(self.store, key)
        n = 0
        async for c in resp.stream():
            n += len(c)
        return n

    async def close(self) -> None:
        return None


DRIVERS: dict[str, Callable[[], Any]] = {
    "aiobucket": AiobucketDriver,
    "azure-sdk": SdkDriver,
    "obstore": ObstoreDriver,
}


async def _bounded(n: int, work: Callable[[int], Awaitable[Any]]) -> None:
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> None:
        async with sem:
            await work(i)

    await asyncio.gather(*(one(i) for i in range(n)))


async def _worker(lib: str, scenario: str, env: dict[str, Any]) -> dict[str, float]:
    d = DRIVERS[lib]()
    await d.open(env)
    try:
        data = os.urandom(SMALL)
        await d.put(f"{lib}/warm", data)
        await d.get(f"{lib}/warm")
        n, size = env["n"], env["size"]
        if scenario == "get_small":
            await _bounded(n, lambda i: d.put(f"{lib}/s{i}", data))
        c0, t0 = time.process_time(), time.perf_counter()
        if scenario == "put_small":
            await _bounded(n, lambda i: d.put(f"{lib}/s{i}", data))
        elif scenario == "get_small":
            await _bounded(n, lambda i: d.get(f"{lib}/s{i}"))
        elif scenario == "upload_big":
            await d.upload(f"{lib}/big", size)
        else:
            await d.upload(f"{lib}/big", size)  # untimed setup first
            c0, t0 = time.process_time(), time.perf_counter()
            got = await d.download(f"{lib}/big")
            if got != size:
                raise RuntimeError(f"{lib}: downloaded {got} of {size} bytes")
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        await d.close()
    if scenario.endswith("small"):
        return {"rate": n / wall, "cpu": cpu / n * 1e6}  # ops/s, µs per op
    return {"rate": size / MiB / wall, "cpu": cpu / (size / (1024 * MiB))}  # MiB/s, CPU s per GiB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    ap.add_argument("--worker", nargs=3, metavar=("LIB", "SCENARIO", "ENV"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        lib, scenario, env = args.worker
        print(json.dumps(asyncio.run(_worker(lib, scenario, json.loads(env)))))
        return

    from servers._proc import stop
    from servers.azurite_server import ACCOUNT, ACCOUNT_KEY, azurite_binary, start

    binary = azurite_binary()
    if binary is None:
        sys.exit("Azurite is not installed: run .ci/run once (npm install under .tools/azurite)")
    rounds = args.rounds or (1 if args.quick else 3)
    proc, server = start(Path(tempfile.mkdtemp(prefix="azurite-bench-")), binary)
    env = {
        "url": f"az://{server.container}?account={ACCOUNT}&endpoint={server.endpoint}",
        "endpoint": server.endpoint,
        "account_url": f"{server.endpoint}/{ACCOUNT}",
        "account": ACCOUNT,
        "key": ACCOUNT_KEY,
        "container": server.container,
        "n": 50 if args.quick else 500,
        "size": 16 * MiB if args.quick else 256 * MiB,
    }
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    crashes: dict[str, int] = {}
    try:
        for r in range(rounds):
            for scenario in [x for x in SCENARIOS if x in args.only.split(",")]:
                order = LIBS[r % len(LIBS) :] + LIBS[: r % len(LIBS)]
                for lib in order:
                    out = subprocess.run(
                        [sys.executable, __file__, "--worker", lib, scenario, json.dumps(env)],
                        capture_output=True, text=True, check=False, timeout=900,
                    )  # fmt: skip
                    lines = out.stdout.splitlines()
                    if out.returncode != 0:
                        tail = (out.stderr or out.stdout)[-2000:]
                        print(f"{lib} {scenario} exited with {out.returncode}:\n{tail}", file=sys.stderr)
                        crashes[lib] = crashes.get(lib, 0) + 1
                    if lines and lines[-1].startswith("{"):  # measured before any crash at exit
                        results.setdefault((lib, scenario), []).append(json.loads(lines[-1]))
    finally:
        stop(proc)
    size = f"{env['size'] // MiB} MiB"
    print(
        f"Azurite 3.35 on loopback, {env['n']} x 4 KiB at concurrency {CONCURRENCY}, "
        f"{size}; {rounds} round(s)"
    )
    print("| library | scenario | rate | client CPU |")
    print("|---|---|---|---|")
    for scenario in [x for x in SCENARIOS if x in args.only.split(",")]:
        for lib in LIBS:
            runs = results.get((lib, scenario))
            if not runs:
                print(f"| {lib} | {scenario} | failed | |")
                continue
            rate = statistics.median(x["rate"] for x in runs)
            cpu = statistics.median(x["cpu"] for x in runs)
            unit, cunit = ("ops/s", "µs/op") if scenario.endswith("small") else ("MiB/s", "CPU s/GiB")
            print(f"| {lib} | {scenario} | {rate:,.0f} {unit} | {cpu:,.1f} {cunit} |")
    for lib, n in sorted(crashes.items()):
        print(f"\n{lib}: {n} worker(s) exited non-zero (after printing their measurement, or failed)")


if __name__ == "__main__":
    main()
