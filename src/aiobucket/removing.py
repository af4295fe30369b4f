"""Bulk delete: an async iterator of ``(error, key)`` pairs, in the order the keys came in.

Invariants:

* Keys are read lazily, from any iterable or async iterable, so a listing can be fed
  straight in. They are cut into batches of ``capabilities.delete_batch`` keys (S3
  DeleteObjects: 1,000; elsewhere one key per call) and at most ``concurrency``
  batches are in flight or waiting to be yielded: memory stays bounded however many
  keys come in. A batch is sent when it is full or when the keys run out.
* Every key yields exactly one pair, in input order: ``(None, key)`` removed,
  ``(ObjectNotFound, key)`` missing, ``(InvalidArgument, key)`` not a valid key (never
  sent), any other BucketError in its key's slot (a batch that fails as a whole gives
  each of its keys the error). A per-key error never stops the iterator. Batches run
  concurrently, so for a key given twice, which pair says it was removed is not defined
  (the other says ObjectNotFound, or, when the two raced, also that it was removed).
* Stopping early (``break`` inside ``aclosing()``, ``aclose()``, a cancellation) cancels
  the batches in flight and waits for them, so no task outlives the iterator. Keys not
  yet yielded may or may not have been removed.
* One trace span, ``remove_many``, with the counts: keys, removed, missing, failed, batches.
"""

from __future__ import annotations

import asyncio
import copy
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import TYPE_CHECKING, cast

from . import _runtime
from ._aio import cancel_and_wait, run_to_completion
from .errors import BackendError, BucketError, InvalidArgument, ObjectNotFound
from .tracing import start_span

if TYPE_CHECKING:
    from ._runtime import Handle
    from .providers.base import Provider

__all__ = ["BATCHES_IN_FLIGHT", "DELETES_IN_FLIGHT", "RemoveItem", "check_keys", "remove_many"]

RemoveItem = tuple[BucketError | None, str]
"""``(None, key)`` when the key was removed, else ``(error, key)``."""

BATCHES_IN_FLIGHT = 4
"""Default concurrency on backends that delete in batches (S3: 1,000 keys a call)."""
DELETES_IN_FLIGHT = 16
"""Default concurrency on backends that delete one key a call."""

TASK_NAME = "aiobucket-remove"
_Entry = tuple[str, BucketError | None]  # (key as given, why it is not sent) in input order


def check_keys(keys: object, bucket: str) -> Iterable[str] | AsyncIterable[str]:
    """Refuse what cannot be a collection of keys before any I/O (a str is a common slip)."""
    if isinstance(keys, str | bytes):
        raise InvalidArgument(
            f"remove_many() takes an iterable of keys, not a single {type(keys).__name__}; "
            "use remove() for one key or wrap it in a list",
            bucket=bucket,
        )
    if not isinstance(keys, Iterable | AsyncIterable):
        raise InvalidArgument(
            f"remove_many() takes an iterable or async iterable of keys, got {type(keys).__name__}",
            bucket=bucket,
        )
    return keys


class _Source:
    """The keys, sync or async, read a batch at a time."""

    def __init__(self, keys: Iterable[str] | AsyncIterable[str]) -> None:
        self._sync: Iterator[str] | None = None
        self._async: AsyncIterator[str] | None = None
        if isinstance(keys, AsyncIterable):
            self._async = aiter(keys)
        else:
            self._sync = iter(keys)

    async def take(self, n: int) -> list[str]:
        out: list[str] = []
        if self._sync is not None:
            for key in self._sync:
                out.append(key)
                if len(out) == n:
                    break
            return out
        assert self._async is not None
        while len(out) < n:
            try:
                out.append(await anext(self._async))
            except StopAsyncIteration:
                break
        return out


async def _run_batch(provider: Provider, bucket: str, entries: list[_Entry]) -> list[RemoveItem]:
    sent = [key for key, err in entries if err is None]
    results: list[BucketError | None] = []
    if sent:
        try:
            results = await provider.delete_many(sent)
            if len(results) != len(sent):
                raise BackendError(f"delete_many() answered {len(results)} results for {len(sent)} keys")
        except Exception as exc:  # the batch failed as a whole: every key in it gets the error
            mapped = _runtime.map_error(exc, bucket, None)
            assert isinstance(mapped, BucketError)
            results = [_for_key(mapped, key) for key in sent]
    answers = iter(results)
    items: list[RemoveItem] = []
    for key, err in entries:
        if err is None:
            err = next(answers)
        items.append((None, key) if err is None else (err.with_context(bucket=bucket, key=key), key))
    return items


def _for_key(err: BucketError, key: str) -> BucketError:
    """A copy of a batch-wide error that names one key (the batch error is its cause)."""
    one = copy.copy(err)
    one.key = key
    one.__cause__ = err
    return one


async def remove_many(
    bucket: Handle, keys: Iterable[str] | AsyncIterable[str], concurrency: int | None
) -> AsyncGenerator[RemoveItem, None]:
    span = start_span("remove_many", bucket.name, None)
    counts = {"keys": 0, "removed": 0, "missing": 0, "failed": 0, "batches": 0}
    pending: deque[asyncio.Task[list[RemoveItem]]] = deque()
    error: BaseException | None = None
    try:
        async with _runtime.mapped_errors(bucket.name, None):
            provider, _ = bucket.provider()
        size = max(1, provider.capabilities.delete_batch)
        limit = concurrency or (BATCHES_IN_FLIGHT if size > 1 else DELETES_IN_FLIGHT)
        span.set(batch_size=size, concurrency=limit)
        source = _Source(keys)
        exhausted = False
        while True:
            while not exhausted and len(pending) < limit:
                given = await source.take(size)
                exhausted = len(given) < size
                if not given:
                    break
                entries = [(key, _invalid(bucket, key)) for key in given]
                pending.append(
                    asyncio.create_task(_run_batch(provider, bucket.name, entries), name=TASK_NAME)
                )
                counts["batches"] += 1
            if not pending:
                break
            items = await pending[0]
            pending.popleft()
            for err, key in items:
                counts["keys"] += 1
                counts[_outcome(err)] += 1
                yield err, key
    except GeneratorExit:  # the caller stopped early: a normal end
        raise
    except BaseException as exc:
        error = exc
        raise
    finally:
        tasks = list(pending)
        pending.clear()
        try:
            if tasks:
                await run_to_completion(cancel_and_wait(tasks))  # the iterator ended for its own reason
        finally:
            span.set(**counts)
            span.end(error)


def _outcome(err: BucketError | None) -> str:
    return "removed" if err is None else "missing" if isinstance(err, ObjectNotFound) else "failed"


def _invalid(bucket: Handle, key: object) -> BucketError | None:
    try:
        bucket.key(cast(str, key))
    except InvalidArgument as exc:
        return exc
    return None
