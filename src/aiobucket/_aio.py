"""Small asyncio helpers for cancellation-safe cleanup."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


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
