"""Scenario 8: in-memory backends, small put/get operations per second (one task, sequential)."""

from __future__ import annotations

from typing import Any

import aiobucket
from aiobucket import Bucket


def aiobucket_bucket() -> Bucket:
    aiobucket.configure({"bench-mem": "memory://"})
    return Bucket("bench-mem")


async def aiobucket_put(b: Bucket, key: str, data: bytes) -> None:
    async with b.upload(key) as w:
        await w.write(data)


async def aiobucket_get(b: Bucket, key: str) -> int:
    return len(await b.download(key).read())


def obstore_store() -> Any:
    from obstore.store import MemoryStore

    return MemoryStore()


async def obstore_put(store: Any, key: str, data: bytes) -> None:
    import obstore as obs

    await obs.put_async(store, key, data)


async def obstore_get(store: Any, key: str) -> int:
    import obstore as obs

    return len(await (await obs.get_async(store, key)).bytes_async())
