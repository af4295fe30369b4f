"""aiobucket.fsspec keeps aiobucket's guarantees: our own contract beyond fsspec's suite.

Slices, create-only races, aborted writes, ETag pinning, cache coherence, pickling,
sync and async use in one process, and a forked child, each on real backends
(the ``backend`` fixture: every one in AIOBUCKET_BACKENDS). Sync calls run on
fsspec's IO thread; its providers are closed after each test.
"""

from __future__ import annotations

import asyncio
import gc
import os
import pickle
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import fsspec
import fsspec.asyn
import pytest
from conftest import Backend
from fsspec.implementations.memory import MemoryFileSystem
from servers.seaweedfs_server import S3Server

import aiobucket
from aiobucket.fsspec import AiobucketFileSystem, FileExpired

DATA = bytes(range(256)) * 40 + b"tail"  # 10,244 bytes, every offset distinguishable


@pytest.fixture
def bucket(backend: Backend) -> aiobucket.Bucket:
    return backend.bucket()


@pytest.fixture
def fs(bucket: aiobucket.Bucket) -> Iterator[AiobucketFileSystem]:
    fs = AiobucketFileSystem(buckets=[bucket], skip_instance_cache=True)
    yield fs
    fsspec.asyn.sync(fs.loop, aiobucket.aclose)


@pytest.fixture
def create_only(backend: Backend, bucket: aiobucket.Bucket) -> bool:
    """Whether the backend declares it honours create-only single writes (Capabilities.
    conditional_put). Where it does not, a create-only write must raise NotSupported before
    any I/O and store nothing, as tests/conformance/ checks for Bucket."""

    async def caps() -> bool:
        return backend.supports(bucket).conditional_put

    return bool(run(caps()))


def refused(fs: AiobucketFileSystem, path: str, write: Callable[[], object]) -> None:
    """A create-only write on a backend that cannot honour it: NotSupported, nothing stored."""
    with pytest.raises(aiobucket.NotSupported):
        write()
    assert not fs.exists(path)


def run(coro: object) -> object:
    """Run a coroutine on a fresh loop of its own, closing its providers."""

    async def main() -> object:
        try:
            return await coro  # type: ignore[misc]
        finally:
            await aiobucket.aclose()

    return asyncio.run(main())


# -- packaging ---------------------------------------------------------------------------------


def test_import_aiobucket_does_not_import_fsspec() -> None:
    code = "import sys, aiobucket; assert 'fsspec' not in sys.modules, 'fsspec imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_entry_point_registers_the_protocol_without_importing_aiobucket(tmp_path: Path) -> None:
    code = (
        "import sys, fsspec\n"
        "assert 'aiobucket' not in sys.modules\n"
        "fs = fsspec.filesystem('aiobucket')\n"
        "fs.pipe('ep/k.txt', b'via the entry point')\n"
        "of = fsspec.open('aiobucket://ep/k.txt', 'rb')\n"
        "with of as f: print(type(fs).__module__, f.read().decode())\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIOBUCKET")}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "aiobucket.fsspec._filesystem via the entry point\n"
    assert (tmp_path / ".aiobucket" / "ep").is_dir()  # the default config: local files


# -- reads ---------------------------------------------------------------------------------------

SLICES = [
    (None, None),
    (0, None),
    (1, None),
    (0, 10),
    (100, 200),
    (10_000, 10_244),
    (10_000, 99_999),  # end past EOF: cut at EOF
    (10_244, None),  # at EOF
    (10_300, None),  # past EOF
    (20_000, 30_000),
    (5, 5),
    (7, 3),  # end before start
    (-4, None),  # a suffix: the last 4 bytes
    (-100, -4),
    (-20_000, None),  # a suffix longer than the object: all of it
    (-20_000, 10),
    (None, -4),
    (3, -3),
    (-3, -10),
    (None, 0),
]


def test_cat_file_slices_like_python_and_fsspecs_memory_filesystem(
    fs: AiobucketFileSystem, bucket: aiobucket.Bucket
) -> None:
    path = f"{bucket.name}/dir/data.bin"
    fs.pipe_file(path, DATA)
    reference = MemoryFileSystem(skip_instance_cache=True)
    reference.pipe_file("/ref", DATA)
    for start, end in SLICES:
        got = fs.cat_file(path, start=start, end=end)
        assert got == DATA[start:end], (start, end)
        assert got == reference.cat_file("/ref", start=start, end=end), (start, end)
    assert fs.cat_ranges([path] * 3, [0, -4, 10_300], [4, None, None]) == [DATA[:4], DATA[-4:], b""]


