"""aiobucket on S3, as its README shows it: configure a bucket, stream with upload()/download()."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiobucket
from aiobucket import Bucket, Query

from .._common import Env


async def open(env: Env) -> Any:
    aiobucket.configure(
        {
            "bench": {
                "url": f"s3://{env.bucket}?endpoint={env.endpoint}&region={env.region}&provider=seaweedfs",
                "access_key_id": env.access_key,
                "secret_access_key": env.secret_key,
            }
        }
    )
    return Bucket("bench")


async def close(ctx: Any) -> None:
    await aiobucket.aclose()


async def upload(b: Bucket, key: str, source: AsyncIterator[bytes], size: int) -> None:
    async with b.upload(key) as w:
        async for chunk in source:
            await w.write(chunk)


async def download(b: Bucket, key: str) -> int:
    n = 0
    async with b.download(key) as r:
        async for chunk in r:
            n += len(chunk)
    return n


async def put_small(b: Bucket, key: str, data: bytes) -> None:
    async with b.upload(key) as w:
        await w.write(data)


async def get_small(b: Bucket, key: str) -> int:
    return len(await b.download(key).read())


async def list_keys(b: Bucket, prefix: str) -> int:
    n = 0
    async for err, _entry in b.list(Query(prefix=prefix)):
        if err is not None:
            raise err
        n += 1
    return n
