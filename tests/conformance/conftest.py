"""Helpers for the conformance suite. Every test here takes the ``backend`` fixture,
so it runs once per backend (see tests/conftest.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

import aiobucket
from aiobucket.writer import TASK_NAME


@pytest.fixture(autouse=True)
async def _close_clients(anyio_backend: str) -> AsyncIterator[None]:
    yield
    await aiobucket.aclose()


def part_size_for(caps: aiobucket.Capabilities) -> int:
    """The smallest part size the backend accepts (at least 256 KiB), so multipart tests stay small."""
    size = max(caps.min_part_size, 256 * 1024)
    return -(-size // caps.part_size_multiple) * caps.part_size_multiple


def payload(n: int, seed: int = 0) -> bytes:
    """Deterministic, non-repeating-ish bytes so spliced or reordered parts are caught."""
    block = bytes((i * 31 + seed * 7 + (i >> 8)) & 0xFF for i in range(4096))
    return (block * (n // len(block) + 1))[:n]


async def put(bucket: aiobucket.Bucket, key: str, data: bytes, **kw: object) -> aiobucket.ObjectAttrs:
    async with bucket.upload(key, **kw) as w:  # type: ignore[arg-type]
        await w.write(data)
    return await w.close()


async def get(bucket: aiobucket.Bucket, key: str, **kw: object) -> bytes:
    return await bucket.download(key, **kw).read()  # type: ignore[arg-type]


async def names(bucket: aiobucket.Bucket, query: aiobucket.Query | None = None) -> list[str]:
    out = []
    async for err, entry in bucket.list(query):
        assert err is None, err
        assert entry is not None
        out.append(entry.name)
    return out


def leaked_tasks() -> list[asyncio.Task[object]]:
    """Tasks aiobucket started that are still running."""
    return [
        t for t in asyncio.all_tasks() if t.get_name() in (TASK_NAME, "aiobucket-shielded") and not t.done()
    ]


def honours(caps: aiobucket.Capabilities, *, multipart: bool = False, copy: bool = False) -> bool:
    """Whether the backend declares it honours not_exists / if_match on this write path."""
    return (
        caps.conditional_copy if copy else caps.conditional_multipart if multipart else caps.conditional_put
    )


async def refused_before_io(bucket: aiobucket.Bucket, key: str, write: object) -> None:
    """A backend declaring it does not honour the write's preconditions raises NotSupported
    (before any I/O) and leaves what is stored at ``key`` as it was."""
    try:
        before: bytes | None = await get(bucket, key)
    except aiobucket.ObjectNotFound:
        before = None
    with pytest.raises(aiobucket.NotSupported):
        await write()  # type: ignore[operator]
    try:
        after: bytes | None = await get(bucket, key)
    except aiobucket.ObjectNotFound:
        after = None
    assert after == before
