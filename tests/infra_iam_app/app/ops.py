"""Every operation of the Bucket API that needs an S3 permission, on one bucket."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from store.buckets import Files

from aiobucket import ObjectAttrs, Preconditions, Query


async def upload(key: str, data: bytes, *, part_size: int | None = None, fresh: bool = False) -> ObjectAttrs:
    pre = Preconditions(not_exists=True) if fresh else None
    async with Files.upload(key, part_size=part_size, preconditions=pre) as w:
        await w.write(data)
    return await w.close()


async def download(key: str) -> bytes:
    return await Files.download(key).read()


async def download_to(key: str, path: Path) -> None:
    await Files.download_to(key, path)


async def exists(key: str) -> bool:
    return await Files.exists(key)


async def attrs(key: str) -> ObjectAttrs:
    return await Files.attrs(key)


async def names(prefix: str = "") -> list[str]:
    return [entry.name async for _, entry in Files.list(Query(prefix))]


async def copy(src: str, dst: str) -> ObjectAttrs:
    return await Files.copy(src, dst)


async def remove(key: str) -> None:
    await Files.remove(key)


async def remove_many(keys: list[str]) -> list[tuple[object, str]]:
    return [item async for item in Files.remove_many(keys)]


async def signed_download(key: str) -> str:
    return await Files.signed_download_url(key, ttl=timedelta(minutes=5))
