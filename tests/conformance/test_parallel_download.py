"""Parallel ranged downloads (download(concurrency=N), download_to) on every backend.

Bytes are compared whole; memory is checked at every chunk the server delivers
(bytes fetched minus bytes handed to the caller never exceed part_size * (N + 1));
leaks are checked by watching every response body (tests/spy_provider.py wraps the
real provider) and every task aiobucket started.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from spy_provider import spying

import aiobucket
from conformance.conftest import payload, put

pytestmark = pytest.mark.anyio

PART = 64 * 1024


def _tasks_left() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("aiobucket-") and not t.done()]


def _open_blobs(backend, bucket: aiobucket.Bucket) -> list[str]:
    """Object files (blobs) of a local bucket this process holds open."""
    if backend.name != "local":
        return []
    root = str(backend.local_root(bucket) / "blobs")
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(root + os.sep):
            found.append(target)
    return found


@pytest.mark.parametrize(
    ("size", "concurrency", "part_size"),
    [(10 * PART + 123, 4, PART), (3 * PART, 3, PART), (1000, 4, PART), (PART + 1, 8, 4096), (0, 4, PART)],
)
async def test_parallel_read_returns_the_object_in_order(backend, size, concurrency, part_size):
    b = backend.bucket()
    data = payload(size, seed=3)
    await put(b, "big", data)
    async with b.download("big", concurrency=concurrency, part_size=part_size) as r:
        attrs = await r.attrs()
        assert attrs.size == size
        got = await r.read()
    assert got == data
    assert _tasks_left() == []


async def test_parallel_ranges_and_reads_of_any_size(backend):
    b = backend.bucket()
    data = payload(5 * PART + 17, seed=4)
    await put(b, "big", data)
    ranged = b.download("big", offset=PART - 3, length=2 * PART, concurrency=3, part_size=PART)
    assert await ranged.read() == data[PART - 3 : 3 * PART - 3]
    assert await b.download("big", offset=4 * PART, concurrency=2, part_size=PART).read() == data[4 * PART :]
    r = b.download("big", concurrency=2, part_size=PART)
    got = bytearray()
    while chunk := await r.read(10_007):
        assert len(chunk) <= 10_007
        got += chunk
    assert bytes(got) == data
    with pytest.raises(aiobucket.RangeNotSatisfiable):
        await b.download("big", offset=len(data), concurrency=2, part_size=PART).read()


async def test_memory_stays_under_part_size_times_concurrency_plus_one(backend, monkeypatch):
    b = backend.bucket()
    data = payload(24 * PART, seed=5)
    await put(b, "big", data)
    n = 3
    consumed = 0
    peak = 0
    with spying(monkeypatch) as spies:
        r = b.download("big", concurrency=n, part_size=PART)
        await r.attrs()
        spy = spies.only

        def check() -> None:
            nonlocal peak
            peak = max(peak, spy.fetched - consumed)

        spy.on_chunk = check

        def ran_ahead() -> bool:
            return spy.fetched - consumed > PART or spy.fetched >= len(data)

        async for chunk in r:
            consumed += len(chunk)
            # A slow consumer: it waits until the range tasks have run ahead of it (by a
            # condition, not a fixed number of loop turns, which a loaded server outlasts).
            for _ in range(400):
                if ran_ahead():
                    break
                await asyncio.sleep(0.005)
    assert consumed == len(data)
    assert peak <= PART * (n + 1), f"held {peak} bytes, bound {PART * (n + 1)}"
    assert peak > PART  # the ranges did run ahead of the consumer
    assert len(spy.gets) == 24  # one request per part
    assert spy.open_bodies == set()


async def test_every_range_is_pinned_to_the_first_etag(backend, monkeypatch):
    b = backend.bucket()
    data = payload(6 * PART, seed=6)
    first = await put(b, "big", data)
    with spying(monkeypatch) as spies:
        assert await b.download("big", concurrency=2, part_size=PART).read() == data
    gets = spies.only.gets
    assert gets[0].if_match is None
    assert all(g.if_match == first.etag for g in gets[1:])


async def test_an_overwrite_midway_raises_object_changed_never_a_splice(backend, monkeypatch):
    b = backend.bucket()
    await put(b, "big", payload(12 * PART, seed=7))
    with spying(monkeypatch) as spies:
        r = b.download("big", concurrency=1, part_size=PART)
        assert len(await r.read(10)) == 10  # part 0 in hand; part 1 at most is under way
        await put(b, "big", payload(12 * PART, seed=8))
        with pytest.raises(aiobucket.ObjectChanged):
            while await r.read(PART):
                pass
        assert spies.open_bodies() == []
    assert _tasks_left() == []
    with pytest.raises(aiobucket.InvalidArgument, match="closed"):
        await r.read()


@pytest.mark.quirk("versioned_range_ignored")
@pytest.mark.quirk("no_versions")
async def test_on_a_versioned_bucket_the_version_is_pinned_too(backend):
    b = backend.bucket(versioned=True)
    old = payload(8 * PART, seed=9)
    await put(b, "big", old)
    r = b.download("big", concurrency=1, part_size=PART)
    first = await r.read(10)
    await put(b, "big", payload(8 * PART, seed=10))
    rest = await r.read()
    assert first + rest == old  # the version being read is still there: read it whole


@pytest.mark.parametrize("how", ["cancel", "aclose", "break"])
async def test_stopping_midway_releases_every_body_and_task(backend, monkeypatch, how):
    b = backend.bucket()
    await put(b, "big", payload(32 * PART, seed=11))
    with spying(monkeypatch) as spies:
        got_some = asyncio.Event()

        async def consume() -> None:
            async with b.download("big", concurrency=4, part_size=PART) as r:
                async for _ in r:
                    got_some.set()
                    if how == "break":
                        break
                    await asyncio.sleep(3600)

        task = asyncio.create_task(consume())
        await got_some.wait()
        if how == "cancel":
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        elif how == "aclose":
            task.cancel()  # the async with closes the reader on the way out
            with pytest.raises(asyncio.CancelledError):
                await task
        else:
            await task
        assert spies.open_bodies() == []
    assert _tasks_left() == []
    assert _open_blobs(backend, b) == []


async def test_a_deleted_object_midway_fails_and_releases_everything(backend, monkeypatch):
    b = backend.bucket()
    await put(b, "big", payload(16 * PART, seed=12))
    with spying(monkeypatch) as spies:
        r = b.download("big", concurrency=2, part_size=PART)
        await r.read(1)
        await b.remove("big")
        with pytest.raises((aiobucket.ObjectChanged, aiobucket.ObjectNotFound)):
            await r.read()
        assert spies.open_bodies() == []
    assert _tasks_left() == []


# -- download_to -------------------------------------------------------------------------------


async def test_download_to_writes_the_object_and_nothing_else(backend, tmp_path: Path):
    b = backend.bucket()
    data = payload(9 * PART + 5, seed=13)
    await put(b, "big", data)
    out = tmp_path / "out"
    out.mkdir()
    seen: list[int] = []
    attrs = await b.download_to(
        "big", out / "file.bin", concurrency=3, part_size=PART, on_progress=seen.append
    )
    assert (out / "file.bin").read_bytes() == data
    assert attrs.size == len(data) and sum(seen) == len(data)
    assert os.listdir(out) == ["file.bin"]  # the temporary file was renamed, not copied
    # An existing file is replaced; an empty object makes an empty file.
    await put(b, "empty", b"")
    await b.download_to("empty", out / "file.bin")
    assert (out / "file.bin").read_bytes() == b""
    assert os.listdir(out) == ["file.bin"]
    assert _tasks_left() == []


async def test_download_to_failure_leaves_the_old_file_and_no_temporary(backend, tmp_path: Path, monkeypatch):
    b = backend.bucket()
    await put(b, "big", payload(16 * PART, seed=14))
    out = tmp_path / "out"
    out.mkdir()
    target = out / "file.bin"
    target.write_bytes(b"the old contents")
    with spying(monkeypatch) as spies:
        spies_ready = asyncio.Event()

        async def overwrite_before_the_second_range(opts: object) -> None:
            if len(spies.only.gets) == 2:  # part 0 is open: the object changes now
                await put(b, "big", payload(16 * PART, seed=15))

        async def watch() -> None:
            await b.attrs("big")  # makes the spy
            spies.only.before_get = overwrite_before_the_second_range
            spies_ready.set()

        await watch()
        await spies_ready.wait()
        with pytest.raises(aiobucket.ObjectChanged):
            await b.download_to("big", target, concurrency=1, part_size=PART)
        assert spies.open_bodies() == []
    assert target.read_bytes() == b"the old contents"
    assert os.listdir(out) == ["file.bin"]
    assert _tasks_left() == []
    assert _open_blobs(backend, b) == []


async def test_download_to_cancelled_leaves_no_temporary(backend, tmp_path: Path, monkeypatch):
    b = backend.bucket()
    await put(b, "big", payload(32 * PART, seed=16))
    out = tmp_path / "out"
    out.mkdir()
    with spying(monkeypatch) as spies:
        landed = asyncio.Event()
        task = asyncio.create_task(
            b.download_to(
                "big", out / "file.bin", concurrency=4, part_size=PART, on_progress=lambda n: landed.set()
            )
        )
        await landed.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert spies.open_bodies() == []
    assert os.listdir(out) == []
    assert _tasks_left() == []


async def test_download_to_refuses_bad_targets(backend, tmp_path: Path):
    b = backend.bucket()
    await put(b, "k", b"data")
    with pytest.raises(aiobucket.InvalidArgument, match="directory"):
        await b.download_to("k", tmp_path)
    with pytest.raises(FileNotFoundError):
        await b.download_to("k", tmp_path / "no" / "such" / "dir" / "file")
    with pytest.raises(aiobucket.ObjectNotFound):
        await b.download_to("missing", tmp_path / "file")
    assert not (tmp_path / "file").exists()
    with pytest.raises(aiobucket.InvalidArgument, match="concurrency"):
        await b.download_to("k", tmp_path / "file", concurrency=0)
    with pytest.raises(aiobucket.InvalidArgument, match="part_size"):
        b.download("k", part_size=PART)  # part_size without concurrency
