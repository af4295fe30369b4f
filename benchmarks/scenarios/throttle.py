"""Scenario 12: small PUTs against a server that throttles (503 SlowDown above N requests a second).

2,000 PUTs of 1 KiB at concurrency 64 through the AWS throttling persona
(``tests/personas/aws_throttle.py``: a FaultProxy in front of SeaweedFS that admits N
requests a second and answers S3's SlowDown above that). Compared in one run, each with a
fresh client and a fresh rate limit:

* aiobucket with its defaults for AWS (``adaptive_retry`` on: backoff 0.1 s base / 20 s cap,
  10 attempts, 30 s retry deadline, retry quota 500);
* botocore (through aiobotocore) in ``standard`` and in ``adaptive`` retry mode, once with
  their default 3 attempts (what a boto3 user gets) and once with 10.

Reported per client: completion time against the ideal ``count / N``, the SlowDown answers
it drew, and the operations that failed. Target (issue 18): no failure, at most 1.2x ideal.
A run that is not done after ``--limit`` times the ideal is stopped and its unfinished
operations counted as failed.

    .venv/bin/python -m benchmarks.scenarios.throttle              # N=100, 2,000 PUTs
    .venv/bin/python -m benchmarks.scenarios.throttle --count 500 --rate 50 --only aiobucket
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "tests")]

CLIENTS: dict[str, tuple[str, int] | None] = {
    "aiobucket": None,
    "botocore standard (3 attempts)": ("standard", 3),
    "botocore adaptive (3 attempts)": ("adaptive", 3),
    "botocore standard (10 attempts)": ("standard", 10),
    "botocore adaptive (10 attempts)": ("adaptive", 10),
}
"""Client name -> botocore (retry mode, max attempts); None for aiobucket."""
BODY = b"x" * 1024


async def _drive(
    count: int, concurrency: int, put: Callable[[int], Awaitable[object]], stop_after: float
) -> int:
    """Run ``put(i)`` for every i, ``concurrency`` at a time; returns how many failed."""
    failed = 0
    counter = iter(range(count))

    async def worker() -> None:
        nonlocal failed
        for i in counter:
            try:
                await put(i)
            except Exception:
                failed += 1

    tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
    _, pending = await asyncio.wait(tasks, timeout=stop_after)
    for t in pending:
        t.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return failed + sum(1 for _ in counter) + len(pending)  # unstarted and cut-off ones


async def _aiobucket(server: Any, endpoint: str, count: int, concurrency: int, stop_after: float) -> int:
    import aiobucket

    settings = {
        "url": f"s3://{server.bucket}?endpoint={endpoint}&region={server.region}",
        "access_key_id": server.access_key,
        "secret_access_key": server.secret_key,
        "adaptive_retry": True,  # the AWS default (a loopback endpoint would default to off)
    }
    with aiobucket.config.override({"bench-throttle": settings}):
        bucket = aiobucket.Bucket("bench-throttle")

        async def put(i: int) -> None:
            async with bucket.upload(f"throttle/a/{i:05d}") as w:
                await w.write(BODY)

        try:
            return await _drive(count, concurrency, put, stop_after)
        finally:
            await aiobucket.aclose()


async def _botocore(
    server: Any, endpoint: str, count: int, concurrency: int, stop_after: float, mode: str, attempts: int
) -> int:
    from aiobotocore.config import AioConfig
    from aiobotocore.session import AioSession

    config = AioConfig(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        max_pool_connections=concurrency,
        retries={"mode": mode, "max_attempts": attempts},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    async with AioSession().create_client(
        "s3",
        endpoint_url=endpoint,
        region_name=server.region,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        config=config,
    ) as client:
        prefix = f"throttle/{mode}{attempts}/"
        return await _drive(
            count,
            concurrency,
            lambda i: client.put_object(Bucket=server.bucket, Key=f"{prefix}{i:05d}", Body=BODY),
            stop_after,
        )


async def measure(
    server: Any, name: str, count: int, concurrency: int, rate: float, limit: float
) -> dict[str, Any]:
    from faultproxy import FaultProxy
    from personas.aws_throttle import throttle

    ideal = count / rate
    with FaultProxy(server.endpoint) as proxy:
        limiter = throttle(proxy, rate)
        t0 = time.perf_counter()
        botocore = CLIENTS[name]
        if botocore is None:
            failed = await _aiobucket(server, proxy.url, count, concurrency, ideal * limit)
        else:
            mode, attempts = botocore
            failed = await _botocore(server, proxy.url, count, concurrency, ideal * limit, mode, attempts)
        took = time.perf_counter() - t0
        refused = limiter.refused
    return {"client": name, "seconds": took, "ideal": ideal, "slowdowns": refused, "failed": failed}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--rate", type=float, default=100.0, help="requests a second the server admits (N)")
    ap.add_argument("--limit", type=float, default=4.0, help="stop a client after this many times the ideal")
    ap.add_argument(
        "--only", help="comma-separated client names (prefixes), e.g. aiobucket,botocore adaptive"
    )
    args = ap.parse_args()
    clients = list(CLIENTS)
    if args.only:
        wanted = [w.strip() for w in args.only.split(",")]
        clients = [c for c in CLIENTS if any(c.startswith(w) for w in wanted)]

    from servers._proc import stop
    from servers.seaweedfs_server import start

    rows = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="aiobucket-bench-throttle-") as tmp:
        proc, server = start(Path(tmp))
        try:
            for name in clients:
                r = asyncio.run(measure(server, name, args.count, args.concurrency, args.rate, args.limit))
                rows.append(r)
                print(
                    f"  {name:<32} {r['seconds']:6.1f} s = {r['seconds'] / r['ideal']:4.2f}x ideal, "
                    f"{r['slowdowns']:5d} SlowDown, {r['failed']:4d} failed",
                    flush=True,
                )
        finally:
            stop(proc)
    print()
    print(
        f"{args.count} PUTs of 1 KiB at concurrency {args.concurrency}, server admits {args.rate:g} req/s "
        f"(ideal {args.count / args.rate:.1f} s); load average {load_before:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after"
    )
    print()
    print("| client | time | x ideal | SlowDown answers | failed |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['client']} | {r['seconds']:.1f} s | {r['seconds'] / r['ideal']:.2f} | "
            f"{r['slowdowns']} | {r['failed']} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
