"""Local-filesystem backend: what only this backend can get wrong.

Keys that must never touch the filesystem, crash safety under kill -9, atomic
preconditions across processes, no leftover files, a persistent index, error
mapping, and (differentially) the same observable behaviour as memory.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiobucket.config import BucketSettings
from aiobucket.errors import (
    BackendError,
    BucketError,
    InvalidArgument,
    ObjectNotFound,
    PermissionDenied,
    PreconditionFailed,
    RangeNotSatisfiable,
)
from aiobucket.keys import validate_key
from aiobucket.providers import memory
from aiobucket.providers.base import CopyOptions, GetOptions, Provider, PutOptions, new_version_id
from aiobucket.providers.local import LocalProvider, _index, create
from aiobucket.types import BucketConfig, ListEntry, ObjectAttrs, Preconditions

pytestmark = pytest.mark.anyio

OPTS = PutOptions(content_type="application/octet-stream")
MiB = 1024 * 1024


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make(root: Path, versioned: bool = False) -> LocalProvider:
    return create(BucketSettings(url=f"file://{root}"), "b", BucketConfig(versioned=versioned))


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def pre(**kw: Any) -> PutOptions:
    return PutOptions(content_type="application/octet-stream", preconditions=Preconditions(**kw))


async def read(p: Provider, key: str, **kw: Any) -> bytes:
    _, body = await p.get(key, GetOptions(**kw))
    try:
        return b"".join([chunk async for chunk in body])
    finally:
        await body.aclose()


async def entries(it: AsyncIterator[ListEntry]) -> list[ListEntry]:
    return [e async for e in it]


def tree(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


def blob_files(root: Path) -> set[str]:
    return {p.name for p in (root / "blobs").rglob("*") if p.is_file()}


def indexed_blobs(root: Path) -> set[str]:
    with sqlite3.connect(root / "index.sqlite3") as db:
        return {row[0].split("/")[1] for row in db.execute("SELECT blob FROM versions")}


# -- 1. hostile keys never become paths ---------------------------------------------------

_pieces = st.sampled_from(
    ["..", "%2e%2e", "%2E%2E%2F", "..\\..", "\\", "C:\\Windows", "~", "$HOME", "*", "?", "CON", "nul",
     "a" * 300, "é", "e\u0301", "É", "\U0001f600", "\u202e", "\ufeff", "", " ", ".hidden", "...",
     "index.sqlite3", "blobs", "tmp", "%00", "a:b", "|", '"', "<>"]
)  # fmt: skip
_segment = st.one_of(_pieces, st.text(min_size=0, max_size=40), st.lists(_pieces, max_size=3).map("".join))


def _valid(key: str) -> bool:
    try:
        validate_key(key)
    except InvalidArgument:
        return False
    return True


hostile_keys = st.lists(_segment, min_size=1, max_size=5).map("/".join).filter(_valid)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(hostile_keys, min_size=1, max_size=6, unique=True))
def test_hostile_keys_round_trip_and_stay_inside_the_root(keys: list[str]) -> None:
    with tempfile.TemporaryDirectory() as outer_name:
        outer = Path(outer_name)
        root = outer / "root"
        asyncio.run(_hostile(root, keys))
        # Nothing was created beside the root, and nothing inside it is named after a key.
        assert {p.name for p in outer.iterdir()} == {"root"}
        allowed = {"blobs", "tmp", "index.sqlite3", "index.sqlite3-wal", "index.sqlite3-shm"}
        assert {p.name for p in root.iterdir()} <= allowed
        for p in (root / "blobs").rglob("*"):
            assert all(c in "0123456789abcdef" for c in p.name)
        assert list((root / "tmp").iterdir()) == []


async def _hostile(root: Path, keys: list[str]) -> None:
    p = make(root)
    try:
        for i, k in enumerate(keys):
            attrs = await p.put(k, f"{i}:{k}".encode(), OPTS)
            assert attrs.name == k
        listed = [e.name for e in await entries(p.list(""))]
        assert listed == sorted(keys, key=lambda k: k.encode())
        for i, k in enumerate(keys):
            assert await read(p, k) == f"{i}:{k}".encode()
            assert (await p.head(k)).name == k
            assert (await entries(p.list(k)))[0].name == k
        for k in keys:
            await p.delete(k)
            with pytest.raises(ObjectNotFound):
                await p.head(k)
        assert await entries(p.list("")) == []
    finally:
        await p.aclose()


async def test_a_key_and_a_key_below_it_coexist(tmp_path: Path) -> None:
    p = make(tmp_path)
    await p.put("a", b"file", OPTS)
    await p.put("a/b", b"below", OPTS)
    await p.put("A", b"upper", OPTS)  # would collide on a case-insensitive filesystem
    long_key = "/".join(["x" * 250] * 4)  # segments near NAME_MAX, 1003 bytes in all
    await p.put(long_key, b"long", OPTS)
    assert await read(p, "a") == b"file"
    assert await read(p, "a/b") == b"below"
    assert await read(p, "A") == b"upper"
    assert await read(p, long_key) == b"long"
    assert [e.name for e in await entries(p.list(""))] == ["A", "a", "a/b", long_key]
    await p.aclose()


# -- 2. kill -9 crash safety ----------------------------------------------------------------

_CHILD_UPLOAD = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from aiobucket.config import BucketSettings
    from aiobucket.providers import local
    from aiobucket.providers.base import PutOptions
    from aiobucket.types import BucketConfig

    root, mode, parts = sys.argv[1], sys.argv[2], int(sys.argv[3])

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    real_replace = os.replace
    def replace(src, dst):
        if mode == "before-rename":
            die()
        real_replace(src, dst)
        if mode == "after-rename":
            die()
    os.replace = replace

    if mode == "after-commit":  # the first cleanup after a commit unlinks the replaced blob
        from aiobucket.providers.local import _provider
        _provider._discard = lambda *paths: die()

    async def main():
        p = local.create(BucketSettings(url="file://" + root), "b", BucketConfig())
        up = await p.start_multipart("obj", PutOptions(content_type="text/plain"))
        done = []
        for n in range(1, parts + 1):
            done.append(await up.put_part(n, bytes([n % 251]) * (1024 * 1024)))
            print("part", n, flush=True)
        print("completing", flush=True)
        await up.complete(done)
        print("done", flush=True)

    asyncio.run(main())
    """
)