def test_missing_objects_and_folders_raise_the_builtin_errors(
    fs: AiobucketFileSystem, bucket: aiobucket.Bucket
) -> None:
    fs.pipe_file(f"{bucket.name}/dir/a", b"a")
    for call in (fs.cat_file, fs.info, fs.ls, fs.rm_file, fs.open):
        with pytest.raises(FileNotFoundError):
            call(f"{bucket.name}/missing")
    with pytest.raises(FileNotFoundError):
        fs.cat_file(f"{bucket.name}/missing", start=-3)
    with pytest.raises(FileNotFoundError):
        fs.cat_file(f"{bucket.name}/missing", start=5, end=2)
    with pytest.raises(IsADirectoryError):
        fs.cat_file(bucket.name)
    with pytest.raises(IsADirectoryError):
        fs.open(f"{bucket.name}/dir")
    with pytest.raises(IsADirectoryError):
        fs.cat_file(f"{bucket.name}/dir")  # objects live under it: a folder
    with pytest.raises(aiobucket.NotSupported, match="immutable"):
        fs.open(f"{bucket.name}/dir/a", "ab")


# -- writes --------------------------------------------------------------------------------------


def test_create_only_writes_let_exactly_one_concurrent_writer_win(
    fs: AiobucketFileSystem, bucket: aiobucket.Bucket, create_only: bool
) -> None:
    path = f"{bucket.name}/once"
    if not create_only:
        return refused(fs, path, lambda: fs.pipe_file(path, b"writer", mode="create"))

    async def race() -> list[BaseException | None]:
        afs = AiobucketFileSystem(buckets=[bucket], asynchronous=True, skip_instance_cache=True)
        results = await asyncio.gather(
            *(afs._pipe_file(path, b"writer %d" % i, mode="create") for i in range(8)),
            return_exceptions=True,
        )
        return [r if isinstance(r, BaseException) else None for r in results]

    outcomes = run(race())
    assert isinstance(outcomes, list)
    winners = [i for i, err in enumerate(outcomes) if err is None]
    assert len(winners) == 1, outcomes
    assert all(isinstance(err, FileExistsError) for err in outcomes if err is not None), outcomes
    assert fs.cat_file(path) == b"writer %d" % winners[0]
    with pytest.raises(FileExistsError):
        fs.open(path, "xb")


def test_an_exception_inside_open_wb_stores_nothing(
    fs: AiobucketFileSystem, bucket: aiobucket.Bucket
) -> None:
    path = f"{bucket.name}/partial.bin"
    chunk = b"x" * (1024 * 1024)
    with pytest.raises(KeyError), fs.open(path, "wb", block_size=1024 * 1024) as f:
        for _ in range(9):  # past the writer's first 8 MiB part: a multipart upload is under way
            f.write(chunk)
        raise KeyError("the producer failed")
    assert not fs.exists(path)
    assert not run(bucket.exists("partial.bin"))
    with fs.open(path, "wb") as f:
        f.write(b"whole")
    assert fs.cat_file(path) == b"whole"


def test_fsspec_open_and_close_in_finally_store_nothing_on_an_error(
    fs: AiobucketFileSystem, bucket: aiobucket.Bucket
) -> None:
    """fsspec.open's OpenFile closes its files in its own __exit__, pandas in a ``finally``:
    a close while an error raised after the open propagates aborts."""
    url = f"aiobucket://{bucket.name}/openfile.txt"
    with pytest.raises(KeyError), fsspec.open(url, "w", buckets=[bucket], skip_instance_cache=True) as f:
        f.write("half a line")
        raise KeyError("the producer failed")
    with pytest.raises(KeyError):
        g = fs.open(f"{bucket.name}/finally.bin", "wb")
        try:
            g.write(b"half")
            raise KeyError("the producer failed")
        finally:
            g.close()
    assert not fs.exists(f"{bucket.name}/openfile.txt") and not fs.exists(f"{bucket.name}/finally.bin")
    try:
        raise ValueError("handled")
    except ValueError:  # a file opened while handling an error still commits on close
        with fsspec.open(url, "w", buckets=[bucket], skip_instance_cache=True) as f:
            f.write("fallback")
    assert fs.cat_file(url) == b"fallback"


