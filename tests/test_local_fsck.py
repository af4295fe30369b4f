"""Debris of killed writes is reclaimed: by the sweep at open, and by ``aiobucket fsck``.

Every crash here is real: a child process is killed with SIGKILL at the exact
step named (after the blob's rename and before the index commit, after the
commit and before the old blob's unlink, in the middle of an upload).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiobucket import config
from aiobucket.cli import main
from aiobucket.config import BucketSettings
from aiobucket.errors import BackendError, ObjectNotFound
from aiobucket.providers.base import GetOptions, PutOptions
from aiobucket.providers.local import LocalProvider, create
from aiobucket.providers.local._fsck import MAX_AGE, fsck
from aiobucket.types import BucketConfig

MiB = 1024 * 1024


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


OPTS = PutOptions(content_type="application/octet-stream")

_CHILD = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from aiobucket.config import BucketSettings
    from aiobucket.providers.base import PutOptions
    from aiobucket.providers.local import _provider
    from aiobucket.types import BucketConfig

    root, mode, key = sys.argv[1], sys.argv[2], sys.argv[3]

    def die(*args):
        os.kill(os.getpid(), signal.SIGKILL)

    if mode == "after-rename":  # the blob is in place, the index does not name it yet
        real_replace = os.replace
        os.replace = lambda src, dst: (real_replace(src, dst), die())
    elif mode in ("after-commit", "after-delete"):  # committed, the dropped blob not yet unlinked
        _provider._discard = die

    async def main():
        p = _provider.create(BucketSettings(url="file://" + root), "b", BucketConfig())
        if mode == "after-delete":
            await p.delete(key)
        else:
            up = await p.start_multipart(key, PutOptions(content_type="text/plain"))
            parts = []
            for n in range(1, 5):
                parts.append(await up.put_part(n, bytes([n]) * (1024 * 1024)))
                if mode == "mid-upload" and n == 2:
                    print("parts", flush=True)
                    await asyncio.sleep(3600)
            await up.complete(parts)
        print("finished", flush=True)

    asyncio.run(main())
    """
)


def crash(root: Path, mode: str, key: str) -> None:
    """Run a write (or delete) of ``key`` in a child and SIGKILL it at ``mode``."""
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(root), mode, key], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    if mode == "mid-upload":
        assert child.stdout.readline() == "parts\n"
        child.kill()
    child.wait(timeout=120)
    assert child.returncode == -signal.SIGKILL, "the child must die at the chosen step"


def make(root: Path) -> LocalProvider:
    return create(BucketSettings(url=f"file://{root}"), "b", BucketConfig())


def blob_files(root: Path) -> set[str]:
    return {f"{p.parent.name}/{p.name}" for p in (root / "blobs").glob("*/*")}


def indexed_blobs(root: Path) -> set[str]:
    with sqlite3.connect(root / "index.sqlite3") as db:
        return {row[0] for row in db.execute("SELECT blob FROM versions")}


def tmp_files(root: Path) -> list[Path]:
    return sorted((root / "tmp").iterdir())


def age(paths: list[Path], seconds: float = 2 * MAX_AGE) -> None:
    then = time.time() - seconds
    for p in paths:
        os.utime(p, (then, then))


def snapshot(root: Path) -> tuple[dict[str, int], list[tuple[object, ...]]]:
    files = {
        str(p.relative_to(root)): p.stat().st_size
        for p in root.rglob("*")
        if p.is_file() and "sqlite3" not in p.name
    }
    with sqlite3.connect(root / "index.sqlite3") as db:
        rows = db.execute("SELECT * FROM versions ORDER BY seq").fetchall()
    return files, rows


async def put(root: Path, key: str, data: bytes) -> None:
    p = make(root)
    try:
        await p.put(key, data, OPTS)
    finally:
        await p.aclose()


async def read(root: Path, key: str) -> bytes:
    p = make(root)
    try:
        _, body = await p.get(key, GetOptions())
        try:
            return b"".join([c async for c in body])
        finally:
            await body.aclose()
    finally:
        await p.aclose()


# -- the sweep at open ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "expect"), [("after-rename", "old"), ("after-commit", "new"), ("after-delete", None)]
)
def test_the_sweep_reclaims_what_a_killed_write_orphaned(
    tmp_path: Path, mode: str, expect: str | None
) -> None:
    old = os.urandom(MiB + 3)
    asyncio.run(put(tmp_path, "obj", old))
    crash(tmp_path, mode, "obj")

    orphans = blob_files(tmp_path) - indexed_blobs(tmp_path)
    assert len(orphans) == 1, "the crash left exactly one unreferenced blob"
    journals = tmp_files(tmp_path)
    assert [p.suffix for p in journals] == [".orphans"]
    assert orphans <= set(journals[0].read_text().split())

    # A young journal may belong to a write in progress elsewhere: it is left alone.
    asyncio.run(read(tmp_path, "obj") if expect else put(tmp_path, "other", b"x"))
    assert orphans <= blob_files(tmp_path) and tmp_files(tmp_path) == journals

    age(journals)
    new = b"".join(bytes([n]) * MiB for n in range(1, 5))
    if expect is None:
        with pytest.raises(ObjectNotFound):
            asyncio.run(read(tmp_path, "obj"))
    else:
        assert asyncio.run(read(tmp_path, "obj")) == (old if expect == "old" else new)
    assert blob_files(tmp_path) == indexed_blobs(tmp_path)
    assert tmp_files(tmp_path) == []