def _new_bytes(parts: int) -> bytes:
    return b"".join(bytes([n % 251]) * MiB for n in range(1, parts + 1))


@pytest.mark.parametrize(
    ("mode", "expect"),
    [
        ("mid-upload", "old"),  # the parent kills it after a few parts
        ("around-complete", "either"),  # the parent kills it as soon as it starts completing
        ("before-rename", "old"),
        ("after-rename", "old"),  # blob in place, index not yet pointing at it
        ("after-commit", "new"),  # index committed, old blob not yet unlinked
    ],
)
def test_kill_9_leaves_old_or_new_never_partial(tmp_path: Path, mode: str, expect: str) -> None:
    old = os.urandom(3 * MiB + 17)
    old_attrs = asyncio.run(_put_once(tmp_path, "obj", old, PutOptions(content_type="application/x-old")))

    parts = 24
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD_UPLOAD, str(tmp_path), mode, str(parts)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    for line in child.stdout:
        if (mode == "mid-upload" and line.startswith("part 5")) or (
            mode == "around-complete" and line.startswith("completing")
        ):
            child.send_signal(signal.SIGKILL)
            break
    child.wait(timeout=120)
    assert child.returncode == -signal.SIGKILL
    asyncio.run(_check_after_kill(tmp_path, old, old_attrs, _new_bytes(parts), expect))


async def _put_once(root: Path, key: str, data: bytes, opts: PutOptions) -> ObjectAttrs:
    p = make(root)
    try:
        return await p.put(key, data, opts)
    finally:
        await p.aclose()


async def _check_after_kill(root: Path, old: bytes, old_attrs: ObjectAttrs, new: bytes, expect: str) -> None:
    fresh = make(root)
    attrs = await fresh.head("obj")
    data = await read(fresh, "obj")
    outcome = "old" if data == old else "new" if data == new else "partial"
    assert outcome != "partial", f"saw {len(data)} bytes"
    if expect != "either":
        assert outcome == expect
    if outcome == "old":
        assert (attrs.etag, attrs.size, attrs.content_type) == (old_attrs.etag, len(old), "application/x-old")
    else:
        assert (attrs.etag, attrs.size, attrs.content_type) == (md5(new), len(new), "text/plain")
    assert [(e.name, e.etag) for e in await entries(fresh.list(""))] == [("obj", attrs.etag)]

    # The debris (a tmp file or an unreferenced blob) is invisible, and later writes work.
    await fresh.put("obj", b"after", OPTS)
    assert await read(fresh, "obj") == b"after"
    await fresh.aclose()


async def test_stale_tmp_files_are_swept_at_open(tmp_path: Path) -> None:
    p = make(tmp_path)
    await p.put("k", b"v", OPTS)
    await p.aclose()
    stale, fresh = tmp_path / "tmp" / "stale.tmp", tmp_path / "tmp" / "fresh.tmp"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"y")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    p = make(tmp_path)
    assert await read(p, "k") == b"v"
    assert not stale.exists()
    assert fresh.exists()  # may belong to an upload in progress in another process
    await p.aclose()


# -- 3. cross-process not_exists race -------------------------------------------------------