def test_a_transaction_commits_at_its_end_and_discards_on_an_error(
    fs: AiobucketFileSystem, bucket: aiobucket.Bucket
) -> None:
    with fs.transaction:
        with fs.open(f"{bucket.name}/t1", "wb") as f:
            f.write(b"t1")
        assert not fs.exists(f"{bucket.name}/t1")  # uploaded, not committed
    assert fs.cat_file(f"{bucket.name}/t1") == b"t1"
    with pytest.raises(KeyError), fs.transaction:
        with fs.open(f"{bucket.name}/t2", "wb") as f:
            f.write(b"t2")
        raise KeyError("rolled back")
    assert not fs.exists(f"{bucket.name}/t2")


def test_a_write_file_dropped_unclosed_is_aborted_with_a_resource_warning(
    fs: AiobucketFileSystem, bucket: aiobucket.Bucket
) -> None:
    path = f"{bucket.name}/dropped.bin"
    f = fs.open(path, "wb", block_size=5 * 1024 * 1024)
    f.write(b"y" * (6 * 1024 * 1024))  # flushed into the writer: its upload has begun
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del f
        gc.collect()
    assert any(issubclass(w.category, ResourceWarning) and "nothing" in str(w.message) for w in caught)
    assert not fs.exists(path)


def test_a_create_only_file_that_loses_the_race_at_commit_raises_file_exists(
    fs: AiobucketFileSystem, bucket: aiobucket.Bucket, create_only: bool
) -> None:
    path = f"{bucket.name}/late"
    f = fs.open(path, "xb")  # nothing there at open
    f.write(b"second")
    if not create_only:
        refused(fs, path, f.close)
        return f.discard()
    fs.pipe_file(path, b"first")  # another writer gets there meanwhile
    with pytest.raises(FileExistsError):
        f.close()
    assert fs.cat_file(path) == b"first"


# -- the read file pins the ETag -------------------------------------------------------------------


def test_a_read_file_pins_the_etag_seen_at_open(fs: AiobucketFileSystem, bucket: aiobucket.Bucket) -> None:
    path = f"{bucket.name}/pinned.bin"
    fs.pipe_file(path, DATA)
    with fs.open(path, "rb", block_size=1024) as f:
        assert f.read(10) == DATA[:10]  # through the read-ahead cache
        assert f.read(4096) == DATA[10:4106]  # a block or more: fetched as asked
        run(_overwrite(bucket, "pinned.bin", DATA[::-1]))
        with pytest.raises(FileExpired) as caught:
            f.read(10)
        assert isinstance(caught.value, OSError)
        with pytest.raises(FileExpired):
            f.read(4096)
    with fs.open(path, "rb") as f:  # a new open sees the new object
        assert f.read() == DATA[::-1]


def test_large_reads_fill_one_buffer_with_the_right_bytes(
    fs: AiobucketFileSystem, bucket: aiobucket.Bucket
) -> None:
    """Reads of a MiB or more are copied into one buffer as the chunks arrive (read_all)."""
    big = os.urandom(3 * 1024 * 1024 + 17)
    path = f"{bucket.name}/big.bin"
    fs.pipe_file(path, big)
    with fs.open(path, "rb", block_size=1024 * 1024) as f:
        f.seek(5)
        assert f.read(2 * 1024 * 1024) == big[5 : 5 + 2 * 1024 * 1024]
        assert f.read() == big[5 + 2 * 1024 * 1024 :]
        f.seek(0)
        whole = f.read()  # the whole object: verified
        assert type(whole) is bytes and whole == big
    mib = 1024 * 1024
    assert fs.cat_file(path) == big
    assert fs.cat_file(path, start=1, end=2 * mib) == big[1 : 2 * mib]
    assert fs.cat_file(path, start=-2 * mib) == big[-2 * mib :]
    assert fs.cat_file(path, start=mib, end=10 * mib) == big[mib:]
    run(_overwrite(bucket, "big.bin", big[::-1]))
    with fs.open(path, "rb", block_size=1024 * 1024) as f:
        run(_overwrite(bucket, "big.bin", big))
        with pytest.raises(FileExpired):
            f.read()


async def _overwrite(bucket: aiobucket.Bucket, key: str, data: bytes) -> None:
    async with bucket.upload(key) as w:
        await w.write(data)


def test_a_read_file_pickles_mid_read_and_stays_pinned(
    fs: AiobucketFileSystem, bucket: aiobucket.Bucket
) -> None:
    path = f"{bucket.name}/pickled.bin"
    fs.pipe_file(path, DATA)
    with fs.open(path, "rb", cache_type="none") as f:
        f.read(100)
        copy = pickle.loads(pickle.dumps(f))
    assert copy.tell() == 100 and copy.read(10) == DATA[100:110]
    run(_overwrite(bucket, "pickled.bin", b"changed"))
    with pytest.raises(FileExpired):
        copy.read(10)
    with pytest.raises(RuntimeError):
        pickle.dumps(fs.open(f"{bucket.name}/w", "wb"))


