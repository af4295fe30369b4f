"""A newcomer's common mistakes get a clear, typed answer, and never a wrong object.

Run against the real memory and local backends (no fakes): a forgotten ``await``,
an odd memoryview, a misspelt bucket or option name, a bad argument. Each test
shows the error a person would see.
"""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

import aiobucket
from aiobucket import Bucket, InvalidArgument, ObjectNotFound, PreconditionFailed, Query, config
from aiobucket.http import open_range
from aiobucket.testing import memory_buckets

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("clean_config")]


@pytest.fixture(params=["memory", "local"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path | None]:
    """Every bucket on a real backend; yields the local backend's root (None: memory)."""
    if request.param == "memory":
        with memory_buckets():
            yield None
    else:
        root = tmp_path / "store"
        with config.override(default=root.as_uri()):
            yield root


@pytest.fixture
def no_unawaited_warnings() -> Iterator[None]:
    """Python's own "coroutine ... was never awaited" must not be the only trace, nor noise."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
        gc.collect()
    assert [str(w.message) for w in caught if "never awaited" in str(w.message)] == []


async def stored(b: Bucket, key: str) -> bytes | None:
    try:
        return await b.download(key).read()
    except ObjectNotFound:
        return None


# -- a forgotten await -----------------------------------------------------------------------------


@pytest.mark.usefixtures("no_unawaited_warnings")
async def test_a_write_that_was_never_awaited_refuses_the_commit(store: Path | None) -> None:
    b = Bucket("photos")
    async with b.upload("k") as w:
        await w.write(b"old")
    with pytest.raises(InvalidArgument) as info:
        async with b.upload("k") as w:
            w.write(b"new bytes")  # type: ignore[unused-awaitable]  # the mistake
    assert str(info.value) == (
        "1 write() call was never awaited, so the upload would miss data; it was aborted and nothing "
        "was stored. Write 'await w.write(data)' (bucket 'photos', key 'k')"
    )
    assert w.closed
    with pytest.raises(InvalidArgument, match="never awaited"):
        await w.close()  # the same error again, never a commit
    assert await stored(b, "k") == b"old"  # the old object is untouched
    await aiobucket.aclose()


@pytest.mark.usefixtures("no_unawaited_warnings")
async def test_a_forgotten_await_mid_stream_aborts_the_multipart_upload(store: Path | None) -> None:
    b = Bucket("photos")
    w = b.upload("k", part_size=None if store is None else 4)
    await w.write(b"0123456789")  # on local: parts of 4 bytes are on their way
    w.write(b"lost")  # type: ignore[unused-awaitable]
    w.write(b"lost too")  # type: ignore[unused-awaitable]
    with pytest.raises(InvalidArgument, match=r"^2 write\(\) calls were never awaited"):
        await w.close()
    assert await stored(b, "k") is None
    if store is not None:
        assert list((store / "photos" / "tmp").iterdir()) == []  # no upload left behind
    await aiobucket.aclose()


@pytest.mark.usefixtures("no_unawaited_warnings")
async def test_an_unawaited_write_during_a_running_one_leaves_it_alone(tmp_path: Path) -> None:
    """close() while a write runs is refused as before; the unawaited write is caught after."""
    b = Bucket("photos")
    with config.override(default=tmp_path.as_uri()):  # local: a part goes out in a worker thread
        w = b.upload("k", part_size=4)
        running = asyncio.create_task(w.write(b"running"))
        await asyncio.sleep(0)  # now waiting on the first part
        await _unawaited_write_during(w, running)
        assert await stored(b, "k") is None
        await aiobucket.aclose()
        assert list((tmp_path / "photos" / "tmp").iterdir()) == []


async def _unawaited_write_during(w: aiobucket.Writer, running: asyncio.Task[int]) -> None:
    w.write(b"forgotten")  # type: ignore[unused-awaitable]
    with pytest.raises(InvalidArgument, match="another write or close on this writer is still running"):
        await w.close()
    assert await running == 7
    with pytest.raises(InvalidArgument, match="never awaited"):
        await w.close()


@pytest.mark.usefixtures("no_unawaited_warnings")
async def test_a_write_that_would_overtake_an_unawaited_one_is_refused(store: Path | None) -> None:
    b = Bucket("photos")
    w = b.upload("k")
    w.write(b"first")  # type: ignore[unused-awaitable]
    with pytest.raises(InvalidArgument, match="never awaited"):
        await w.write(b"second")  # would store "second" before "first"
    assert w.closed
    assert await stored(b, "k") is None
    await aiobucket.aclose()


def test_a_dropped_writer_with_an_unawaited_write_warns() -> None:
    """With no coroutine to complain, the writer itself says what happened."""
    w = Bucket("photos").upload("k")
    w.write(b"data")  # type: ignore[unused-awaitable]
    with pytest.warns(
        RuntimeWarning, match=r"Writer for 'k': write\(\) was never awaited .* nothing was stored"
    ):
        del w
        gc.collect()


async def test_writes_created_first_and_awaited_in_order_are_fine(store: Path | None) -> None:
    b = Bucket("photos")
    async with b.upload("k") as w:
        one, two = w.write(b"one,"), w.write(b"two,")
        assert await one == 4 and await two == 4
        three = asyncio.create_task(w.write(b"three"))  # a PendingWrite is a coroutine
        assert await three == 5
        assert await asyncio.gather(w.write(b"!")) == [1]
        dropped = w.write(b"never")
        dropped.close()  # discarded on purpose, as a coroutine can be: not a forgotten await
        with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
            await dropped
    assert await stored(b, "k") == b"one,two,three!"
    await aiobucket.aclose()


# -- memoryviews -------------------------------------------------------------------------------


async def test_a_strided_memoryview_is_written_as_its_bytes(store: Path | None) -> None:
    b = Bucket("photos")
    async with b.upload("k") as w:
        assert await w.write(memoryview(b"abcdefgh")[::2]) == 4
        assert await w.write(memoryview(b"xyz")[::-1]) == 3
        assert await w.write(memoryview(bytearray(b"123456")).cast("B", shape=[2, 3])) == 6
    assert await stored(b, "k") == b"acegzyx123456"
    await aiobucket.aclose()


async def test_a_released_memoryview_is_invalid_and_the_upload_goes_on(store: Path | None) -> None:
    b = Bucket("photos")
    view = memoryview(b"gone")
    view.release()
    async with b.upload("k") as w:
        await w.write(b"kept,")
        with pytest.raises(InvalidArgument, match="released memoryview") as info:
            await w.write(view)
        assert info.value.bucket == "photos" and info.value.key == "k"
        assert not w.closed
        await w.write(b"still writing")
    assert await stored(b, "k") == b"kept,still writing"
    await aiobucket.aclose()


# -- every InvalidArgument names the bucket ----------------------------------------------------


async def test_bad_arguments_name_the_bucket(store: Path | None) -> None:
    b = Bucket("photos")
    async with b.upload("k") as w:
        await w.write(b"0123456789abc")

    class NotAPermission:
        pass

    attempts = {
        "read('10')": lambda: b.download("k").read("10"),  # type: ignore[arg-type]
        "upload(part_size=0)": lambda: b.upload("k", part_size=0),
        "upload(concurrency=-1)": lambda: b.upload("k", concurrency=-1),
        "upload(attrs=...)": lambda: b.upload("k", attrs={"content_type": "x"}),  # type: ignore[arg-type]
        "upload(preconditions=...)": lambda: b.upload("k", preconditions=True),  # type: ignore[arg-type]
        "write('str')": lambda: b.upload("k").write("text"),  # type: ignore[arg-type]
        "download(offset=-1)": lambda: b.download("k", offset=-1),
        "signed_upload_url(ttl='x')": lambda: b.signed_upload_url("k", ttl="x"),  # type: ignore[arg-type]
        "signed_download_url(ttl=8 days)": lambda: b.signed_download_url("k", ttl=timedelta(days=8)),
        "ref(object)": lambda: b.ref(NotAPermission),
        "list(Query(prefix='/x'))": lambda: b.list(Query(prefix="/x")),
        "attrs('')": lambda: b.attrs(""),
        "open_range(offset past the end)": lambda: open_range(b, "k", "bytes=100-"),
        "download(offset past the end)": lambda: b.download("k", offset=100).read(),
    }
    for what, attempt in attempts.items():
        with pytest.raises(InvalidArgument) as info:
            result = attempt()
            if asyncio.iscoroutine(result):
                await result
            elif hasattr(result, "__anext__"):
                await anext(result)  # type: ignore[arg-type]
        assert info.value.bucket == "photos", what
        assert "(bucket 'photos'" in str(info.value), what
    await aiobucket.aclose()


# -- reads never create a bucket ---------------------------------------------------------------


async def test_reading_a_bucket_that_was_never_written_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the default local backend: ./.aiobucket/<name>/
    typo = Bucket("avatrs", aiobucket.BucketConfig(versioned=True))
    real = Bucket("avatars")
    async with real.upload("k") as w:
        await w.write(b"x")
    assert not await typo.exists("k")
    assert [item async for item in typo.list()] == []
    assert [item async for item in typo.list_versions()] == []
    for attempt in (
        lambda: typo.attrs("k"),
        lambda: typo.download("k").read(),
        lambda: typo.remove("k"),
        lambda: typo.remove("k", version="v1"),
        lambda: typo.copy("k", "k2"),
        lambda: typo.copy("k", "k2", dst_bucket=real),
    ):
        with pytest.raises(ObjectNotFound, match=r"\(bucket 'avatrs', key 'k'"):
            await attempt()
    with pytest.raises(ObjectNotFound):
        await real.copy("missing", "k", dst_bucket=typo)
    assert sorted(p.name for p in (tmp_path / ".aiobucket").iterdir()) == ["avatars"]
    # A write does make it: declaring a bucket in code is the way to create one.
    with pytest.raises(PreconditionFailed):
        await real.copy("k", "k", dst_bucket=typo, preconditions=aiobucket.Preconditions(if_match="x"))
    await real.copy("k", "k", dst_bucket=typo)
    assert await typo.download("k").read() == b"x"
    await aiobucket.aclose()


# -- aiobucket.testing without importing it ---------------------------------------------------


def test_testing_is_reachable_after_import_aiobucket_and_stays_lazy(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import asyncio, sys
        import aiobucket
        assert "aiobucket.testing" not in sys.modules  # import aiobucket stays as light as it was

        async def main():
            with aiobucket.testing.memory_buckets():
                async with aiobucket.Bucket("b").upload("k") as w:
                    await w.write(b"v")
                print(await aiobucket.Bucket("b").download("k").read())
            await aiobucket.aclose()

        asyncio.run(main())
        assert "pytest" not in sys.modules  # memory_buckets() does not drag pytest in
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "b'v'\n"
    assert not (tmp_path / ".aiobucket").exists()
