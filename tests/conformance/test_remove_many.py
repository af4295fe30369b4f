"""Bulk delete: ``remove_many`` yields one ``(error, key)`` pair per key, in input order."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Protocol

import pytest

import aiobucket
from aiobucket import tracing
from aiobucket.tracing import TraceEvent
from conformance.conftest import names, put

pytestmark = pytest.mark.anyio


def _tasks_left() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("aiobucket-") and not t.done()]


async def _store(bucket: aiobucket.Bucket, keys: list[str]) -> None:
    sem = asyncio.Semaphore(32)

    async def one(key: str) -> None:
        async with sem:
            await put(bucket, key, key.encode())

    await asyncio.gather(*(one(k) for k in keys))


@pytest.fixture
def spans() -> Iterator[list[TraceEvent]]:
    seen: list[TraceEvent] = []
    remove = tracing.add_listener(
        lambda e: seen.append(e) if e.operation == "remove_many" and e.phase == "end" else None
    )
    yield seen
    remove()


async def test_removes_reports_missing_and_invalid_keys_in_input_order(backend, spans):
    b = backend.bucket()
    batch = backend.supports(b).delete_batch
    stored = [f"del/{i:05d}" for i in range(2 * batch + 7)]  # more than two batches
    await _store(b, [*stored, "keep/a", "keep/b"])
    keys = [*stored[:3], "del/missing-1", "bad/../key", *stored[3:], "del/missing-2", stored[0]]
    results = [(err, key) async for err, key in b.remove_many(keys)]

    assert [key for _, key in results] == keys  # one pair per key, in input order
    # stored[0] comes twice, and the two deletes may run at once: one of them removed
    # it; the other found it gone, or (racing it, as S3 DeleteObjects may) also "removed" it.
    twice = [err for err, key in results if key == stored[0]]
    assert None in twice and all(e is None or isinstance(e, aiobucket.ObjectNotFound) for e in twice)
    verdicts = {key: err for err, key in results if key != stored[0]}
    assert {k: verdicts[k] for k in stored[1:] if verdicts[k] is not None} == {}
    for missing in ("del/missing-1", "del/missing-2"):
        err = verdicts[missing]
        assert isinstance(err, aiobucket.ObjectNotFound)
        assert err.key == missing and err.bucket == b.name
    assert isinstance(verdicts["bad/../key"], aiobucket.InvalidArgument)
    assert await names(b) == ["keep/a", "keep/b"]

    [end] = spans
    assert end.error is None
    assert end.attributes["keys"] == len(keys)
    # The duplicated key counts as removed once or (racing itself) twice, as above.
    assert end.attributes["removed"] == len(stored) - 1 + twice.count(None)
    assert end.attributes["missing"] == 2 + len(twice) - twice.count(None)
    assert end.attributes["failed"] == 1
    assert end.attributes["batch_size"] == batch


async def test_a_listing_feeds_it_directly(backend):
    b = backend.bucket()
    await _store(b, [f"tmp/{i}" for i in range(40)] + ["other"])

    async def listed() -> AsyncIterator[str]:
        async for err, entry in b.list(aiobucket.Query(prefix="tmp/")):
            assert err is None and entry is not None
            yield entry.name

    results = [pair async for pair in b.remove_many(listed(), concurrency=3)]
    assert len(results) == 40 and all(err is None for err, _ in results)
    assert await names(b) == ["other"]


async def test_generators_and_empty_inputs(backend):
    b = backend.bucket()
    await _store(b, ["g/1", "g/2"])
    assert [p async for p in b.remove_many(k for k in ["g/1", "g/2"])] == [(None, "g/1"), (None, "g/2")]
    assert [p async for p in b.remove_many([])] == []


async def test_stopping_early_leaves_no_task_behind(backend):
    b = backend.bucket()
    keys = [f"k/{i:03d}" for i in range(60)]
    await _store(b, keys)
    async with contextlib.aclosing(b.remove_many(keys, concurrency=4)) as results:
        async for err, _ in results:
            assert err is None
            break
    assert _tasks_left() == []
    # Whatever was in flight finished or was cancelled; what is left can still be removed.
    leftovers = await names(b)
    assert set(leftovers) <= set(keys) and len(leftovers) < len(keys)
    # A delete cancelled on the wire may still land after the listing: missing is fine.
    rest = [err async for err, _ in b.remove_many(leftovers)]
    assert all(err is None or isinstance(err, aiobucket.ObjectNotFound) for err in rest), rest
    assert await names(b) == []


async def test_cancelling_the_consumer_leaves_no_task_behind(backend):
    b = backend.bucket()
    keys = [f"c/{i:03d}" for i in range(60)]
    await _store(b, keys)
    first = asyncio.Event()

    async def consume() -> None:
        # aclosing: a cancelled ``async for`` does not close its generator; this does, at once.
        async with contextlib.aclosing(b.remove_many(keys, concurrency=4)) as results:
            async for _ in results:
                first.set()
                await asyncio.sleep(3600)  # stuck in user code: only the cancel gets it out

    task = asyncio.create_task(consume())
    await first.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _tasks_left() == []


async def test_refs_need_the_remover_permission(backend):
    b = backend.bucket()
    await _store(b, ["r/1"])

    class Cleaner(aiobucket.Lister, aiobucket.Remover, Protocol): ...

    assert [p async for p in b.ref(Cleaner).remove_many(["r/1"])] == [(None, "r/1")]
    with pytest.raises(aiobucket.PermissionDenied, match="remove_many"):
        b.ref(aiobucket.Downloader).remove_many(["r/1"])  # type: ignore[attr-defined]


async def test_bad_arguments_are_refused_before_any_io(backend):
    b = backend.bucket()
    with pytest.raises(aiobucket.InvalidArgument, match="not a single str"):
        b.remove_many("just/one/key")
    with pytest.raises(aiobucket.InvalidArgument, match="iterable"):
        b.remove_many(42)  # type: ignore[arg-type]
    with pytest.raises(aiobucket.InvalidArgument, match="concurrency"):
        b.remove_many(["a"], concurrency=0)
    # A key that is not even a str is its own (InvalidArgument, key) pair.
    [(err, key)] = [p async for p in b.remove_many([7])]  # type: ignore[list-item]
    assert isinstance(err, aiobucket.InvalidArgument) and key == 7
