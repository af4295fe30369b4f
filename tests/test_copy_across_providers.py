"""Copy between buckets on different backends: a streaming download into an upload,
with the writer's abort-on-cancel guarantees."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import aiobucket
from aiobucket import Bucket, UploadAttrs
from aiobucket.config import override

pytestmark = pytest.mark.anyio

SIZE = 20 * 1024 * 1024 + 17


@pytest.fixture
def buckets(tmp_path: Path):
    with override({"mem-src": "memory://?ns=copytest", "disk-dst": f"file://{tmp_path / 'disk'}"}):
        yield Bucket("mem-src"), Bucket("disk-dst"), tmp_path / "disk"


async def _fill(src: Bucket) -> bytes:
    data = bytes(i % 253 for i in range(SIZE))
    async with src.upload("big.bin", attrs=UploadAttrs(content_type="x/y", metadata={"k": "v"})) as w:
        await w.write(data)
    return data


async def test_copy_from_memory_to_local_streams_everything(buckets) -> None:
    src, dst, _ = buckets
    data = await _fill(src)
    attrs = await src.copy("big.bin", "copied.bin", dst_bucket=dst)
    assert attrs.name == "copied.bin" and attrs.size == SIZE
    assert await dst.download("copied.bin").read() == data
    got = await dst.attrs("copied.bin")
    assert got.content_type == "x/y" and dict(got.metadata) == {"k": "v"}
    await aiobucket.aclose()


async def test_cancelled_cross_provider_copy_leaves_nothing(buckets) -> None:
    src, dst, root = buckets
    await _fill(src)
    outcomes = set()
    for delay in range(0, 60, 6):
        task = asyncio.create_task(src.copy("big.bin", "copied.bin", dst_bucket=dst))
        for _ in range(delay):
            await asyncio.sleep(0)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            outcomes.add("cancelled")
            assert not await dst.exists("copied.bin")
            assert not (root / "tmp").exists() or list((root / "tmp").iterdir()) == []
        else:
            outcomes.add("done")
            await dst.remove("copied.bin")
    assert "cancelled" in outcomes
    await aiobucket.aclose()
