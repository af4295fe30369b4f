"""Small asyncio helpers for cancellation-safe cleanup.

``run_to_completion`` starts its work eagerly (as Python 3.12's eager tasks do): the
work's first step runs in the caller, and a task is made only if the work suspends.
Nothing can cancel code that does not suspend, so work that finishes in its first
step (releasing a read response, closing a memory body) needs no task; work that
suspends is on its own, shielded task from that point on.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Awaitable, Collection, Coroutine, Generator
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

    A coroutine runs eagerly: if its first step finishes it, no task is made.
    """
    if isinstance(work, types.CoroutineType):
        try:
            pending = work.send(None)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        task: asyncio.Future[T] = asyncio.ensure_future(_rest(work, pending))
    else:
        task = asyncio.ensure_future(work)
    if isinstance(task, asyncio.Task) and task.get_name().startswith("Task-"):
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


async def _rest(coro: Coroutine[Any, Any, T], pending: Any) -> T:
    """The rest of ``coro``, which already ran up to yielding ``pending`` to the loop."""
    return await _resume(coro, pending)


@types.coroutine
def _resume(coro: Coroutine[Any, Any, T], pending: Any) -> Generator[Any, Any, T]:
    """Hand ``pending`` to the running task, then delegate as ``yield from`` would:
    what the task sends or throws goes to ``coro``, what ``coro`` yields goes to the task."""
    while True:
        try:
            sent = yield pending
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:
            try:
                pending = coro.throw(exc)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
        else:
            try:
                pending = coro.send(sent)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
