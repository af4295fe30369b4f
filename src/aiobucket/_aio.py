"""Small asyncio helpers for cancellation-safe cleanup.

Work is started eagerly where that is safe, because a task per close or commit is
a noticeable share of a small read's CPU: nothing can cancel code that does not
suspend, so work that finishes in its first step needs no task of its own.

* ``run_to_completion`` on Python 3.12+ starts its task eagerly (``eager_start``:
  the first step runs at once, with the new task as the current one, and a task
  that finishes then never reaches the event loop). On 3.11 it makes a plain task.
* ``release`` closes a response body: its first step runs in the caller on every
  version, and only a close that suspends continues in a shielded task. The first
  step runs as the caller's task, which is why this is for body closes only
  (``providers.base.Body.aclose`` says what that asks of a body): a timeout that
  other work enters before its first suspension (aiohttp's, asyncio.timeout) would
  otherwise cancel the caller instead of the work.
"""

from __future__ import annotations

import asyncio
import sys
import types
from collections.abc import Awaitable, Collection, Coroutine, Generator
from typing import Any, TypeVar

T = TypeVar("T")
_EAGER = sys.version_info >= (3, 12)  # Task(eager_start=True)


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

    On Python 3.12+ a coroutine starts eagerly: if its first step finishes it, it is
    done before this suspends at all.
    """
    task: asyncio.Future[T]
    if _EAGER and isinstance(work, types.CoroutineType):
        task = asyncio.Task(work, loop=asyncio.get_running_loop(), eager_start=True)  # type: ignore[call-arg,unused-ignore]
        if task.done():
            return task.result()
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


async def release(closing: Awaitable[None]) -> None:
    """Run a body's ``aclose()`` to its end, as run_to_completion would: a coroutine's first
    step in the caller (releasing a connection or a buffer finishes there, with no task),
    the rest, if it suspends, in a shielded task. Any other awaitable (an async generator's
    ``aclose()``, a future) goes to run_to_completion whole."""
    if not isinstance(closing, types.CoroutineType):
        await run_to_completion(closing)
        return
    try:
        pending = closing.send(None)
    except StopIteration:
        return
    await run_to_completion(_rest(closing, pending))


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
