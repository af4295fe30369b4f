"""aiobucket._aio.run_to_completion: cancellation is delayed, never swallowed, never half done."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from aiobucket._aio import release, run_to_completion

pytestmark = pytest.mark.anyio


async def spin(n: int = 20) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


class Work:
    def __init__(self, result: Any = "done", error: BaseException | None = None) -> None:
        self.release = asyncio.Event()
        self.started = False
        self.finished = False
        self.result = result
        self.error = error

    async def __call__(self) -> Any:
        self.started = True
        await self.release.wait()
        self.finished = True
        if self.error is not None:
            raise self.error
        return self.result


async def test_returns_the_result() -> None:
    work = Work(result=42)
    work.release.set()
    assert await run_to_completion(work()) == 42


async def test_accepts_a_future_or_task() -> None:
    work = Work(result="t")
    task = asyncio.create_task(work(), name="mine")
    work.release.set()
    assert await run_to_completion(task) == "t"
    assert task.get_name() == "mine"  # a caller's name is kept


async def test_work_exception_propagates_when_not_cancelled() -> None:
    err = ValueError("work failed")
    work = Work(error=err)
    work.release.set()
    with pytest.raises(ValueError) as info:
        await run_to_completion(work())
    assert info.value is err


@pytest.mark.parametrize("cancels", [1, 2, 3])
async def test_work_finishes_though_the_caller_is_cancelled(cancels: int) -> None:
    work = Work()
    caller = asyncio.create_task(run_to_completion(work()))
    await spin()
    assert work.started
    inner = [t for t in asyncio.all_tasks() if t.get_name() == "aiobucket-shielded"]
    assert len(inner) == 1
    for _ in range(cancels):
        caller.cancel()
        await spin()
        assert not caller.done()  # still waiting for the work
        assert not work.finished
    work.release.set()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert work.finished
    assert inner[0].done() and inner[0].result() == "done"
    assert caller.cancelled()


async def test_cancelled_caller_with_failing_work_raises_cancelled_and_retrieves_the_error() -> None:
    unhandled: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    old = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, ctx: unhandled.append(ctx))
    try:
        work = Work(error=RuntimeError("late failure"))
        caller = asyncio.create_task(run_to_completion(work()))
        await spin()
        caller.cancel()
        await spin()
        work.release.set()
        with pytest.raises(asyncio.CancelledError):
            await caller
        assert work.finished
        del caller, work
        import gc

        gc.collect()
        await spin()
    finally:
        loop.set_exception_handler(old)
    assert unhandled == []  # no "Task exception was never retrieved"


async def test_work_cancelled_itself_raises_cancelled() -> None:
    async def self_cancelling() -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await run_to_completion(self_cancelling())


async def test_no_task_left_behind() -> None:
    before = asyncio.all_tasks()
    work = Work()
    caller = asyncio.create_task(run_to_completion(work()))
    await spin()
    caller.cancel()
    await spin()
    work.release.set()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert asyncio.all_tasks() - before == set()


async def test_cancel_scope_of_anyio_also_waits_for_the_work() -> None:
    import anyio

    work = Work()
    with anyio.move_on_after(0) as scope:
        # The deadline has already passed: the scope cancels at the first await.
        release_soon = asyncio.get_running_loop().call_soon(work.release.set)
        try:
            await run_to_completion(work())
        finally:
            release_soon.cancel()
    assert scope.cancelled_caught
    assert work.finished


def test_inside_asyncio_run() -> None:
    async def main() -> tuple[bool, bool]:
        work = Work()
        caller = asyncio.create_task(run_to_completion(work()))
        await spin()
        caller.cancel()
        await spin()
        work.release.set()
        try:
            await caller
        except asyncio.CancelledError:
            return True, work.finished
        return False, work.finished

    assert asyncio.run(main()) == (True, True)


async def test_cancel_and_wait_reaps_every_task_and_retrieves_their_errors() -> None:
    import gc

    from aiobucket._aio import cancel_and_wait

    async def fails_on_cancel() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            raise RuntimeError("cleanup failed")  # ends with an error, not as cancelled

    async def cleans_up(log: list[str]) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0)  # cleanup that itself awaits still runs to its end
            log.append("closed")

    async def run() -> list[str]:
        log: list[str] = []
        tasks = [asyncio.create_task(fails_on_cancel())]
        tasks += [asyncio.create_task(cleans_up(log)) for _ in range(3)]
        await spin()
        await cancel_and_wait(tasks)
        assert [t.done() for t in tasks] == [True] * 4
        assert [t.cancelled() for t in tasks] == [False, True, True, True]
        return log

    seen: list[object] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, ctx: seen.append(ctx))
    try:
        assert await run() == ["closed"] * 3
        gc.collect()  # the failed task is gone: its error was retrieved, so nothing is reported
        assert seen == []
    finally:
        loop.set_exception_handler(None)
    await cancel_and_wait([])  # nothing to do is fine


def _count_tasks(loop: asyncio.AbstractEventLoop) -> list[asyncio.Task[Any]]:
    made: list[asyncio.Task[Any]] = []

    def factory(lp: asyncio.AbstractEventLoop, coro: Any, **kw: Any) -> asyncio.Task[Any]:
        task = asyncio.Task(coro, loop=lp, **kw)
        made.append(task)
        return task

    loop.set_task_factory(factory)
    return made


async def test_a_release_done_in_its_first_step_makes_no_task() -> None:
    loop = asyncio.get_running_loop()
    made = _count_tasks(loop)
    closed: list[bool] = []
    try:

        async def aclose() -> None:
            closed.append(True)

        await release(aclose())
    finally:
        loop.set_task_factory(None)
    assert closed == [True]
    assert made == []


async def test_a_release_of_another_awaitable_runs_it_whole() -> None:
    """A body may be an async generator: its aclose() is no coroutine, and still runs to its end."""
    closed: list[bool] = []

    async def body() -> AsyncIterator[bytes]:
        try:
            yield b"chunk"
        finally:
            await asyncio.sleep(0)
            closed.append(True)

    gen = body()
    assert await anext(gen) == b"chunk"
    await release(gen.aclose())
    assert closed == [True]


async def test_a_release_failing_in_its_first_step_raises_its_error() -> None:
    err = KeyError("first step")

    async def aclose() -> None:
        raise err

    with pytest.raises(KeyError) as info:
        await release(aclose())
    assert info.value is err


async def test_a_release_that_suspends_finishes_shielded_and_gets_what_it_awaits() -> None:
    """The task that takes over after the first suspension delivers results, exceptions
    and bare yields to the close exactly as awaiting it directly would, and a cancel of
    the caller waits for the close to end, then is re-raised."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[int] = loop.create_future()
    failure: asyncio.Future[int] = loop.create_future()
    steps: list[object] = []

    async def aclose() -> None:
        steps.append("first")
        steps.append(await answer)
        await asyncio.sleep(0)  # a bare yield
        try:
            await failure
        except ValueError as exc:
            steps.append(str(exc))

    caller = asyncio.create_task(release(aclose()))
    await spin()
    assert steps == ["first"]
    caller.cancel()
    await spin()
    assert not caller.done()  # the close is shielded
    answer.set_result(7)
    await spin()
    failure.set_exception(ValueError("thrown in"))
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert steps == ["first", 7, "thrown in"]


async def test_run_to_completion_work_sees_its_own_task_as_current() -> None:
    """A timeout the work enters (aiohttp's, asyncio.timeout) cancels the work, never the caller."""
    caller = asyncio.current_task()
    seen: list[asyncio.Task[Any] | None] = []

    async def work() -> None:
        seen.append(asyncio.current_task())
        await asyncio.sleep(0)
        seen.append(asyncio.current_task())

    await run_to_completion(work())
    assert seen[0] is seen[1] and seen[0] is not caller and seen[0] is not None
