"""Reads through fsspec: ``aiobucket://`` against s3fs and obstore's FsspecStore, on one SeaweedFS.

    .venv-eco/bin/python benchmarks/fsspec_read.py [--quick] [--rounds N] [--parquet-mib M] [--small N]

Runs from ``.venv-eco`` (pyarrow, s3fs and obstore are there). Starts SeaweedFS on
loopback (the test fixture's code), writes one parquet file of about
``--parquet-mib`` MiB (random float64 columns, 64 MiB row groups) and ``--small``
files of 4 KiB, then measures, round after round with the libraries interleaved,
each in a fresh subprocess:

* ``parquet``: ``pyarrow.parquet.read_table(path, filesystem=fs)``, every column;
* ``small``: ``fs.cat([...])`` of every small file (fsspec's batched gather).

Client CPU is ``time.process_time()`` of the measuring process (all its threads:
fsspec's IO thread, obstore's runtime). Each worker first makes one ``info()`` call,
timed apart as "first call" (imports, session, credentials), so throughput and CPU
are the steady state's. Prints a table and writes it to
``benchmarks/results/fsspec.md`` (``--output``). Each library is used as its docs
show it, with the checksum options S3-compatible servers need for s3fs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LIBS = ["aiobucket", "s3fs", "obstore"]
SCENARIOS = ["parquet", "small"]
PARQUET_KEY = "fsspec-bench/big.parquet"
SMALL_PREFIX = "fsspec-bench/small/"
MiB = 1024 * 1024


def filesystem(lib: str, server: dict[str, str]) -> tuple[Any, str]:
    """The library's fsspec filesystem and the path prefix of the server's bucket in it."""
    if lib == "aiobucket":
        import fsspec

        return fsspec.filesystem("aiobucket"), "bench"  # AIOBUCKET_CONFIG names it
    if lib == "s3fs":
        import s3fs

        fs = s3fs.S3FileSystem(
            key=server["access_key"],
            secret=server["secret_key"],
            endpoint_url=server["endpoint"],
            client_kwargs={"region_name": server["region"]},
            config_kwargs={
                "request_checksum_calculation": "when_required",
                "response_checksum_validation": "when_required",
            },
        )
        return fs, server["bucket"]
    if lib == "obstore":
        from obstore.fsspec import FsspecStore

        fs = FsspecStore(
            "s3",
            endpoint=server["endpoint"],
            region=server["region"],
            access_key_id=server["access_key"],
            secret_access_key=server["secret_key"],
            virtual_hosted_style_request=False,
            client_options={"allow_http": True},
        )
        return fs, server["bucket"]
    raise SystemExit(f"unknown library {lib!r}")


def worker(spec: dict[str, Any]) -> dict[str, float]:
    """One measurement, in this (fresh) process."""
    fs, bucket = filesystem(spec["lib"], spec["server"])
    # The first call pays for imports, sessions and credentials; timed apart, so the
    # throughput is the steady state's.
    t0 = time.perf_counter()
    fs.info(f"{bucket}/{SMALL_PREFIX}00000")
    first = time.perf_counter() - t0
    if spec["scenario"] == "parquet":
        import pyarrow.parquet as pq

        path = f"{bucket}/{PARQUET_KEY}"
        cpu, t0 = time.process_time(), time.perf_counter()
        table = pq.read_table(path, filesystem=fs)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu
        assert table.num_rows == spec["rows"], (table.num_rows, spec["rows"])
        return {"seconds": seconds, "cpu": cpu, "units": spec["parquet_bytes"] / MiB, "first": first}
    paths = [f"{bucket}/{SMALL_PREFIX}{i:05d}" for i in range(spec["small"])]
    cpu, t0 = time.process_time(), time.perf_counter()
    got = fs.cat(paths)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu
    assert len(got) == len(paths) and all(len(v) == 4096 for v in got.values())
    return {"seconds": seconds, "cpu": cpu, "units": float(len(paths)), "first": first}


def seed(config: Path, parquet_mib: int, small: int) -> dict[str, int]:
    """Write the parquet file and the small files through aiobucket (any writer would do)."""
    import asyncio

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    import aiobucket

    os.environ["AIOBUCKET_CONFIG"] = str(config)
    rows = parquet_mib * MiB // (4 * 8)
    rng = np.random.default_rng(0)
    table = pa.table({f"c{i}": rng.random(rows) for i in range(4)})
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "big.parquet"
        pq.write_table(table, local, row_group_size=max(rows // max(parquet_mib // 64, 1), 1))
        size = local.stat().st_size

        async def upload() -> None:
            bucket = aiobucket.Bucket("bench")
            async with bucket.upload(PARQUET_KEY) as w:
                with open(local, "rb") as fh:  # noqa: ASYNC230 - a one-off seed
                    while chunk := fh.read(8 * MiB):
                        await w.write(chunk)
            body = os.urandom(4096)

            async def put(i: int) -> None:
                async with bucket.upload(f"{SMALL_PREFIX}{i:05d}") as w:
                    await w.write(body)

            for start in range(0, small, 64):
                await asyncio.gather(*(put(i) for i in range(start, min(start + 64, small))))
            await aiobucket.aclose()

        asyncio.run(upload())
    return {"rows": rows, "parquet_bytes": size}


def measure(spec: dict[str, Any], env: dict[str, str]) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{spec['lib']} {spec['scenario']} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def report(results: dict[tuple[str, str], list[dict[str, float]]], meta: dict[str, Any]) -> str:
    lines = [
        "# fsspec reads: aiobucket:// vs s3fs vs obstore's FsspecStore",
        "",
        f"SeaweedFS 4.48 on loopback, client and server on one host. {meta['when']}; "
        f"{meta['rounds']} interleaved round(s), medians; "
        f"parquet file {meta['parquet_bytes'] / MiB:.0f} MiB, "
        f"{meta['small']} small files of 4 KiB. Measured on a loaded, shared 2-core machine: noisy.",
        "",
        "| scenario | library | throughput | client CPU | aiobucket vs this | first call |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for scenario, unit in (("parquet", "MiB/s"), ("small", "files/s")):
        if (scenario, LIBS[0]) not in results:
            continue
        rates = {
            lib: statistics.median(r["units"] / r["seconds"] for r in results[(scenario, lib)])
            for lib in LIBS
        }
        for lib in LIBS:
            runs = results[(scenario, lib)]
            cpu = statistics.median(r["cpu"] for r in runs)
            per = f"{cpu:.2f} s" if scenario == "parquet" else f"{cpu / runs[0]['units'] * 1e6:.0f} µs/file"
            vs = "" if lib == "aiobucket" else f"{rates['aiobucket'] / rates[lib]:.2f}\u00d7"
            name = (
                f"read_table, {meta['parquet_bytes'] / MiB:.0f} MiB parquet"
                if scenario == "parquet"
                else f"cat() of {meta['small']} files of 4 KiB"
            )
            first = statistics.median(r["first"] for r in runs) * 1000
            lines.append(f"| {name} | {lib} | {rates[lib]:,.0f} {unit} | {per} | {vs} | {first:.0f} ms |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one round: checks it runs")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parquet-mib", type=int, default=256)
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "fsspec.md")
    parser.add_argument("--only", choices=SCENARIOS, help="one scenario")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))), flush=True)
        # Skip interpreter teardown: pyarrow's thread pool and fsspec's daemon IO thread
        # sometimes abort it ("terminate called without an active exception", seen with
        # s3fs), which is no part of the measurement.
        os._exit(0)
    if args.quick:
        args.rounds, args.parquet_mib, args.small = 1, 4, 50

    sys.path[:0] = [str(ROOT / "tests")]
    from servers._proc import stop
    from servers.seaweedfs_server import start

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "seaweedfs").mkdir()
        proc, s3 = start(Path(tmp) / "seaweedfs")
        try:
            server = {
                "endpoint": s3.endpoint,
                "region": s3.region,
                "access_key": s3.access_key,
                "secret_key": s3.secret_key,
                "bucket": s3.bucket,
            }
            config = Path(tmp) / "aiobucket.toml"
            config.write_text(
                "[buckets.bench]\n"
                f'url = "s3://{s3.bucket}?endpoint={s3.endpoint}&region={s3.region}"\n'
                f'access_key_id = "{s3.access_key}"\nsecret_access_key = "{s3.secret_key}"\n'
            )
            seeded = seed(config, args.parquet_mib, args.small)
            env = {**os.environ, "AIOBUCKET_CONFIG": str(config)}
            results: dict[tuple[str, str], list[dict[str, float]]] = {}
            for _ in range(args.rounds):
                for scenario in [args.only] if args.only else SCENARIOS:
                    for lib in LIBS:
                        spec = {
                            "scenario": scenario,
                            "lib": lib,
                            "server": server,
                            "small": args.small,
                            **seeded,
                        }
                        result = measure(spec, env)
                        results.setdefault((scenario, lib), []).append(result)
                        rate = result["units"] / result["seconds"]
                        print(f"{scenario} {lib}: {rate:,.0f}/s, cpu {result['cpu']:.2f} s", file=sys.stderr)
        finally:
            stop(proc)
    when = time.strftime("%H:%M UTC on %Y-%m-%d", time.gmtime())
    meta = {"when": when, "rounds": args.rounds, "small": args.small, **seeded}
    text = report(results, meta)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
