"""Scenario 9: delete 20,000 keys.

aiobucket's ``remove_many`` (batches of the backend's ``delete_batch``, several in
flight) against a plain loop of ``await bucket.remove(key)`` and against obstore's
``delete_async(store, [keys])`` (which sends S3 DeleteObjects). Each measurement
first stores its own 20,000 one-byte keys (untimed, raw aiobotocore at concurrency
64) and afterwards checks that none is left.
"""

from __future__ import annotations

import time
from typing import Any

from .._common import Env, bounded

LIBS = ["aiobucket", "aiobucket remove() loop", "obstore"]


def _client(env: Env) -> Any:
    from aiobotocore.config import AioConfig
    from aiobotocore.session import AioSession

    config = AioConfig(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        max_pool_connections=64,
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return AioSession().create_client(
        "s3",
        endpoint_url=env.endpoint,
        region_name=env.region,
        aws_access_key_id=env.access_key,
        aws_secret_access_key=env.secret_key,
        config=config,
    )


async def _seed(env: Env, keys: list[str]) -> None:
    async with _client(env) as c:
        await bounded(len(keys), 64, lambda i: c.put_object(Bucket=env.bucket, Key=keys[i], Body=b"x"))


async def _left(env: Env, prefix: str) -> int:
    async with _client(env) as c:
        n = 0
        async for page in c.get_paginator("list_objects_v2").paginate(Bucket=env.bucket, Prefix=prefix):
            n += len(page.get("Contents", []))
        return n


async def _aiobucket(env: Env, keys: list[str], loop: bool) -> float:
    import aiobucket
    from aiobucket import Bucket

    aiobucket.configure(
        {
            "bench": {
                "url": f"s3://{env.bucket}?endpoint={env.endpoint}&region={env.region}&provider=seaweedfs",
                "access_key_id": env.access_key,
                "secret_access_key": env.secret_key,
            }
        }
    )
    b = Bucket("bench")
    await b.attrs(keys[0])  # warm up the client outside the clock, as every scenario does
    try:
        t0 = time.perf_counter()
        if loop:
            for key in keys:
                await b.remove(key)
        else:
            async for err, key in b.remove_many(keys):
                if err is not None:
                    raise RuntimeError(f"{key}: {err}")
        elapsed = time.perf_counter() - t0
    finally:
        await aiobucket.aclose()
    return elapsed


async def _obstore(env: Env, keys: list[str]) -> float:
    import obstore as obs
    from obstore.store import S3Store

    store = S3Store(
        env.bucket,
        endpoint=env.endpoint,
        region=env.region,
        access_key_id=env.access_key,
        secret_access_key=env.secret_key,
        virtual_hosted_style_request=False,
        client_options={"allow_http": True},
    )
    await obs.head_async(store, keys[0])  # warm-up
    t0 = time.perf_counter()
    await obs.delete_async(store, keys)
    return time.perf_counter() - t0


async def run(env: Env) -> dict[str, Any]:
    from .._common import peak_mib, reset_peak, rss_mib

    prefix = f"del/{env.lib.split()[0]}-{len(env.lib)}/"
    keys = [f"{prefix}{i:05d}" for i in range(env.list_count)]
    await _seed(env, keys)
    reset_peak()
    base = rss_mib()
    if env.lib == "obstore":
        elapsed = await _obstore(env, keys)
    else:
        elapsed = await _aiobucket(env, keys, loop=env.lib != "aiobucket")
    peak = peak_mib()
    left = await _left(env, prefix)
    if left:
        raise RuntimeError(f"{left} keys were not deleted")
    n = len(keys)
    return {
        "value": n / elapsed,
        "unit": "keys/s",
        "elapsed": elapsed,
        "peak_mib": peak,
        "delta_mib": peak - base,
    }
