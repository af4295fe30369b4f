"""The local backend never leaks a file handle, whatever point a cancel lands at.

Opens and reads run in worker threads, which a cancel cannot stop: the thread
still opens the file. These tests cancel downloads and copies at random loop
iterations and then check, with ResourceWarning turned into an error and the
garbage collected, that no file object was dropped unclosed and that the
process holds exactly the descriptors it held before.
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import sys
import warnings
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import aiobucket
from aiobucket import config

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def local_bucket(tmp_path: Path) -> Iterator[aiobucket.Bucket]:
    with config.override({"leaky": f"file://{tmp_path / 'leaky'}", "other": f"file://{tmp_path / 'other'}"}):
        yield aiobucket.Bucket("leaky")


@pytest.fixture
def unraisable() -> Iterator[list[Any]]:
    """Every warning or error raised in a finaliser (where ResourceWarning is raised) while active."""
    seen: list[Any] = []
    hook = sys.unraisablehook
    sys.unraisablehook = seen.append
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", ResourceWarning)
            yield seen
    finally:
        sys.unraisablehook = hook


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


async def _cancel_at_random_points(op: Callable[[], Awaitable[object]], runs: int, seed: int) -> int:
    """Start ``op`` ``runs`` times and cancel each after 0-24 loop iterations; count the cancels."""
    rng = random.Random(seed)
    cancelled = 0
    for _ in range(runs):
        task = asyncio.ensure_future(op())
        for _ in range(rng.randrange(25)):
            await asyncio.sleep(0)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            cancelled += 1
    return cancelled


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")
async def test_cancelled_downloads_and_copies_leak_no_file_handle(
    local_bucket: aiobucket.Bucket, unraisable: list[Any]
) -> None:
    b = local_bucket
    data = os.urandom(3 * MiB + 5)
    async with b.upload("k") as w:
        await w.write(data)
    await b.download("k").read()  # open the index and warm the thread pool before counting
    fds = _open_fds()

    async def whole() -> None:
        await b.download("k").read()

    async def streamed() -> None:
        async with b.download("k", offset=7) as r:
            async for _ in r:
                pass

    async def copied() -> None:
        await b.copy("k", "copy", dst_bucket=aiobucket.Bucket("other"))

    cancelled = 0
    for seed, op in enumerate((whole, streamed, copied)):
        cancelled += await _cancel_at_random_points(op, 150, seed)
    assert cancelled > 150  # many runs were cut short somewhere

    gc.collect()
    assert [u.exc_value for u in unraisable] == []
    assert await b.download("k").read() == data
    await aiobucket.aclose()
    gc.collect()
    assert _open_fds() <= fds  # the index connection is closed too
    assert [u.exc_value for u in unraisable] == []