# -- versions, as s3fs reads them -------------------------------------------------------------


@pytest.mark.quirk("no_versions")
@pytest.mark.quirk("versioned_range_ignored")  # the suffix read of a version
def test_versions_are_read_by_version_id_and_by_url_as_in_s3fs(backend: Backend) -> None:
    bucket = backend.bucket(versioned=True)
    fs = AiobucketFileSystem(buckets=[bucket], version_aware=True, skip_instance_cache=True)
    try:
        path = f"{bucket.name}/v.bin"
        fs.pipe_file(path, b"one")
        v1 = fs.info(path)["VersionId"]
        fs.pipe_file(path, DATA)
        v2 = fs.info(path)["VersionId"]
        assert v1 and v2 and v1 != v2
        assert fs.cat_file(path, version_id=v1) == b"one"
        assert fs.cat_file(f"{path}?versionId={v1}", start=-2) == b"ne"
        assert fs.info(path, version_id=v1)["size"] == 3
        with fs.open(path, "rb", version_id=v1) as f:
            assert f.read() == b"one"
        assert [(i["VersionId"], i["IsLatest"]) for i in fs.object_version_info(path)] == [
            (v2, True),
            (v1, False),
        ]
        fs.cp_file(f"{path}?versionId={v1}", f"{bucket.name}/restored")
        assert fs.cat_file(f"{bucket.name}/restored") == b"one"
        with pytest.raises(ValueError, match="differs"):
            fs.cat_file(f"{path}?versionId={v1}", version_id=v2)
        # version_aware: a read file keeps reading the version it opened, after an overwrite.
        with fs.open(path, "rb", block_size=1024) as f:
            assert f.read(10) == DATA[:10]
            run(_overwrite(bucket, "v.bin", b"three"))
            assert f.read(4096) == DATA[10:4106]
            copy = pickle.loads(pickle.dumps(f))
        assert copy.read(10) == DATA[4106:4116]
        url_fs, url_path = fsspec.core.url_to_fs(f"aiobucket://{path}?versionId={v1}", buckets=[bucket])
        assert url_fs.version_aware and url_fs.cat_file(url_path) == b"one"
    finally:
        fsspec.asyn.sync(fs.loop, aiobucket.aclose)


def test_a_version_on_an_unversioned_bucket_is_refused_never_answered_with_current_bytes(
    fs: AiobucketFileSystem, bucket: aiobucket.Bucket
) -> None:
    fs.pipe_file(f"{bucket.name}/k", b"current")
    with pytest.raises(aiobucket.InvalidArgument, match="versioned"):
        fs.cat_file(f"{bucket.name}/k", version_id="1")
    with pytest.raises(aiobucket.InvalidArgument, match="versioned"):
        fs.open(f"{bucket.name}/k?versionId=1", "rb")
    with pytest.raises(ValueError, match="never written"):
        fs.open(f"{bucket.name}/k", "wb", version_id="1")


# -- the cache ---------------------------------------------------------------------------------


def test_a_write_through_bucket_is_seen_after_invalidate_cache(
    fs: AiobucketFileSystem, bucket: aiobucket.Bucket
) -> None:
    fs.pipe_file(f"{bucket.name}/d/a", b"a")
    assert fs.ls(f"{bucket.name}/d", detail=False) == [f"{bucket.name}/d/a"]
    run(_overwrite(bucket, "d/b", b"b"))  # behind the filesystem's back
    assert fs.ls(f"{bucket.name}/d", detail=False) == [f"{bucket.name}/d/a"]  # the dircache, as fsspec does
    fs.invalidate_cache(f"{bucket.name}/d")
    assert fs.ls(f"{bucket.name}/d", detail=False) == [f"{bucket.name}/d/a", f"{bucket.name}/d/b"]
    # What the filesystem itself does keeps the cache coherent.
    fs.pipe_file(f"{bucket.name}/d/c", b"c")
    fs.rm_file(f"{bucket.name}/d/a")
    fs.cp_file(f"{bucket.name}/d/b", f"{bucket.name}/d/e/f")
    assert fs.ls(f"{bucket.name}/d", detail=False) == [
        f"{bucket.name}/d/b",
        f"{bucket.name}/d/c",
        f"{bucket.name}/d/e",
    ]
    fs.rm(f"{bucket.name}/d", recursive=True)
    with pytest.raises(FileNotFoundError):
        fs.ls(f"{bucket.name}/d/e")
    assert fs.find(bucket.name) == []


