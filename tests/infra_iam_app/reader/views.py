"""A read-only service: it downloads and checks for existence, nothing else."""

from __future__ import annotations

from store.buckets import Files


async def fetch(key: str) -> bytes | None:
    if not await Files.exists(key):
        return None
    return await Files.download(key).read()
