"""Cancellation at every await point that matters: nothing partial is ever stored.

The rule: a cancellation that lands before the commit aborts the upload (no
object, the old one untouched); one that lands while the commit is on the wire
lets the commit finish and re-raises afterwards (the new object is stored
whole). Either way no partial object, no leftover task, no leftover temp file.
"""

from __future__ import annotations

import asyncio
import random

import pytest

import aiobucket
from conformance.conftest import get, leaked_tasks, part_size_for, payload, put

pytestmark = pytest.mark.anyio

OLD = b"old object that must survive"


async def _leftovers(backend, bucket: aiobucket.Bucket) -> list[str]:
    """Temp files a local bucket left behind."""
    if backend.name != "local":
        return []
    tmp = backend.local_root(bucket) / "tmp"
    return [p.name for p in tmp.iterdir()] if tmp.exists() else []


async def _assert_clean(backend, b: aiobucket.Bucket, key: str, new: bytes, committed: bool) -> None:
    stored = await get(b, key)
    if committed:
        assert stored == new, "a committed upload must be stored whole"
    else:
        assert stored == OLD, "an aborted upload must leave the old object untouched"
    assert leaked_tasks() == []
    assert await _leftovers(backend, b) == []


async def _writer_task(b, key, data, ps, closing: asyncio.Event, committed: list[bool]) -> None:
    async with b.upload(key, part_size=ps, concurrency=2) as w:
        for i in range(0, len(data), ps // 2):
            await w.write(data[i : i + ps // 2])
            await asyncio.sleep(0)  # "between awaits" in user code
        closing.set()
        await w.close()
        committed.append(True)


@pytest.mark.parametrize("seed", range(6))
async def test_cancel_at_random_points(backend, seed):
    b = backend.bucket()
    key = "cancel/obj"
    await put(b, key, OLD)
    ps = part_size_for(backend.supports(b))
    data = payload(ps * 3 + 99, seed=seed)
    rng = random.Random(seed)
    outcomes = set()
    for trial in range(8):
        committed: list[bool] = []
        closing = asyncio.Event()
        task = asyncio.create_task(_writer_task(b, key, data, ps, closing, committed))
        for _ in range(rng.randrange(0, 12 + trial * 4)):
            await asyncio.sleep(0)
        if backend.name not in ("memory", "local") and trial:
            # Trial 0 cancels within a few loop turns, which no networked upload outlasts, so
            # a fast server cannot let every trial finish before its cancel.
            await asyncio.sleep(rng.random() * 0.05)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            outcomes.add("cancelled")
        else:
            outcomes.add("finished")
        stored = await get(b, key)
        if stored == data:
            # Either close() returned, or the cancel landed during the commit.
            await put(b, key, OLD)
            continue
        assert not committed
        await _assert_clean(backend, b, key, data, committed=False)
    assert "cancelled" in outcomes


async def test_cancel_during_write(backend):
    b = backend.bucket()
    await put(b, "k", OLD)
    ps = part_size_for(backend.supports(b))
    entered = asyncio.Event()

    async def chunks():
        yield payload(ps + 1)  # forces a part upload inside write()
        entered.set()
        await asyncio.sleep(3600)

    async def run() -> None:
        async with b.upload("k", part_size=ps) as w:
            async for c in chunks():
                await w.write(c)

    task = asyncio.create_task(run())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await _assert_clean(backend, b, "k", b"", committed=False)


async def test_cancel_while_write_is_awaiting_the_backend(backend):
    b = backend.bucket()
    await put(b, "k", OLD)
    ps = part_size_for(backend.supports(b))
    w = b.upload("k", part_size=ps)
    await w.write(payload(ps))
    # This write cuts a part and awaits the backend; cancel it on its first suspension.
    task = asyncio.create_task(w.write(payload(ps * 2)))
    await asyncio.sleep(0)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        assert w.closed
        with pytest.raises(aiobucket.UploadAborted):
            await w.close()
        await _assert_clean(backend, b, "k", b"", committed=False)
    else:  # the write finished before the cancel landed: the writer must still work
        await w.abort()
        assert await get(b, "k") == OLD


@pytest.mark.parametrize("size_parts", [0, 2])
async def test_cancel_right_as_close_starts_aborts(backend, size_parts):
    b = backend.bucket()
    await put(b, "k", OLD)
    ps = part_size_for(backend.supports(b))
    data = payload(ps * size_parts + 10)
    closing = asyncio.Event()
    committed: list[bool] = []
    task = asyncio.create_task(_writer_task(b, "k", data, ps, closing, committed))
    await closing.wait()
    task.cancel()  # lands on close()'s first await, before the commit
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not committed
    await _assert_clean(backend, b, "k", data, committed=False)


async def test_cancel_between_writes_aborts(backend):
    b = backend.bucket()
    await put(b, "k", OLD)
    ps = part_size_for(backend.supports(b))
    gate = asyncio.Event()

    async def run() -> None:
        async with b.upload("k", part_size=ps) as w:
            await w.write(payload(ps * 2 + 1))
            gate.set()
            await asyncio.sleep(3600)  # the user's own await, between writes

    task = asyncio.create_task(run())
    await gate.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await _assert_clean(backend, b, "k", b"", committed=False)


async def test_cancel_during_download_releases_the_reader(backend):
    b = backend.bucket()
    ps = part_size_for(backend.supports(b))
    await put(b, "k", payload(ps * 2), part_size=ps)
    reader = b.download("k")
    got_first = asyncio.Event()

    async def run() -> None:
        async for _ in reader:
            got_first.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(run())
    await got_first.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await reader.aclose()
    with pytest.raises(aiobucket.InvalidArgument, match="closed"):
        await reader.read()
    assert leaked_tasks() == []