def test_checksum_ukey_and_modified_follow_the_object(
    fs: AiobucketFileSystem, bucket: aiobucket.Bucket
) -> None:
    path = f"{bucket.name}/v"
    fs.pipe_file(path, b"one")
    before = (fs.checksum(path), fs.ukey(path))
    assert fs.modified(path).tzinfo is not None
    fs.pipe_file(path, b"two")
    assert (fs.checksum(path), fs.ukey(path)) != before
    assert fs.info(path)["ETag"] == run(bucket.attrs("v")).etag  # type: ignore[attr-defined]


# -- copies across buckets and backends ----------------------------------------------------------


def test_copies_go_across_buckets_and_backends(backend: Backend, tmp_path: Path) -> None:
    src, dst = backend.bucket(), backend.bucket()
    with aiobucket.config.override({"fsspec-local-dst": f"file://{tmp_path}/other"}):
        other = aiobucket.Bucket("fsspec-local-dst")
        fs = AiobucketFileSystem(buckets=[src, dst, other], skip_instance_cache=True)
        try:
            fs.pipe_file(f"{src.name}/a/1", DATA)
            fs.copy(f"{src.name}/a", f"{dst.name}/b", recursive=True)
            fs.copy(f"{src.name}/a/1", f"{other.name}/c")
            assert fs.cat_file(f"{dst.name}/b/1") == DATA
            assert fs.cat_file(f"{other.name}/c") == DATA
        finally:
            fsspec.asyn.sync(fs.loop, aiobucket.aclose)


# -- loops, pickling, fork ---------------------------------------------------------------------


def test_sync_and_async_use_share_one_process(fs: AiobucketFileSystem, bucket: aiobucket.Bucket) -> None:
    fs.pipe_file(f"{bucket.name}/s", b"sync")
    afs = AiobucketFileSystem(buckets=[bucket], asynchronous=True, skip_instance_cache=True)

    async def use(i: int) -> bytes:
        await afs._pipe_file(f"{bucket.name}/a{i}", b"async %d" % i)
        async with await afs.open_async(f"{bucket.name}/w{i}", "wb") as f:
            await f.write(b"streamed ")
            await f.write(b"%d" % i)
        async with await afs.open_async(f"{bucket.name}/w{i}", "rb") as f:
            return await afs._cat_file(f"{bucket.name}/s") + await f.read()

    # Two loops in a row (each asyncio.run), and fsspec's IO loop in between.
    assert run(use(1)) == b"syncstreamed 1"
    assert fs.cat_file(f"{bucket.name}/a1") == b"async 1"
    assert run(use(2)) == b"syncstreamed 2"
    assert fs.cat_file(f"{bucket.name}/w2") == b"streamed 2"


def test_open_async_aborts_on_an_exception(fs: AiobucketFileSystem, bucket: aiobucket.Bucket) -> None:
    afs = AiobucketFileSystem(buckets=[bucket], asynchronous=True, skip_instance_cache=True)

    async def fail() -> None:
        async with await afs.open_async(f"{bucket.name}/x", "wb") as f:
            await f.write(b"half")
            raise KeyError("stop")

    with pytest.raises(KeyError):
        run(fail())
    assert not fs.exists(f"{bucket.name}/x")


def test_the_filesystem_pickles(fs: AiobucketFileSystem, bucket: aiobucket.Bucket) -> None:
    fs.pipe_file(f"{bucket.name}/p", b"pickled")
    copy = pickle.loads(pickle.dumps(fs))
    assert copy.cat_file(f"{bucket.name}/p") == b"pickled"
    assert copy.bucket(bucket.name).config == bucket.config


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_a_forked_child_uses_the_parents_filesystem(
    fs: AiobucketFileSystem, bucket: aiobucket.Bucket, backend: Backend
) -> None:
    fs.pipe_file(f"{bucket.name}/before-fork", b"parent")
    read, write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads: fsspec's IO thread
        pid = os.fork()
    if pid == 0:  # the child: fsspec's IO loop and thread are gone; ours must not matter
        code = 1
        try:
            fs.pipe_file(f"{bucket.name}/from-child", fs.cat_file(f"{bucket.name}/before-fork") + b"+child")
            os.write(write, fs.cat_file(f"{bucket.name}/from-child"))
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        said = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert said == b"parent+child"
    # The parent sees the child's write, except in memory, which is per process.
    assert fs.exists(f"{bucket.name}/from-child") is (backend.name != "memory")


