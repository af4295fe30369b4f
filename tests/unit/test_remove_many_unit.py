"""remove_many with a scripted batched provider: order, bounds, and batch-wide failures.

The real-server behaviour is in tests/conformance/test_remove_many.py; this drives
what real servers cannot be made to do on demand (a batch that fails whole, batches
finishing out of order, a provider that answers the wrong number of results).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

import aiobucket
from aiobucket import Bucket, BucketError, config
from aiobucket.errors import BackendError, ObjectNotFound, PermissionDenied
from aiobucket.providers.base import Capabilities

pytestmark = pytest.mark.anyio


class BatchProvider:
    """Deletes from a set, ``batch`` keys a call, after a per-call random number of loop turns."""

    def __init__(self, batch: int) -> None:
        self.capabilities = Capabilities(delete_batch=batch)
        self.keys: set[str] = set()
        self.calls: list[list[str]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.fail_batch: dict[int, Exception] = {}
        self.short_answer = False
        self.rng = random.Random(7)

    async def delete_many(self, keys: Sequence[str]) -> list[BucketError | None]:
        assert len(keys) <= self.capabilities.delete_batch
        number = len(self.calls)
        self.calls.append(list(keys))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            for _ in range(self.rng.randrange(20)):  # finish out of order
                await asyncio.sleep(0)
            if number in self.fail_batch:
                raise self.fail_batch[number]
            out: list[BucketError | None] = []
            for k in keys:
                if k in self.keys:
                    self.keys.discard(k)
                    out.append(None)
                else:
                    out.append(ObjectNotFound("object not found", key=k))
            return out[:-1] if self.short_answer else out
        finally:
            self.in_flight -= 1

    async def aclose(self) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"remove_many must not call {name}")


@pytest.fixture
def fake() -> Iterator[BatchProvider]:
    provider = BatchProvider(batch=10)
    aiobucket.register_provider("fakebatch", lambda settings, name, bc: provider)
    with config.override({"rb": "fakebatch://store"}):
        yield provider


async def test_input_order_survives_out_of_order_batches(fake: BatchProvider) -> None:
    fake.keys = {f"k{i}" for i in range(0, 200, 2)}  # the even ones exist
    keys = [f"k{i}" for i in range(200)]
    results = [p async for p in Bucket("rb").remove_many(keys, concurrency=5)]
    assert [k for _, k in results] == keys
    for err, key in results:
        assert (err is None) == (int(key[1:]) % 2 == 0)
        assert err is None or (isinstance(err, ObjectNotFound) and err.bucket == "rb")
    assert len(fake.calls) == 20 and all(len(c) == 10 for c in fake.calls)
    assert fake.max_in_flight <= 5


async def test_the_source_is_read_lazily(fake: BatchProvider) -> None:
    taken = 0

    def endless() -> Iterator[str]:
        nonlocal taken
        while True:
            taken += 1
            yield f"k{taken}"

    results = Bucket("rb").remove_many(endless(), concurrency=3)
    got = [await anext(results) for _ in range(25)]
    await results.aclose()
    assert len(got) == 25
    assert taken <= 10 * (3 + 3)  # a bounded window of batches, never the whole source


async def test_a_batch_that_fails_whole_fails_each_of_its_keys(fake: BatchProvider) -> None:
    fake.keys = {f"k{i}" for i in range(30)}
    fake.fail_batch[1] = PermissionDenied("denied by policy")
    fake.fail_batch[2] = RuntimeError("driver bug")
    results = [p async for p in Bucket("rb").remove_many([f"k{i}" for i in range(30)])]
    for err, key in results[:10]:
        assert err is None, key
    for err, key in results[10:20]:
        assert isinstance(err, PermissionDenied) and err.key == key and err.bucket == "rb"
        assert isinstance(err.__cause__, PermissionDenied)
    for err, key in results[20:]:
        assert isinstance(err, BackendError) and err.key == key and "driver bug" in str(err)


async def test_a_wrong_number_of_results_is_a_backend_error(fake: BatchProvider) -> None:
    fake.keys = {"a", "b"}
    fake.short_answer = True
    results = [p async for p in Bucket("rb").remove_many(["a", "b"])]
    assert all(isinstance(err, BackendError) for err, _ in results)


async def test_invalid_keys_are_never_sent(fake: BatchProvider) -> None:
    fake.keys = {"ok"}
    results = [p async for p in Bucket("rb").remove_many(["ok", "", "a/../b", "x" * 2000])]
    assert results[0] == (None, "ok")
    assert all(isinstance(err, aiobucket.InvalidArgument) for err, _ in results[1:])
    assert fake.calls == [["ok"]]


async def test_an_async_source_that_fails_ends_the_iterator_with_its_error(fake: BatchProvider) -> None:
    async def broken() -> Any:
        yield "a"
        raise OSError("source broke")

    with pytest.raises(OSError, match="source broke"):
        async for _ in Bucket("rb").remove_many(broken()):
            pass
    assert [t for t in asyncio.all_tasks() if t.get_name() == "aiobucket-remove" and not t.done()] == []
