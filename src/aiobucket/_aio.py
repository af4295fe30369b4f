"""Small asyncio helpers for cancellation-safe cleanup."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Collection
from typing import Any, TypeVar

T = TypeVar("T")


async def cancel_and_wait(tasks: Collection[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait until every one has finished, so none outlives its owner.

    Their exceptions are retrieved and dropped: the caller is already ending for its
    own reason (an error, a cancel, a close), which takes precedence. A cancel of the
    caller while it waits interrupts the wait; run it under run_to_completion to finish.
    """
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks)
    for task in tasks:
        if not task.cancelled():
            task.exception()


async def run_to_completion(work: Awaitable[T]) -> T:
    """Await ``work`` in its own task so cancelling the caller cannot interrupt it.

    anyio's shielded scopes do not stop a native ``Task.cancel()``, so commit and
    abort go through this instead. If the caller is cancelled meanwhile, it still
    waits for the work to finish (nothing half done, no task leaked), then
    re-raises the CancelledError: cancellation is delayed, never swallowed.
    """
    task = asyncio.ensure_future(work)
    if task.get_name().startswith("Task-"):
        task.set_name("aiobucket-shielded")
    caller_cancelled: asyncio.CancelledError | None = None
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError as exc:
            if task.cancelled():
                raise
            caller_cancelled = caller_cancelled or exc
        except BaseException:
            if caller_cancelled is None:
                raise
            # The work failed after the caller was cancelled: the cancel wins below.
    if caller_cancelled is not None:
        if not task.cancelled():
            task.exception()  # mark retrieved; the cancellation takes precedence
        raise caller_cancelled
    return task.result()