_CHILD_RACE = textwrap.dedent(
    """
    import asyncio, os, sys, time
    from aiobucket.config import BucketSettings
    from aiobucket.errors import PreconditionFailed
    from aiobucket.providers.local import create
    from aiobucket.providers.base import PutOptions
    from aiobucket.types import BucketConfig, Preconditions

    root, gate, ident, versioned = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
    opts = PutOptions(content_type="text/plain", preconditions=Preconditions(not_exists=True))

    async def main():
        p = create(BucketSettings(url="file://" + root), "b", BucketConfig(versioned=versioned))
        print("ready", flush=True)
        while not os.path.exists(gate):
            time.sleep(0.001)
        data = ("winner " + ident).encode()
        try:
            if int(ident) % 2:
                await p.put("race", data, opts)
            else:
                up = await p.start_multipart("race", opts)
                part = await up.put_part(1, data)
                try:
                    await up.complete([part])
                except BaseException:
                    await up.abort()
                    raise
        except PreconditionFailed:
            print("lost", flush=True)
        else:
            print("won", flush=True)
        await p.aclose()

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("versioned", [False, True])
def test_not_exists_race_across_processes_has_one_winner(tmp_path: Path, versioned: bool) -> None:
    root, gate = tmp_path / "root", tmp_path / "go"
    n = 8
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD_RACE, str(root), str(gate), str(i), "1" if versioned else "0"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(n)
    ]
    for c in children:
        assert c.stdout is not None
        assert c.stdout.readline().strip() == "ready"
    gate.touch()  # all of them open the (not yet existing) index and write at once
    results = []
    for i, c in enumerate(children):
        out, _ = c.communicate(timeout=120)
        assert c.returncode == 0
        results.append((out.strip(), i))
    winners = [i for r, i in results if r == "won"]
    assert len(winners) == 1, results
    assert sorted(r for r, _ in results) == ["lost"] * (n - 1) + ["won"]

    async def check() -> None:
        p = make(root, versioned)
        assert await read(p, "race") == f"winner {winners[0]}".encode()
        assert len(await entries(p.list("", versions=True))) == 1
        await p.aclose()

    asyncio.run(check())
    assert list((root / "tmp").iterdir()) == []
    assert blob_files(root) == indexed_blobs(root)  # the losers' blobs were unlinked


# -- 4. no leftover files -------------------------------------------------------------------


async def test_abort_and_failed_complete_leave_no_files(tmp_path: Path) -> None:
    p = make(tmp_path)
    await p.put("k", b"old", OPTS)

    up = await p.start_multipart("k", OPTS)
    await up.put_part(1, b"a" * 1000)
    assert len(list((tmp_path / "tmp").iterdir())) == 1
    await up.abort()
    await up.abort()  # idempotent

    up = await p.start_multipart("k", pre(not_exists=True))
    part = await up.put_part(1, b"b" * 1000)
    with pytest.raises(PreconditionFailed):
        await up.complete([part])
    await up.abort()  # what the writer does after a failed complete

    up = await p.start_multipart("k", pre(if_match="0" * 32))
    part = await up.put_part(1, b"c")
    with pytest.raises(PreconditionFailed):
        await up.complete([part])

    with pytest.raises(PreconditionFailed):
        await p.put("k", b"d", pre(not_exists=True))
    with pytest.raises(PreconditionFailed):
        await p.copy(p, "k", "k", CopyOptions(preconditions=Preconditions(not_exists=True)))

    up = await p.start_multipart("other", OPTS)
    with pytest.raises(InvalidArgument):
        await up.put_part(2, b"out of order")
    await up.abort()

    assert await read(p, "k") == b"old"
    assert list((tmp_path / "tmp").iterdir()) == []
    assert blob_files(tmp_path) == indexed_blobs(tmp_path)
    assert len(blob_files(tmp_path)) == 1
    await p.aclose()


@pytest.mark.parametrize("versioned", [False, True])
async def test_overwrites_and_deletes_free_their_blobs(tmp_path: Path, versioned: bool) -> None:
    p = make(tmp_path, versioned)
    for i in range(3):
        await p.put("k", b"v%d" % i, OPTS)
    await p.copy(p, "k", "c", CopyOptions())
    assert len(blob_files(tmp_path)) == (4 if versioned else 2)
    await p.delete("k")
    await p.delete("c")
    if versioned:  # delete markers keep the versions
        assert len(blob_files(tmp_path)) == 4
        for e in await entries(p.list("", versions=True)):
            assert e.version is not None
            await p.delete(e.name, e.version)
    assert blob_files(tmp_path) == indexed_blobs(tmp_path) == set()
    assert await entries(p.list("", versions=True)) == []
    await p.aclose()


# -- 5. the index persists --------------------------------------------------------------------


async def test_a_new_instance_sees_objects_attrs_and_versions(tmp_path: Path) -> None:
    p = make(tmp_path, versioned=True)
    full = PutOptions(
        content_type="image/png",
        cache_control="max-age=60",
        content_disposition='attachment; filename="x.png"',
        metadata={"owner": "ana", "émoji": "\U0001f600"[:0] + "ok"},
    )
    v1 = await p.put("pic", b"one", full)
    v2 = await p.put("pic", b"two", OPTS)
    await p.put("gone", b"x", OPTS)
    await p.delete("gone")
    before = await entries(p.list("", versions=True))
    await p.aclose()

    q = make(tmp_path, versioned=True)
    assert await entries(q.list("", versions=True)) == before
    assert await q.head("pic") == v2
    assert await q.head("pic", v1.version) == v1
    old = await q.head("pic", v1.version)
    assert (old.content_type, old.cache_control, old.content_disposition) == (
        "image/png",
        "max-age=60",
        'attachment; filename="x.png"',
    )
    assert dict(old.metadata) == {"owner": "ana", "émoji": "ok"}
    assert old.last_modified == v1.last_modified
    assert await read(q, "pic", version=v1.version) == b"one"
    with pytest.raises(ObjectNotFound):
        await q.head("gone")
    assert [e.name for e in await entries(q.list(""))] == ["pic"]
    await q.aclose()


_RELEASE_0_SCHEMA = """
CREATE TABLE versions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, version TEXT, size INTEGER NOT NULL,
    etag TEXT NOT NULL, content_type TEXT NOT NULL, cache_control TEXT, content_disposition TEXT,
    metadata TEXT NOT NULL, last_modified TEXT NOT NULL, blob TEXT NOT NULL
);
CREATE INDEX versions_by_key ON versions (key ASC, seq DESC);
CREATE TABLE deleted (key TEXT PRIMARY KEY) WITHOUT ROWID;
"""


def _flip_first_byte(path: Path) -> None:
    with open(path, "r+b") as f:
        first = f.read(1)
        f.seek(0)
        f.write(bytes([first[0] ^ 1]))


async def test_an_index_from_release_0_is_migrated_and_its_rows_still_verified(tmp_path: Path) -> None:
    import aiobucket
    from aiobucket import IntegrityError, config

    data = os.urandom(100_000)
    blob = "ab/ab" + "0" * 30
    (tmp_path / "blobs" / "ab").mkdir(parents=True)
    (tmp_path / "blobs" / blob).write_bytes(data)
    with sqlite3.connect(tmp_path / "index.sqlite3") as db:
        db.executescript(_RELEASE_0_SCHEMA)
        db.execute(
            "INSERT INTO versions (key, version, size, etag, content_type, metadata, last_modified, blob)"
            " VALUES ('old', NULL, ?, ?, 'x/y', '{}', '2024-01-01T00:00:00+00:00', ?)",
            (len(data), md5(data), blob),
        )
    p = make(tmp_path)
    old = await p.head("old")
    assert (old.crc32c, old.md5) == (None, md5(data))  # no CRC32C then; the MD5 etag still vouches
    new = await p.put("new", b"fresh", OPTS)
    assert new.crc32c is not None and await p.head("new") == new
    await p.aclose()
    with sqlite3.connect(tmp_path / "index.sqlite3") as db:
        assert db.execute("PRAGMA user_version").fetchone() == (_index.SCHEMA_VERSION,)
        assert "crc32c" in {row[1] for row in db.execute("PRAGMA table_info(versions)")}

    with config.override({"migrated": f"file://{tmp_path}"}):
        b = aiobucket.Bucket("migrated")
        assert await b.download("old").read() == data
        _flip_first_byte(tmp_path / "blobs" / blob)
        with pytest.raises(IntegrityError, match="md5"):
            await b.download("old").read()
        await aiobucket.aclose()


# -- 6. error mapping -------------------------------------------------------------------------


async def test_root_that_is_a_file_raises_bucket_errors(tmp_path: Path) -> None:
    root = tmp_path / "file"
    root.write_bytes(b"not a directory")
    p = make(root)
    with pytest.raises(BackendError) as info:
        await p.put("k", b"v", OPTS)
    assert isinstance(info.value.__cause__, OSError)
    with pytest.raises(BackendError):
        await p.head("k")
    with pytest.raises(BackendError):
        await p.get("k", GetOptions())
    with pytest.raises(BackendError):
        await p.delete("k")
    with pytest.raises(BackendError):
        await p.start_multipart("k", OPTS)
    with pytest.raises(BackendError):
        await entries(p.list(""))
    with pytest.raises(BackendError):
        await p.copy(p, "k", "j", CopyOptions())
    await p.aclose()


async def test_corrupt_index_and_missing_blob_raise_bucket_errors(tmp_path: Path) -> None:
    p = make(tmp_path)
    await p.put("k", b"v", OPTS)
    await p.aclose()
    for f in (tmp_path / "blobs").rglob("*"):
        if f.is_file():
            f.unlink()
    p = make(tmp_path)
    with pytest.raises(BackendError):
        await p.get("k", GetOptions())
    await p.aclose()

    (tmp_path / "index.sqlite3").write_bytes(b"this is not a database" * 100)
    p = make(tmp_path)
    with pytest.raises(BucketError) as info:
        await p.head("k")
    assert not isinstance(info.value, ObjectNotFound)
    await p.aclose()


_CHILD_PERMS = textwrap.dedent(
    """
    import asyncio, sys
    from aiobucket.config import BucketSettings
    from aiobucket.providers.base import GetOptions, PutOptions
    from aiobucket.providers.local import create
    from aiobucket.types import BucketConfig

    async def main():
        p = create(BucketSettings(url="file://" + sys.argv[1]), "b", BucketConfig())
        ops = {
            "put": lambda: p.put("j", b"v", PutOptions(content_type="text/plain")),
            "multipart": lambda: p.start_multipart("j", PutOptions(content_type="text/plain")),
            "head": lambda: p.head("k"),
            "get": lambda: p.get("k", GetOptions()),
            "delete": lambda: p.delete("k"),
            "list": lambda: p.list("").__anext__(),
        }
        for name, op in ops.items():
            try:
                await op()
                print(name, "ok", "-")
            except Exception as exc:
                import aiobucket.errors as e
                print(name, type(exc).__name__, isinstance(exc, e.BucketError))
        await p.aclose()

    asyncio.run(main())
    """
)


def _run_unprivileged(root: Path) -> dict[str, tuple[str, str]]:
    """Run the child without the capabilities that let root ignore permission bits.

    As root it stays root (the owner of every file here, so the owner bits apply) but
    drops every capability (CAP_DAC_OVERRIDE among them). Switching to 'nobody' instead
    would fail on a checkout under a private directory (/root, or mktemp -d's 0700):
    nobody cannot reach the venv or the sources there.
    """
    cmd = [sys.executable, "-c", _CHILD_PERMS, str(root)]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv to drop capabilities")
        cmd = [setpriv, "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if out.returncode != 0 and out.stderr.startswith("setpriv:"):
        pytest.skip(f"setpriv cannot drop capabilities here: {out.stderr.strip()[-200:]}")
    assert out.returncode == 0, out.stderr
    return {line.split()[0]: (line.split()[1], line.split()[2]) for line in out.stdout.splitlines()}


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX permissions")
def test_unwritable_and_unreadable_roots_raise_permission_denied() -> None:
    base = Path(tempfile.mkdtemp())
    try:
        for name in ("readonly", "closed"):
            asyncio.run(_put_once(base / name, "k", b"v", OPTS))
        dirs = [base / "readonly", *(p for p in (base / "readonly").rglob("*") if p.is_dir())]
        files = [p for p in (base / "readonly").rglob("*") if p.is_file()]
        for d in dirs:
            d.chmod(0o555)
        for f in files:
            f.chmod(0o444)
        (base / "closed").chmod(0)

        readonly = _run_unprivileged(base / "readonly")
        closed = _run_unprivileged(base / "closed")
        for outcome in (readonly, closed):
            assert set(outcome) == {"put", "multipart", "head", "get", "delete", "list"}
            for op, (error, is_bucket_error) in outcome.items():
                assert is_bucket_error == "True", (op, error)  # nothing raw from the OS or SQLite
            # A read-only root refuses reads too: opening the index needs write access.
            assert {op: error for op, (error, _) in outcome.items()} == dict.fromkeys(
                outcome, "PermissionDenied"
            )
    finally:
        for p in [base, *base.rglob("*")]:
            if p.is_dir():
                p.chmod(0o755)
        shutil.rmtree(base)


def test_os_and_sqlite_errors_map_to_bucket_errors() -> None:
    from aiobucket.providers.local._provider import _mapped

    cases: list[tuple[BaseException, type[BucketError]]] = [
        (PermissionError(13, "Permission denied"), PermissionDenied),
        (FileNotFoundError(2, "No such file"), BackendError),
        (OSError(28, "No space left on device"), BackendError),
        (sqlite3.OperationalError("database is locked"), BackendError),
        (sqlite3.DatabaseError("file is not a database"), BackendError),
    ]
    readonly = sqlite3.OperationalError("attempt to write a readonly database")
    readonly.sqlite_errorcode = sqlite3.SQLITE_READONLY_DBMOVED  # type: ignore[attr-defined]
    cases.append((readonly, PermissionDenied))
    for raised, expected in cases:
        with pytest.raises(expected) as info, _mapped("op", "k"):
            raise raised
        assert info.value.__cause__ is raised and info.value.key == "k"
    with pytest.raises(ObjectNotFound), _mapped("op"):
        raise ObjectNotFound("passes through")


# -- reads, copies and the rest of the contract, local specifics ------------------------------


async def test_ranged_reads_and_body_close(tmp_path: Path) -> None:
    p = make(tmp_path)
    data = os.urandom(2 * MiB + 123)
    attrs = await p.put("k", data, OPTS)
    assert attrs.etag == md5(data)
    assert await read(p, "k") == data
    assert await read(p, "k", offset=MiB - 1, length=MiB + 2) == data[MiB - 1 : 2 * MiB + 1]
    assert await read(p, "k", offset=len(data) - 1) == data[-1:]
    assert await read(p, "k", offset=5, length=10**9) == data[5:]
    assert await read(p, "k", length=0) == b""
    with pytest.raises(RangeNotSatisfiable):
        await p.get("k", GetOptions(offset=len(data)))
    with pytest.raises(PreconditionFailed):
        await p.get("k", GetOptions(if_match="0" * 32))
    assert await read(p, "k", if_match=attrs.etag, offset=1, length=1) == data[1:2]

    await p.put("empty", b"", OPTS)
    assert await read(p, "empty") == b""

    # Closing early, twice, and after EOF is fine; chunks are at most 1 MiB.
    _, body = await p.get("k", GetOptions())
    sizes = [len(c) async for c in body]
    assert sizes == [MiB, MiB, 123]
    await body.aclose()
    await body.aclose()
    _, body = await p.get("k", GetOptions())
    await body.aclose()
    assert [c async for c in body] == []
    await p.aclose()


async def test_open_body_keeps_reading_the_old_bytes_across_an_overwrite(tmp_path: Path) -> None:
    p = make(tmp_path)
    old = os.urandom(3 * MiB)
    await p.put("k", old, OPTS)
    _, body = await p.get("k", GetOptions())
    it = body.__aiter__()
    first = await it.__anext__()
    await p.put("k", b"new", OPTS)
    await p.delete("k")
    rest = [c async for c in it]
    await body.aclose()
    assert first + b"".join(rest) == old


async def test_body_is_a_stream_that_resumes_where_it_stopped(tmp_path: Path) -> None:
    p = make(tmp_path)
    data = os.urandom(3 * MiB)
    await p.put("k", data, OPTS)
    _, body = await p.get("k", GetOptions(offset=10, length=2 * MiB))
    it = body.__aiter__()
    first = await it.__anext__()
    await it.aclose()  # the reader stopped iterating; a new iteration continues the stream
    rest = [c async for c in body]
    await body.aclose()
    assert first + b"".join(rest) == data[10 : 10 + 2 * MiB]
    await p.aclose()


@pytest.mark.parametrize("op", ["put", "multipart", "copy", "delete"])
async def test_cancelled_writes_leave_old_or_new_and_no_debris(tmp_path: Path, op: str) -> None:
    """Cancel at ever later points until the write finishes first. After every cancel
    the object is old or new (never missing bytes), and no tmp file or unreferenced
    blob is left: each step runs to completion before the cancel lands."""
    p = make(tmp_path)
    old, new = b"o" * MiB, b"n" * (2 * MiB)
    await p.put("src", new, OPTS)

    async def write() -> None:
        if op == "put":
            await p.put("k", new, OPTS)
        elif op == "copy":
            await p.copy(p, "src", "k", CopyOptions())
        elif op == "delete":
            await p.delete("k")
        else:
            up = await p.start_multipart("k", OPTS)
            try:
                parts = [await up.put_part(1, new[:MiB]), await up.put_part(2, new[MiB:])]
                await up.complete(parts)
            except BaseException:
                await up.abort()
                raise

    cancelled = 0
    for attempt in range(500):
        await p.put("k", old, OPTS)
        task = asyncio.ensure_future(write())
        await asyncio.sleep(attempt * 0.0002)  # only varies where the cancel lands
        if task.done():
            break
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            cancelled += 1
        assert list((tmp_path / "tmp").iterdir()) == []
        assert blob_files(tmp_path) == indexed_blobs(tmp_path)
        try:
            assert await read(p, "k") in (old, new)
        except ObjectNotFound:
            assert op == "delete"
    assert task.done() and task.exception() is None
    assert cancelled > 0
    await p.aclose()


async def test_copy(tmp_path: Path) -> None:
    p = make(tmp_path, versioned=True)
    full = PutOptions(content_type="text/csv", cache_control="no-cache", metadata={"a": "1"})
    v1 = await p.put("src", b"first", full)
    await p.put("src", b"second", OPTS)
    c = await p.copy(p, "src", "dst", CopyOptions(version=v1.version))
    assert (c.name, c.etag, c.size, c.content_type, c.cache_control, dict(c.metadata)) == (
        "dst", v1.etag, 5, "text/csv", "no-cache", {"a": "1"},
    )  # fmt: skip
    assert await read(p, "dst") == b"first"
    r = await p.copy(
        p,
        "src",
        "dst",
        CopyOptions(replace=PutOptions(content_type="x/y"), preconditions=Preconditions(if_match=c.etag)),
    )
    assert (r.content_type, dict(r.metadata), await read(p, "dst")) == ("x/y", {}, b"second")
    with pytest.raises(ObjectNotFound):
        await p.copy(p, "missing", "dst", CopyOptions())
    with pytest.raises(ObjectNotFound):
        await p.copy(p, "src", "dst", CopyOptions(version="nope"))
    await p.aclose()


async def test_sign_url_and_aclose(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import timedelta

    monkeypatch.delenv("AIOBUCKET_DEV_SERVER", raising=False)
    p = make(tmp_path)
    assert isinstance(p, Provider)
    assert p.capabilities.signed_urls and not p.capabilities.parallel_parts
    url = await p.sign_url("a b", "GET", timedelta(hours=1))  # signs for `aiobucket serve`
    assert url.startswith("http://127.0.0.1:8787/o/b/a%20b?expires=") and "&signature=" in url
    assert (tmp_path / "signing.key").stat().st_mode & 0o777 == 0o600
    assert await p.sign_url("a b", "PUT", timedelta(hours=1)) != url
    await p.aclose()  # never opened
    await p.put("k", b"v", OPTS)
    await p.aclose()
    await p.aclose()


async def test_public_url_does_no_io_and_a_public_bucket_is_marked_when_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """public_url() is synchronous, so it touches nothing; the provider records the
    declaration (for ``aiobucket serve``) when it opens the bucket, in a worker thread."""
    from aiobucket import Bucket, aclose, config
    from aiobucket.providers.local import _signing

    async def write(bucket: Bucket) -> None:
        async with bucket.upload("k") as w:
            await w.write(b"v")

    monkeypatch.delenv("AIOBUCKET_DEV_SERVER", raising=False)
    root = tmp_path / "pub"
    with config.override({"pub": f"file://{root}", "priv": f"file://{tmp_path / 'priv'}"}):
        try:
            pub = Bucket("pub", BucketConfig(public=True))
            assert pub.public_url("a b") == "http://127.0.0.1:8787/o/pub/a%20b"
            assert tree(tmp_path) == set()  # not even the root
            assert not await pub.exists("k")  # a read of a bucket never written creates nothing
            assert tree(tmp_path) == set()
            await write(pub)
            assert _signing.is_marked_public(root)
            assert config.public_reason("pub") == "declared BucketConfig(public=True) (marker file)"
            await write(Bucket("priv"))  # a private bucket gets no marker
            assert not _signing.is_marked_public(tmp_path / "priv")
            assert config.public_reason("priv") == ""
        finally:
            await aclose()


def test_factory_rejects_relative_urls() -> None:
    with pytest.raises(InvalidArgument):
        create(BucketSettings(url="file://relative/path"), "b", BucketConfig())


async def test_listing_pages_through_many_keys(tmp_path: Path) -> None:
    p = make(tmp_path, versioned=True)
    keys = [f"d{i % 3}/k{i:05d}" for i in range(2500)]
    for k in keys[:10]:  # a few keys with two versions, straddling page boundaries
        await p.put(k, b"old", OPTS)
    await p.put("seed", b"x", OPTS)
    await p.aclose()
    # Bulk-load the rest straight into the index (sharing one blob): the paging is under test.
    with sqlite3.connect(tmp_path / "index.sqlite3") as db:
        row = db.execute("SELECT * FROM versions WHERE key = 'seed'").fetchone()
        db.executemany(
            _index.INSERT,
            [(k, new_version_id(), *row[3:]) for k in keys],
        )
        db.execute("DELETE FROM versions WHERE key = 'seed'")
    p = make(tmp_path, versioned=True)
    ordered = sorted(keys)
    assert [e.name for e in await entries(p.list(""))] == ordered
    assert [e.name for e in await entries(p.list("d1/", limit=7))] == [
        k for k in ordered if k.startswith("d1/")
    ]
    got = await entries(p.list("", versions=True, limit=3))
    assert len(got) == 2510
    assert [(e.name, e.is_latest) for e in got[:2]] == [(ordered[0], True), (ordered[0], False)]
    assert [e.name for e in await entries(p.list("", delimiter="/"))] == ["d0/", "d1/", "d2/"]
    assert (await entries(p.list("", start_after="d1/k01000")))[0].name == "d1/k01003"
    await p.aclose()


# -- differential: the same operations give the same answers as memory.py ---------------------

_KEYS = ["a", "a/", "a/b", "a/b/c", "a/c", "a//d", "ab", "b", "é", "a/\U0001f600", "\U0001f600", "z~"]
_PREFIXES = ["", "a", "a/", "a/b", "b", "\U0001f600", "zz"]

_op = st.one_of(
    st.tuples(
        st.just("put"), st.sampled_from(_KEYS), st.binary(max_size=20), st.sampled_from([None, "ne", "im"])
    ),
    st.tuples(st.just("mpu"), st.sampled_from(_KEYS), st.lists(st.binary(max_size=8), max_size=3)),
    st.tuples(st.just("del"), st.sampled_from(_KEYS), st.integers(min_value=-1, max_value=6)),
    st.tuples(st.just("copy"), st.sampled_from(_KEYS), st.sampled_from(_KEYS), st.booleans()),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.booleans(), st.lists(_op, max_size=25))
def test_behaves_like_the_memory_backend(versioned: bool, ops: list[tuple[Any, ...]]) -> None:
    with tempfile.TemporaryDirectory() as root:
        asyncio.run(_differential(Path(root), versioned, ops))


async def _outcome(coro: Any) -> Any:
    try:
        return ("ok", await coro)
    except BucketError as exc:
        return ("err", type(exc).__name__)


async def _differential(root: Path, versioned: bool, ops: list[tuple[Any, ...]]) -> None:
    mem = memory.create(
        BucketSettings(url=f"memory://m?ns={os.urandom(8).hex()}"), "m", BucketConfig(versioned=versioned)
    )
    loc = make(root, versioned)
    to_mem: dict[str | None, str | None] = {None: None}  # local version id -> memory version id
    written: list[tuple[str | None, str | None]] = []  # (memory, local) version ids

    def norm(x: Any, is_local: bool) -> Any:
        if not hasattr(x, "etag"):
            return x
        version = to_mem.get(x.version, "?") if is_local else x.version
        if isinstance(x, ListEntry):
            return (x.name, x.size, x.etag, version, x.is_latest, x.is_prefix)
        return (x.name, x.size, x.etag, version, x.content_type, dict(x.metadata))  # ObjectAttrs

    async def both(fn: Any) -> Any:
        m, lo = await _outcome(fn(mem, False)), await _outcome(fn(loc, True))
        if m[0] == lo[0] == "ok" and getattr(m[1], "version", None) is not None:
            to_mem[lo[1].version] = m[1].version
            written.append((m[1].version, lo[1].version))
        assert (m[0], norm(m[1], False)) == (lo[0], norm(lo[1], True))
        return m

    for op in ops:
        if op[0] == "put":
            _, key, data, cond = op

            async def put(
                p: Any, is_local: bool, key: str = key, data: bytes = data, cond: Any = cond
            ) -> Any:
                pc = Preconditions()
                if cond == "ne":
                    pc = Preconditions(not_exists=True)
                elif cond == "im":
                    try:
                        pc = Preconditions(if_match=(await p.head(key)).etag)
                    except ObjectNotFound:
                        pc = Preconditions(if_match="f" * 32)
                o = PutOptions(content_type="text/plain", metadata={"n": str(len(data))}, preconditions=pc)
                return await p.put(key, data, o)

            await both(put)
        elif op[0] == "mpu":
            _, key, chunks = op

            async def mpu(p: Any, is_local: bool, key: str = key, chunks: list[bytes] = chunks) -> Any:
                up = await p.start_multipart(key, OPTS)
                parts = [await up.put_part(i + 1, c) for i, c in enumerate(chunks)]
                return await up.complete(parts)

            await both(mpu)
        elif op[0] == "del":
            _, key, which = op
            pair = written[which] if 0 <= which < len(written) else (None, None)

            async def delete(p: Any, is_local: bool, key: str = key, pair: Any = pair) -> Any:
                return await p.delete(key, pair[1] if is_local else pair[0])

            await both(delete)
        else:
            _, src, dst, ne = op

            async def copy(p: Any, is_local: bool, src: str = src, dst: str = dst, ne: bool = ne) -> Any:
                return await p.copy(p, src, dst, CopyOptions(preconditions=Preconditions(not_exists=ne)))

            await both(copy)

    for prefix in _PREFIXES:
        for delimiter in (None, "/", "b"):
            for vers in (False, True):
                for start_after in (None, "a/b", "a"):
                    for limit in (None, 1, 2):

                        async def lst(p: Any, is_local: bool, **kw: Any) -> Any:
                            return [norm(e, is_local) for e in await entries(p.list(**kw))]

                        kw = dict(
                            prefix=prefix,
                            delimiter=delimiter,
                            versions=vers,
                            start_after=start_after,
                            limit=limit,
                        )
                        assert await lst(mem, False, **kw) == await lst(loc, True, **kw), kw
    for key in _KEYS:
        await both(lambda p, _l, key=key: p.head(key))
        await both(lambda p, _l, key=key: read(p, key))
    await loc.aclose()
    if not (root / "index.sqlite3").exists():  # only reads: they create nothing, not even the index
        assert os.listdir(root) == []
        return
    assert blob_files(root) == indexed_blobs(root)
    assert list((root / "tmp").iterdir()) == []


async def test_create_only_url_needs_a_backend_that_refuses_overwrites(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backend declaring conditional_put=False (an S3-compatible store that ignores
    If-None-Match, say) gets NotSupported before anything is signed: its URL would not be
    create-only. The local provider stands in, its declaration changed."""
    import dataclasses

    import aiobucket
    from aiobucket import config
    from aiobucket.providers.local import _provider as local

    caps = dataclasses.replace(local.CAPABILITIES, conditional_put=False)
    monkeypatch.setattr(local.LocalProvider, "capabilities", caps)
    with config.override({"plain": {"url": f"file://{tmp_path}"}}):
        b = aiobucket.Bucket("plain")
        with pytest.raises(aiobucket.NotSupported, match="conditional_put"):
            await b.signed_upload_url("k", preconditions=aiobucket.Preconditions(not_exists=True))
        assert "signature=" in await b.signed_upload_url("k")  # a plain one is fine
        await aiobucket.aclose()
