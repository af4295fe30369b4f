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

Azurite bounds every client's throughput here (a single-threaded Node process that spends
2-3 ms of CPU per small PUT and 1.5-2 ms per GET: four to five times aiobucket's), so the
server is made as cheap as it fairly can be, the same for every client: the small-operation
scenarios run on an Azurite whose ``--location`` is on tmpfs (``/dev/shm``, where it exists:
its extent files' open/write/fdatasync cost no disk I/O; about 20% less Azurite CPU per PUT
than on disk in the quietest paired run; the disk's file calls were about 8% of
its main thread's profile), warmed up by one untimed round of all three libraries first
(Azurite's cost per operation falls by about a third over its first thousand requests, as
Node compiles its hot code; the measured runs then all meet a warm server). The big-object
scenarios keep an Azurite on disk, so 256 MiB objects never sit in memory. Node's
``--max-semi-space-size=64`` (fewer scavenges; GC was about 7% of the profile) was measured
and not taken: paired runs disagreed on its sign. ``--inMemoryPersistence`` was
measured too and not taken: it saves about as much at first, but its cost per PUT grew
round after round (LokiJS's ``Resultset.find`` took 18% of its profile, 7.6% on disk; the
in-memory extent records seem to pile up until the 10-minute extent GC). ``--silent``,
``--loose``, ``--skipApiVersionCheck`` and ``--disableTelemetry`` are on, and no debug log.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
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
    wanted = [x for x in SCENARIOS if x in args.only.split(",")]
    n, big = (50, 16 * MiB) if args.quick else (500, 256 * MiB)
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    crashes: dict[str, int] = {}

    def worker(lib: str, scenario: str, env: dict[str, Any]) -> None:
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

    tmpfs = "/dev/shm" if os.path.isdir("/dev/shm") else None
    # (scenarios, where Azurite keeps its data): small ones on tmpfs, big ones on disk.
    groups = [
        ([x for x in wanted if x.endswith("small")], tmpfs),
        ([x for x in wanted if x.endswith("big")], None),
    ]
    for scenarios, where in [g for g in groups if g[0]]:
        base = Path(tempfile.mkdtemp(prefix="azurite-bench-", dir=where))
        proc, server = start(base, binary)
        env = {
            "url": f"az://{server.container}?account={ACCOUNT}&endpoint={server.endpoint}",
            "endpoint": server.endpoint,
            "account_url": f"{server.endpoint}/{ACCOUNT}",
            "account": ACCOUNT,
            "key": ACCOUNT_KEY,
            "container": server.container,
            "n": n,
            "size": big,
        }
        try:
            if where is not None:  # warm Azurite up: one untimed round of every library
                for scenario in scenarios:
                    for lib in LIBS:
                        worker(lib, scenario, env)
                results.clear()
                crashes.clear()
            for r in range(rounds):
                for scenario in scenarios:
                    order = LIBS[r % len(LIBS) :] + LIBS[: r % len(LIBS)]
                    for lib in order:
                        worker(lib, scenario, env)
        finally:
            stop(proc)
            if where is not None:
                shutil.rmtree(base, ignore_errors=True)
    print(
        f"Azurite 3.35 on loopback, {n} x 4 KiB at concurrency {CONCURRENCY} (data on "
        f"{tmpfs or 'disk'}, warmed up), {big // MiB} MiB (data on disk); {rounds} round(s)"
    )
    print("| library | scenario | rate | client CPU |")
    print("|---|---|---|---|")
    for scenario in wanted:
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