@pytest.mark.anyio
async def test_a_sweep_between_rename_and_commit_fails_the_write_not_the_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If another process's sweep (or fsck) removes a blob before its row commits, the
    write fails: no row ever names a missing blob."""
    p = make(tmp_path)
    await p.put("k", b"old", OPTS)
    real_replace = os.replace

    def replace_then_sweep(src: str | Path, dst: str | Path) -> None:
        real_replace(src, dst)
        if "blobs" in Path(dst).parts:
            os.unlink(dst)

    monkeypatch.setattr(os, "replace", replace_then_sweep)
    with pytest.raises(BackendError, match="vanished before the commit"):
        await p.put("k", b"new", OPTS)
    monkeypatch.undo()
    _, body = await p.get("k", GetOptions())
    assert b"".join([c async for c in body]) == b"old"
    await body.aclose()
    await p.aclose()
    assert blob_files(tmp_path) == indexed_blobs(tmp_path)
    assert tmp_files(tmp_path) == []


# -- aiobucket fsck ---------------------------------------------------------------------------


@pytest.fixture
def crashed(tmp_path: Path) -> Iterator[Path]:
    """A bucket after two killed writes and a blob lost behind the library's back."""
    root = tmp_path / "crashed"
    for key in ("keep", "lost", "obj"):
        asyncio.run(put(root, key, key.encode() * 1000))
    crash(root, "after-rename", "obj")  # an orphan blob and its journal
    crash(root, "mid-upload", "big")  # a tmp file
    with sqlite3.connect(root / "index.sqlite3") as db:
        (lost,) = db.execute("SELECT blob FROM versions WHERE key = 'lost'").fetchone()
    (root / "blobs" / lost).unlink()
    with config.override({"crashed": f"file://{root}", "mem": "memory://m"}):
        yield root


def fsck_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    status = main(["fsck", *args])
    out = capsys.readouterr()
    return status, out.out + out.err


def test_fsck_reports_with_dry_run_and_repairs_without(
    crashed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = crashed
    before = snapshot(root)
    orphan = (blob_files(root) - indexed_blobs(root)).pop()

    # Default ageing: the fresh debris may belong to writes in progress; the lost blob is a fact.
    status, out = fsck_cli(capsys, "crashed", "--dry-run")
    assert status == 1
    assert "found index row without its blob: key 'lost'" in out
    assert f"skipped blobs/{orphan}" in out and out.count("skipped tmp/") == 2
    assert "dry run: 1 problem(s) found" in out
    assert snapshot(root) == before

    status, out = fsck_cli(capsys, "crashed", "--dry-run", "--min-age", "0", "--json")
    assert status == 1
    report = json.loads(out)
    assert [m["key"] for m in report["missing_blobs"]] == ["lost"]
    assert [o["blob"] for o in report["orphan_blobs"]] == [orphan]
    assert sorted(Path(t["path"]).suffix for t in report["leftover_tmp"]) == [".orphans", ".tmp"]
    assert report["consistent"] is False and report["in_progress"] == []
    assert snapshot(root) == before

    status, out = fsck_cli(capsys, "crashed", "--min-age", "0")
    assert status == 0, out
    assert "removed unreferenced blob" in out and "4 problem(s) repaired" in out
    assert blob_files(root) == indexed_blobs(root)
    assert tmp_files(root) == []
    assert asyncio.run(read(root, "obj")) == b"obj" * 1000
    assert asyncio.run(read(root, "keep")) == b"keep" * 1000
    with pytest.raises(ObjectNotFound):
        asyncio.run(read(root, "lost"))

    assert fsck_cli(capsys, "crashed") == (0, "0 problem(s) repaired (0 bytes reclaimed)\n")


def test_fsck_without_min_age_keeps_young_debris(crashed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out = fsck_cli(capsys, "crashed")
    assert status == 0 and "1 problem(s) repaired" in out  # only the row without its blob
    assert len(tmp_files(crashed)) == 2 and len(blob_files(crashed) - indexed_blobs(crashed)) == 1
    age(tmp_files(crashed))
    orphan = (blob_files(crashed) - indexed_blobs(crashed)).pop()
    age([crashed / "blobs" / orphan])
    status, out = fsck_cli(capsys, "crashed")
    assert status == 0 and "3 problem(s) repaired" in out
    assert blob_files(crashed) == indexed_blobs(crashed) and tmp_files(crashed) == []


def test_fsck_reports_a_size_mismatch_and_never_repairs_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(put(tmp_path, "k", b"0123456789"))
    (blob,) = indexed_blobs(tmp_path)
    with open(tmp_path / "blobs" / blob, "ab") as f:
        f.write(b"!")
    report = fsck(tmp_path)
    assert report.size_mismatches == [("k", None, blob, 10, 11)]
    assert not report.consistent
    assert "the index says 10 bytes, the file has 11" in "\n".join(report.lines())
    assert (tmp_path / "blobs" / blob).read_bytes() == b"0123456789!"


def test_fsck_refuses_what_is_not_a_local_bucket(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with config.override({"mem": "memory://m", "nowhere": f"file://{tmp_path}/nowhere"}):
        status, out = fsck_cli(capsys, "mem")
        assert status == 1 and "fsck works on local buckets (file://)" in out and "'mem'" in out
        status, out = fsck_cli(capsys, "nowhere")
        assert status == 1 and "no local bucket at" in out
        assert not (tmp_path / "nowhere").exists()  # fsck creates nothing
        status, out = fsck_cli(capsys, "nowhere", "--min-age", "-1")
        assert status == 1 and "--min-age" in out
