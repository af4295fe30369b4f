"""Scenario 10: one 1 GiB object, downloaded in parallel ranges.

``download(key, concurrency=8)`` (8 MiB ranges, yielded in order into a discarding
sink) against aiobucket's single stream and curl's; ``download_to(path)`` (ranges
written in place into a file) against ``curl -o file``. All read the object the
harness seeded, from the same SeaweedFS server; files go to the work directory
and are removed after each measurement.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .._common import BIG_KEY, Env, MiB, peak_mib, reset_peak, rss_mib

STREAM_LIBS = ["aiobucket", "aiobucket 1 stream", "curl"]
FILE_LIBS = ["aiobucket", "curl"]
CONCURRENCY = 8
PART_SIZE = 8 * MiB


def _bucket(env: Env) -> Any:
    import aiobucket

    aiobucket.configure(
        {
            "bench": {
                "url": f"s3://{env.bucket}?endpoint={env.endpoint}&region={env.region}&provider=seaweedfs",
                "access_key_id": env.access_key,
                "secret_access_key": env.secret_key,
            }
        }
    )
    return aiobucket.Bucket("bench")


async def _stream(env: Env, parallel: bool) -> tuple[float, int, float]:
    import aiobucket

    b = _bucket(env)
    await b.attrs(BIG_KEY)  # warm up the client outside the clock
    try:
        reset_peak()
        base = rss_mib()
        t0 = time.perf_counter()
        n = 0
        if parallel:
            reader = b.download(BIG_KEY, concurrency=CONCURRENCY, part_size=PART_SIZE)
        else:
            reader = b.download(BIG_KEY)
        async with reader as r:
            async for chunk in r:
                n += len(chunk)
        return time.perf_counter() - t0, n, base
    finally:
        await aiobucket.aclose()


async def _to_file(env: Env, path: Path) -> tuple[float, float]:
    import aiobucket

    b = _bucket(env)
    await b.attrs(BIG_KEY)
    try:
        reset_peak()
        base = rss_mib()
        t0 = time.perf_counter()
        await b.download_to(BIG_KEY, path, concurrency=CONCURRENCY, part_size=PART_SIZE)
        return time.perf_counter() - t0, base
    finally:
        await aiobucket.aclose()


async def run(env: Env) -> dict[str, Any]:
    from . import curl_cli

    size = env.big_size
    if env.scenario == "download_parallel":
        if env.lib == "curl":
            elapsed, peak = curl_cli.download(await curl_cli.presign(env, "GET", BIG_KEY))
            return {"value": size / MiB / elapsed, "unit": "MiB/s", "elapsed": elapsed, "peak_mib": peak}
        elapsed, got, base = await _stream(env, parallel=env.lib == "aiobucket")
        if got != size:
            raise RuntimeError(f"downloaded {got} bytes, expected {size}")
    else:
        path = Path(env.workdir) / f"download-to-{env.lib}"
        try:
            if env.lib == "curl":
                url = await curl_cli.presign(env, "GET", BIG_KEY)
                elapsed, peak = curl_cli.run(["-o", str(path), url])
                if path.stat().st_size != size:
                    raise RuntimeError("curl wrote the wrong size")
                return {"value": size / MiB / elapsed, "unit": "MiB/s", "elapsed": elapsed, "peak_mib": peak}
            elapsed, base = await _to_file(env, path)
            if path.stat().st_size != size:
                raise RuntimeError("download_to wrote the wrong size")
        finally:
            path.unlink(missing_ok=True)
    peak = peak_mib()
    return {
        "value": size / MiB / elapsed,
        "unit": "MiB/s",
        "elapsed": elapsed,
        "peak_mib": peak,
        "delta_mib": peak - base,
    }