# -- verified bytes, signed URLs, create-only puts ---------------------------------------------


def test_whole_reads_are_verified(tmp_path: Path) -> None:
    """A flipped byte at rest fails cat_file, a whole read of an open file and get_file
    (which leaves no file); a ranged read cannot be checked and is not."""
    with aiobucket.config.override({"verified": f"file://{tmp_path}/bucket"}):
        fs = AiobucketFileSystem(skip_instance_cache=True)
        try:
            fs.pipe_file("verified/k", DATA)
            (blob,) = [p for p in (tmp_path / "bucket" / "blobs").rglob("*") if p.is_file()]
            damaged = bytearray(blob.read_bytes())
            damaged[5000] ^= 0x01
            blob.write_bytes(bytes(damaged))
            with pytest.raises(aiobucket.IntegrityError):
                fs.cat_file("verified/k")
            with pytest.raises(aiobucket.IntegrityError), fs.open("verified/k") as f:
                f.read()
            big = os.urandom(2 * 1024 * 1024)  # past read_all's threshold: filled as it arrives
            fs.pipe_file("verified/big", big)
            blob = max(
                (p for p in (tmp_path / "bucket" / "blobs").rglob("*") if p.is_file()),
                key=lambda p: p.stat().st_size,
            )
            damaged = bytearray(blob.read_bytes())
            damaged[1_500_000] ^= 0x01
            blob.write_bytes(bytes(damaged))
            with (
                pytest.raises(aiobucket.IntegrityError),
                fs.open("verified/big", block_size=1024 * 1024) as f,
            ):
                f.read()
            with pytest.raises(aiobucket.IntegrityError):
                fs.cat_file("verified/big")
            with pytest.raises(aiobucket.IntegrityError):
                fs.get_file("verified/k", str(tmp_path / "out"))
            assert not (tmp_path / "out").exists()
            assert fs.cat_file("verified/k", start=0, end=100) == DATA[:100]
        finally:
            fsspec.asyn.sync(fs.loop, aiobucket.aclose)


def test_sign_gives_a_signed_download_url(tmp_path: Path) -> None:
    with aiobucket.config.override({"signed": f"file://{tmp_path}/bucket"}):
        fs = AiobucketFileSystem(skip_instance_cache=True)
        try:
            fs.pipe_file("signed/k", b"k")
            url = fs.sign("aiobucket://signed/k", expiration=60)
            assert url.startswith("http://127.0.0.1:8787/o/signed/k?expires=")
        finally:
            fsspec.asyn.sync(fs.loop, aiobucket.aclose)


def test_put_file_and_open_async_honour_create_only(
    fs: AiobucketFileSystem, bucket: aiobucket.Bucket, tmp_path: Path, create_only: bool
) -> None:
    local = tmp_path / "local.bin"
    local.write_bytes(DATA)
    if not create_only:
        return refused(
            fs, f"{bucket.name}/p", lambda: fs.put_file(str(local), f"{bucket.name}/p", mode="create")
        )
    fs.put_file(str(local), f"{bucket.name}/p", mode="create")
    with pytest.raises(FileExistsError):
        fs.put_file(str(local), f"{bucket.name}/p", mode="create")
    afs = AiobucketFileSystem(buckets=[bucket], asynchronous=True, skip_instance_cache=True)

    async def exclusive() -> None:
        await afs.open_async(f"{bucket.name}/p", "xb")

    with pytest.raises(FileExistsError):
        run(exclusive())
    fs.get(f"{bucket.name}/", str(tmp_path / "copy") + "/", recursive=True)
    assert (tmp_path / "copy" / "p").read_bytes() == DATA


def test_refused_credentials_raise_permission_error(s3_server: S3Server) -> None:
    settings = s3_server.settings(secret_access_key="not-the-secret", key_prefix="fsspec-denied/")
    with aiobucket.config.override({"denied": settings}):
        fs = AiobucketFileSystem(skip_instance_cache=True)
        try:
            with pytest.raises(PermissionError):
                fs.pipe_file("denied/k", b"k")
            with pytest.raises(PermissionError):
                fs.cat_file("denied/k")
        finally:
            fsspec.asyn.sync(fs.loop, aiobucket.aclose)
