"""A bucket used under one ``asyncio.run()`` after another, never ``aclose()``d, keeps
nothing of the finished loops: not the loop, not its provider, not a socket or a file.

Scripts and pytest-asyncio (a loop per test) do exactly this with a module-level
``Bucket``. Each backend runs against its real server (SeaweedFS, fake-gcs-server,
Azurite), with ResourceWarning turned into an error, finalisers' complaints and the
asyncio logger's errors ("Unclosed client session", "Task was destroyed") collected,
and the garbage collected before the weak references and descriptors are counted.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
import warnings
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import Backend

import aiobucket
from aiobucket import _runtime

RUNS = 5
BACKENDS = ["memory", "local", "s3", "gcs", "azure"]


@pytest.fixture
def complaints(caplog: pytest.LogCaptureFixture) -> Iterator[list[str]]:
    """What finalisers, warnings and the asyncio logger said while active."""
    seen: list[str] = []
    hook = sys.unraisablehook
    sys.unraisablehook = lambda u: seen.append(f"unraisable: {u.exc_value!r} in {u.object!r}")
    caplog.set_level(logging.WARNING, logger="asyncio")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", ResourceWarning)
            yield seen
            gc.collect()  # finalisers complain now, if at all
    finally:
        sys.unraisablehook = hook
    seen += [f"asyncio log: {r.getMessage()}" for r in caplog.records if r.name == "asyncio"]


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _runs(backend: Backend, run: Callable[[Any], None]) -> tuple[list[weakref.ref[Any]], set[str]]:
    """RUNS times, a put and a get on a fresh loop made by ``run``, without aclose(), then one
    more loop's first operation. Returns weak references to the first RUNS loops and their
    providers, and the descriptors left open."""
    bucket = backend.bucket()
    seen: list[weakref.ref[Any]] = []

    async def once(i: int) -> None:
        seen.append(weakref.ref(asyncio.get_running_loop()))
        seen.append(weakref.ref(_runtime.provider_for(bucket.name, bucket.config)[0]))
        async with bucket.upload(f"k{i}") as w:
            await w.write(b"x" * 1000)
        assert await bucket.download(f"k{i}").read() == b"x" * 1000

    run(once(-1))  # the servers' clients and lazy imports settle before counting descriptors
    asyncio.run(aiobucket.aclose())
    gc.collect()
    before = _open_fds()
    for i in range(RUNS):
        run(once(i))
    refs = seen[2:]
    asyncio.run(once(RUNS))
    gc.collect()
    return refs, _open_fds() - before


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_asyncio_run_again_and_again_keeps_nothing(backend: Backend, complaints: list[str]) -> None:
    """``asyncio.run()`` shuts the loop's async generators down before closing it: that is
    when the loop's providers are closed, so nothing is dropped unclosed."""
    refs, leaked = _runs(backend, asyncio.run)
    alive = [r() for r in refs if r() is not None]
    assert alive == [], f"kept after asyncio.run() returned: {alive}"
    assert leaked == set(), f"descriptors left open: {[os.readlink(f'/proc/self/fd/{fd}') for fd in leaked]}"
    assert complaints == []


def _closed_without_shutdown(work: Any) -> None:
    """A loop closed as older code (and pytest-asyncio before 0.23) closes it: no
    ``shutdown_asyncgens()``, so aiobucket is never told the loop is finishing."""
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(work)
    finally:
        loop.close()


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_a_loop_closed_without_shutdown_goes_with_the_next(backend: Backend, complaints: list[str]) -> None:
    """Without the shutdown, the next loop's first operation drops what the closed loops
    held. Their sockets can no longer be closed through the loop (a closed loop schedules
    nothing), so they close as they are collected, with asyncio's own warning for a
    socket left open on a closed loop; the providers' sessions close quietly."""
    warnings.filterwarnings("ignore", r"unclosed (transport|<socket)", ResourceWarning)
    refs, leaked = _runs(backend, _closed_without_shutdown)
    alive = [r() for r in refs if r() is not None]
    assert alive == [], f"kept after the loop closed: {alive}"
    assert leaked == set(), f"descriptors left open: {[os.readlink(f'/proc/self/fd/{fd}') for fd in leaked]}"
    assert complaints == []


@pytest.mark.parametrize("backend", ["memory", "s3"], indirect=True)
def test_loops_in_threads_keep_nothing(backend: Backend, complaints: list[str]) -> None:
    """Threads running loops side by side each keep and drop only their own loop's entry."""
    import threading

    def in_a_thread() -> None:
        try:
            refs, _ = _runs(backend, asyncio.run)  # descriptors: counted across threads, meaningless here
            kept.extend(r() for r in refs if r() is not None)
        except BaseException as exc:  # re-raised below, in the test's thread
            failures.append(exc)

    kept: list[Any] = []
    failures: list[BaseException] = []
    threads = [threading.Thread(target=in_a_thread) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise failures[0]
    gc.collect()
    assert kept == []
    assert not any(loop.is_closed() for loop in _runtime._by_loop), "a finished loop was kept"
    assert complaints == []


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_reconfiguring_on_one_loop_keeps_only_the_current_providers(
    backend: Backend, complaints: list[str]
) -> None:
    """A loop that outlives many ``configure()`` calls (a server reloading its settings, a
    test session on one loop) keeps the current configuration's provider only: the ones
    before it go, with their connections, and quietly, once nothing uses them."""
    bucket = backend.bucket()
    refs: list[weakref.ref[Any]] = []

    async def main() -> tuple[int, int]:
        async def once(i: int) -> None:
            aiobucket.configure({f"unrelated-{i}": "memory://"})  # a new configuration generation
            refs.append(weakref.ref(_runtime.provider_for(bucket.name, bucket.config)[0]))
            async with bucket.upload(f"k{i}") as w:
                await w.write(b"x" * 1000)
            assert await bucket.download(f"k{i}").read() == b"x" * 1000
            # The collector runs between configurations, as it would over a server's life
            # (SQLite holds a closed connection's descriptor until the next open reuses it).
            gc.collect()

        # Lazy imports, the servers' clients and one replaced configuration settle first.
        await once(-2)
        await once(-1)
        before = len(_open_fds())  # the current provider's connections among them
        for i in range(RUNS):
            await once(i)
        await asyncio.sleep(0)  # the dropped connections' close callbacks run
        gc.collect()
        await asyncio.sleep(0)
        after = len(_open_fds())  # the last provider's connections, none of the earlier ones'
        cache = _runtime._by_loop[asyncio.get_running_loop()][0]
        assert len(cache) == 1, f"providers kept on the loop: {list(cache)}"
        await aiobucket.aclose()
        return before, after

    try:
        before, after = asyncio.run(main())
    finally:
        aiobucket.config.reset()
    alive = [r() for r in refs[:-1] if r() is not None]
    assert alive == [], f"earlier configurations' providers kept: {alive}"
    assert after <= before, f"{after - before} more descriptors open after {RUNS} configurations"
    assert complaints == []
