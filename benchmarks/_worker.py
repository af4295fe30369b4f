"""One measurement in a fresh interpreter: ``python -m benchmarks._worker '<json Env>'``.

Prints one JSON line: the throughput, its unit, the elapsed time, the process's
peak RSS during the measured operation and that peak's rise over the RSS just
before it. Clients are created and warmed up (one small GET) before the clock
and the peak-RSS reset start, so each number is steady-state work only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ._common import BIG_KEY, Env, MiB, bounded, chunks, list_prefix, peak_mib, reset_peak, rss_mib, small_key

S3_DRIVERS = {
    "aiobucket": "aiobucket_s3",
    "aiobucket-baseline": "aiobucket_s3",  # another checkout's sources (run.py --baseline)
    "aiobotocore": "aiobotocore_raw",
    "aioboto3": "aioboto3_lib",
    "obstore": "obstore_lib",
    "s3fs": "s3fs_lib",
}


_CPU: list[float] = []  # client CPU seconds of the last timed operation (all threads)


async def _timed(work: Callable[[], Awaitable[Any]]) -> tuple[float, Any, float, float]:
    reset_peak()
    base = rss_mib()
    c0, t0 = time.process_time(), time.perf_counter()
    out = await work()
    elapsed = time.perf_counter() - t0
    _CPU[:] = [time.process_time() - c0]
    return elapsed, out, peak_mib(), base


def _check(what: str, got: object, want: object) -> None:
    if got != want:
        raise RuntimeError(f"{what}: got {got!r}, expected {want!r}")


async def s3(env: Env) -> dict[str, Any]:
    if env.lib == "curl":
        return await curl(env)
    d = importlib.import_module(f"benchmarks.scenarios.{S3_DRIVERS[env.lib]}")
    ctx = await d.open(env)
    try:
        _check("warm-up", await d.get_small(ctx, small_key(0)), env.small_size)
        data = os.urandom(env.small_size)
        if env.scenario == "upload":
            size = env.big_size
            key = f"up/{env.lib}"
            elapsed, _, peak, base = await _timed(lambda: d.upload(ctx, key, chunks(size), size))
            value, unit = size / MiB / elapsed, "MiB/s"
        elif env.scenario == "download":
            elapsed, got, peak, base = await _timed(lambda: d.download(ctx, BIG_KEY))
            _check("bytes downloaded", got, env.big_size)
            value, unit = env.big_size / MiB / elapsed, "MiB/s"
        elif env.scenario == "put_small":
            n = env.small_count
            op = lambda i: d.put_small(ctx, f"put/{env.lib}/{i:05d}", data)  # noqa: E731
            elapsed, _, peak, base = await _timed(lambda: bounded(n, env.concurrency, op))
            value, unit = n / elapsed, "ops/s"
        elif env.scenario == "get_small":
            n = env.small_count
            sizes: list[int] = []

            async def get(i: int) -> None:
                sizes.append(await d.get_small(ctx, small_key(i)))

            elapsed, _, peak, base = await _timed(lambda: bounded(n, env.concurrency, get))
            _check("bytes per GET", set(sizes), {env.small_size})
            value, unit = n / elapsed, "ops/s"
        elif env.scenario == "list":
            elapsed, got, peak, base = await _timed(lambda: d.list_keys(ctx, list_prefix()))
            _check("keys listed", got, env.list_count)
            value, unit = env.list_count / elapsed, "keys/s"
        else:
            raise ValueError(env.scenario)
    finally:
        await d.close(ctx)
    # Client CPU per unit of work: per op, per key, or per GiB streamed.
    units = {
        "upload": env.big_size / 2**30,
        "download": env.big_size / 2**30,
        "put_small": env.small_count,
        "get_small": env.small_count,
        "list": env.list_count,
    }
    return {
        "value": value,
        "unit": unit,
        "elapsed": elapsed,
        "peak_mib": peak,
        "delta_mib": peak - base,
        "cpu_s": _CPU[0],
        "cpu_per": _CPU[0] / units[env.scenario],
    }


async def curl(env: Env) -> dict[str, Any]:
    from .scenarios import curl_cli

    if env.scenario == "upload":
        url = await curl_cli.presign(env, "PUT", "up/curl")
        elapsed, peak = curl_cli.upload(url, env.extra["source_file"])
    else:
        url = await curl_cli.presign(env, "GET", BIG_KEY)
        elapsed, peak = curl_cli.download(url)
    return {"value": env.big_size / MiB / elapsed, "unit": "MiB/s", "elapsed": elapsed, "peak_mib": peak}


async def local(env: Env) -> dict[str, Any]:
    from .scenarios import local as lo

    work = Path(env.workdir)
    size = env.big_size
    if env.lib == "cp":
        if env.scenario == "local_write":
            dst = work / "cp-out"
            try:
                elapsed, peak = lo.cp_write(Path(env.extra["source_file"]), dst)
            finally:
                dst.unlink(missing_ok=True)
        else:
            elapsed, peak = lo.cp_read(work / "plain-file")
        return {"value": size / MiB / elapsed, "unit": "MiB/s", "elapsed": elapsed, "peak_mib": peak}
    if env.scenario == "local_write":
        if env.lib == "aiobucket":
            key = "write/object"
            elapsed, _, peak, base = await _timed(lambda: lo.aiobucket_write(work / "bucket", key, size))
            await lo.configure(work / "bucket").remove(key)
        else:
            path = work / "aiofiles-out"
            try:
                elapsed, _, peak, base = await _timed(lambda: lo.aiofiles_write(path, size))
            finally:
                path.unlink(missing_ok=True)
    else:
        if env.lib == "aiobucket":
            elapsed, got, peak, base = await _timed(lambda: lo.aiobucket_read(work / "bucket", lo.READ_KEY))
        else:
            elapsed, got, peak, base = await _timed(lambda: lo.aiofiles_read(work / "plain-file"))
        _check("bytes read", got, size)
    await __import__("aiobucket").aclose()
    return {
        "value": size / MiB / elapsed,
        "unit": "MiB/s",
        "elapsed": elapsed,
        "peak_mib": peak,
        "delta_mib": peak - base,
    }


async def memory(env: Env) -> dict[str, Any]:
    from .scenarios import memory as me

    data = os.urandom(env.small_size)
    n = env.memory_ops
    if env.lib == "aiobucket":
        target: Any = me.aiobucket_bucket()
        put, get = me.aiobucket_put, me.aiobucket_get
    else:
        target = me.obstore_store()
        put, get = me.obstore_put, me.obstore_get

    async def puts() -> None:
        for i in range(n):
            await put(target, f"k/{i:06d}", data)

    async def gets() -> int:
        total = 0
        for i in range(n):
            total += await get(target, f"k/{i:06d}")
        return total

    if env.scenario == "memory_put":
        elapsed, _, peak, base = await _timed(puts)
    else:
        await puts()
        elapsed, got, peak, base = await _timed(gets)
        _check("bytes read", got, n * env.small_size)
    return {
        "value": n / elapsed,
        "unit": "ops/s",
        "elapsed": elapsed,
        "peak_mib": peak,
        "delta_mib": peak - base,
    }


GCS_SCENARIOS = ("gcs_upload", "gcs_download", "gcs_put_small", "gcs_get_small")


async def gcs(env: Env) -> dict[str, Any]:
    """Scenario 11: the S3 shapes (1-4) on fake-gcs-server, 256 MiB for the big object."""
    from .scenarios import gcs as g

    d = g.DRIVERS[env.lib]
    ctx = await d.open(env)
    big = g.big_size(env)
    try:
        _check("warm-up", await d.get_small(ctx, small_key(0)), env.small_size)
        data = os.urandom(env.small_size)
        if env.scenario == "gcs_upload":
            key = f"up/{env.lib}"
            elapsed, _, peak, base = await _timed(lambda: d.upload(ctx, key, chunks(big), big))
            value, unit, per = big / MiB / elapsed, "MiB/s", big / 2**30
        elif env.scenario == "gcs_download":
            elapsed, got, peak, base = await _timed(lambda: d.download(ctx, BIG_KEY))
            _check("bytes downloaded", got, big)
            value, unit, per = big / MiB / elapsed, "MiB/s", big / 2**30
        elif env.scenario == "gcs_put_small":
            n = env.small_count
            op = lambda i: d.put_small(ctx, f"put/{env.lib}/{i:05d}", data)  # noqa: E731
            elapsed, _, peak, base = await _timed(lambda: bounded(n, env.concurrency, op))
            value, unit, per = n / elapsed, "ops/s", n
        else:
            n = env.small_count
            sizes: list[int] = []

            async def get(i: int) -> None:
                sizes.append(await d.get_small(ctx, small_key(i)))

            elapsed, _, peak, base = await _timed(lambda: bounded(n, env.concurrency, get))
            _check("bytes per GET", set(sizes), {env.small_size})
            value, unit, per = n / elapsed, "ops/s", n
    finally:
        await d.close(ctx)
    return {
        "value": value,
        "unit": unit,
        "elapsed": elapsed,
        "peak_mib": peak,
        "delta_mib": peak - base,
        "cpu_s": _CPU[0],
        "cpu_per": _CPU[0] / per,
    }


WEB_SCENARIOS = {
    "delete_many": "bulk_delete",
    "download_parallel": "parallel_download",
    "download_to": "parallel_download",
}


async def web(env: Env) -> dict[str, Any]:
    """Scenarios 9 and 10 (bulk delete, parallel downloads): each module runs its own."""
    module = importlib.import_module(f"benchmarks.scenarios.{WEB_SCENARIOS[env.scenario]}")
    result: dict[str, Any] = await module.run(env)
    return result


def main() -> None:
    raw = json.loads(sys.argv[1])
    env = Env(**{f.name: raw[f.name] for f in dataclasses.fields(Env) if f.name in raw})
    if env.scenario in ("upload", "download", "put_small", "get_small", "list"):
        result = asyncio.run(s3(env))
    elif env.scenario in ("local_write", "local_read"):
        result = asyncio.run(local(env))
    elif env.scenario in ("memory_put", "memory_get"):
        result = asyncio.run(memory(env))
    elif env.scenario in WEB_SCENARIOS:
        result = asyncio.run(web(env))
    elif env.scenario in GCS_SCENARIOS:
        result = asyncio.run(gcs(env))
    else:
        raise SystemExit(f"unknown scenario {env.scenario!r}")
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
