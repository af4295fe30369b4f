"""Local filesystem backend: immutable blob files plus a SQLite index.

Keys never become paths (S3 allows both "a" and "a/b", names may exceed 255
bytes, some filesystems fold case), so the layout under the root is::

    blobs/<xx>/<id>    object bytes, never modified once renamed into place
    tmp/               uploads in progress
    index.sqlite3      one row per (key, version) plus per-key delete markers

A write goes tmp file -> fsync -> rename into blobs/ -> fsync dir -> one
``BEGIN IMMEDIATE`` transaction that checks preconditions and swaps the index
row. The commit is the only point where an object changes, so a crash leaves
the old object or the new one; the leftovers (a tmp file or an unreferenced
blob) are invisible. Readers open the blob file, so a later unlink by an
overwrite cannot cut their stream short. Versioning follows memory.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import urlsplit

import aiofiles
import anyio.to_thread
from aiofiles.threadpool.binary import AsyncBufferedIOBase, AsyncBufferedReader

from ..._aio import run_to_completion
from ...errors import (
    BackendError,
    BucketError,
    InvalidArgument,
    NotSupported,
    ObjectNotFound,
    PermissionDenied,
)
from ...types import BucketConfig, ListEntry, ObjectAttrs, UploadForm
from ..base import (
    Capabilities,
    CopyOptions,
    GetOptions,
    Part,
    PartOrder,
    PostPolicy,
    Provider,
    PutOptions,
    check_preconditions,
    check_read,
    delete_each,
    new_version_id,
    put_options_from,
)
from . import _signing

if TYPE_CHECKING:
    from ...config import BucketSettings

T = TypeVar("T")
CHUNK = 1024 * 1024
PAGE = 1000
TMP_MAX_AGE = 3600.0  # seconds an idle tmp file may sit before the open-time sweep removes it
CAPABILITIES = Capabilities(signed_urls=True, parallel_parts=False, min_part_size=1)
INDEX = "index.sqlite3"  # its presence is what makes a directory a bucket
OPTIONS = ("dev_server_url", "public", "versioned")
"""Config options of file:// buckets: the dev server's URL for signed and public URLs, and
``public`` / ``versioned``, which tell the CLI and ``aiobucket serve`` (they cannot see the
code's BucketConfig) how the code declares the bucket."""


def is_bucket(root: Path) -> bool:
    """Whether ``root`` holds a local bucket (one that has been written to)."""
    return (root / INDEX).is_file()


def root_of(url: str) -> Path:
    """The root directory a ``file:///abs/path`` URL names (the path as written: not unquoted)."""
    return Path(urlsplit(url).path)


class _Missing(Exception):
    """A read found no bucket at the root: it answers "nothing there" and creates nothing."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- write order: the newest row of a key is current
    key TEXT NOT NULL,
    version TEXT,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    content_type TEXT NOT NULL,
    cache_control TEXT,
    content_disposition TEXT,
    metadata TEXT NOT NULL,
    last_modified TEXT NOT NULL,
    blob TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS versions_by_key ON versions (key ASC, seq DESC);
CREATE TABLE IF NOT EXISTS deleted (key TEXT PRIMARY KEY) WITHOUT ROWID;
"""
_COLS = (
    "key, version, size, etag, content_type, cache_control, content_disposition,"
    " metadata, last_modified, blob, seq"
)
_NEWEST = "NOT EXISTS (SELECT 1 FROM versions n WHERE n.key = o.key AND n.seq > o.seq)"
_LIVE = "NOT EXISTS (SELECT 1 FROM deleted d WHERE d.key = o.key)"


def _attrs(row: tuple[Any, ...]) -> ObjectAttrs:
    return ObjectAttrs(
        name=row[0], version=row[1], size=row[2], etag=row[3], content_type=row[4],
        cache_control=row[5], content_disposition=row[6], metadata=json.loads(row[7]),
        last_modified=datetime.fromisoformat(row[8]),
    )  # fmt: skip


def _fetch(sql: str, args: dict[str, Any], db: sqlite3.Connection) -> list[Any]:
    return db.execute(sql, args).fetchall()


def _upper(prefix: str) -> str | None:
    """The least string above every string starting with ``prefix`` (code point order = UTF-8 order)."""
    while prefix:
        nxt = ord(prefix[-1]) + 1
        if nxt <= 0x10FFFF:
            return prefix[:-1] + chr(0xE000 if nxt == 0xD800 else nxt)  # surrogates cannot occur
        prefix = prefix[:-1]
    return None


@contextlib.contextmanager
def _mapped(what: str, key: str | None = None) -> Iterator[None]:
    """Nothing from the OS or SQLite escapes unmapped."""
    try:
        yield
    except BucketError:
        raise
    except PermissionError as exc:
        raise PermissionDenied(f"{what}: {exc}", key=key) from exc
    except OSError as exc:
        raise BackendError(f"{what}: {exc}", key=key) from exc
    except sqlite3.Error as exc:
        code = getattr(exc, "sqlite_errorcode", None) or 0
        if code & 0xFF in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM, sqlite3.SQLITE_AUTH):
            raise PermissionDenied(f"{what}: index: {exc}", key=key) from exc
        raise BackendError(f"{what}: index: {exc}", key=key) from exc


def _discard(*paths: Path) -> None:
    # Cleanup path: must not fail and must not await (it runs while cancelled too).
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Body:
    def __init__(self, fh: AsyncBufferedReader, offset: int, length: int, key: str) -> None:
        self._fh = fh
        self._pos = offset
        self._left = length
        self._key = key
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        # A stream: iterating again continues where the last iteration stopped.
        with _mapped("read failed", self._key):
            if self._left > 0 and not self._closed:
                await self._fh.seek(self._pos)
            while self._left > 0 and not self._closed:
                chunk = await self._fh.read(min(CHUNK, self._left))
                if not chunk:
                    raise BackendError("blob file is shorter than its index entry", key=self._key)
                self._pos += len(chunk)
                self._left -= len(chunk)
                yield chunk

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            with _mapped("close failed", self._key):
                await self._fh.close()


class _Upload:
    """Parts arrive in order (parallel_parts=False), so they append to one tmp file.

    Each step runs to completion even if the caller is cancelled (the cancel is
    delivered afterwards), so cleanup never races a worker thread still writing.
    """

    def __init__(self, provider: LocalProvider, key: str, opts: PutOptions, tmp: Path) -> None:
        self._p = provider
        self._key = key
        self._opts = opts
        self._tmp = tmp
        self._fh: AsyncBufferedIOBase | None = None
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._size = 0
        self._order = PartOrder()
        self._done = False

    async def _open(self) -> None:
        with _mapped("cannot start the upload", self._key):
            self._fh = await aiofiles.open(self._tmp, "xb")

    async def _append(self, data: bytes | bytearray) -> str:
        assert self._fh is not None
        # Write and hash at once, in two worker threads (hashlib releases the GIL on
        # large buffers). Only the running object MD5 is kept: parts need no etag here.
        with _mapped("write failed", self._key):
            await asyncio.gather(self._fh.write(data), anyio.to_thread.run_sync(self._md5.update, data))
        self._size += len(data)
        return f"part-{self._order.next - 1}"

    async def put_part(self, number: int, data: bytes | bytearray) -> Part:
        if self._done or self._fh is None:
            raise InvalidArgument("the upload is already finished", key=self._key)
        self._order.take(number)
        return Part(number, await run_to_completion(self._append(data)), len(data))

    async def _finish(self) -> ObjectAttrs:
        fh, self._fh = self._fh, None
        assert fh is not None
        try:
            with _mapped("upload failed", self._key):
                try:
                    await fh.flush()
                    await anyio.to_thread.run_sync(os.fsync, fh.fileno())
                finally:
                    await fh.close()
            return await self._p._commit_tmp(
                self._tmp, self._key, self._opts, self._md5.hexdigest(), self._size
            )
        finally:
            _discard(self._tmp)  # already gone after a successful rename

    async def complete(self, parts: list[Part]) -> ObjectAttrs:
        if self._done or self._fh is None:
            raise InvalidArgument("the upload is already finished", key=self._key)
        self._done = True
        return await run_to_completion(self._finish())

    async def _drop(self) -> None:
        fh, self._fh = self._fh, None
        try:
            if fh is not None:
                with contextlib.suppress(OSError):
                    await fh.close()
        finally:
            _discard(self._tmp)

    async def abort(self) -> None:
        self._done = True
        await run_to_completion(self._drop())


class LocalProvider:
    capabilities = CAPABILITIES

    def __init__(
        self,
        root: Path,
        versioned: bool,
        *,
        name: str | None = None,
        options: Mapping[str, object] | None = None,
    ) -> None:
        self.root = root
        self.versioned = versioned
        self.name = name or root.name  # the bucket name, for signed URLs
        self._options: Mapping[str, object] = options or {}
        self._blobs = root / "blobs"
        self._tmpdir = root / "tmp"
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    # -- index access: one connection, used from worker threads under a lock --

    def _connect(self) -> sqlite3.Connection:
        for d in (self.root, self._blobs, self._tmpdir):
            d.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves. The connection is shared
        # by worker threads, serialised by self._lock.
        db = sqlite3.connect(self.root / INDEX, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA busy_timeout = 30000")  # wait for other processes' write transactions
            for attempt in range(100):  # switching to WAL takes a lock the busy handler may not wait for
                try:
                    db.execute("PRAGMA journal_mode = WAL")
                    break
                except sqlite3.OperationalError as exc:
                    busy = (exc.sqlite_errorcode & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
                    if not busy or attempt == 99:
                        raise
                    time.sleep(0.05)
            db.execute("PRAGMA synchronous = FULL")  # blobs are fsynced; so is the row naming them
            db.executescript("BEGIN IMMEDIATE;" + _SCHEMA + "COMMIT;")
        except BaseException:
            db.close()
            raise
        self._sweep_tmp()
        return db

    def _sweep_tmp(self) -> None:
        """Best effort: remove uploads abandoned by crashed processes."""
        cutoff = time.time() - TMP_MAX_AGE
        with contextlib.suppress(OSError), os.scandir(self._tmpdir) as it:
            for entry in it:
                with contextlib.suppress(OSError):
                    if entry.stat().st_mtime < cutoff:
                        os.unlink(entry.path)

    def _locked(self, fn: Callable[[sqlite3.Connection], T], *, read: bool = False) -> T:
        with self._lock:
            if self._db is None:
                if read and self._absent():
                    raise _Missing  # reads never create the bucket: a misspelt name stays a typo
                self._db = self._connect()
            return fn(self._db)

    def _absent(self) -> bool:
        """No bucket here yet. A root that is not a directory at all is not "absent" but
        broken: connecting reports it as an error."""
        return not is_bucket(self.root) and (self.root.is_dir() or not self.root.exists())

    async def _index(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await anyio.to_thread.run_sync(self._locked, fn)

    async def _read_index(self, fn: Callable[[sqlite3.Connection], T], missing: T) -> T:
        """Like _index, for reads: ``missing`` when the bucket was never written."""
        try:
            return await anyio.to_thread.run_sync(functools.partial(self._locked, fn, read=True))
        except _Missing:
            return missing

    def _tx(self, fn: Callable[[sqlite3.Connection], list[str]]) -> None:
        """Run ``fn`` as one write transaction, then unlink the blobs it returned.

        Runs in a worker thread from start to end: a cancelled caller stops
        waiting but cannot interrupt it between the commit and the cleanup.
        """

        def run(db: sqlite3.Connection) -> list[str]:
            db.execute("BEGIN IMMEDIATE")  # takes the write lock up front: checks and writes are atomic
            try:
                result = fn(db)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            return result

        # Nothing refers to these any more; failing to unlink only leaves invisible garbage.
        _discard(*(self._blobs / b for b in self._locked(run)))

    def _find(self, db: sqlite3.Connection, key: str, version: str | None) -> tuple[Any, ...] | None:
        if version is None:
            sql = f"SELECT {_COLS} FROM versions o WHERE key = ? AND {_LIVE} ORDER BY seq DESC LIMIT 1"
            row = db.execute(sql, (key,)).fetchone()
        else:
            sql = f"SELECT {_COLS} FROM versions o WHERE key = ? AND version = ?"
            row = db.execute(sql, (key, version)).fetchone()
        return tuple(row) if row is not None else None

    async def _lookup(self, key: str, version: str | None) -> tuple[Any, ...]:
        row = await self._read_index(lambda db: self._find(db, key, version), None)
        if row is None:
            raise ObjectNotFound(
                "object not found" if version is None else "object version not found",
                key=key,
                version=version,
            )
        return row

    # -- the write path --

    async def _commit_tmp(self, tmp: Path, key: str, opts: PutOptions, etag: str, size: int) -> ObjectAttrs:
        """Rename a complete, fsynced tmp file into blobs/ and point the index at it."""
        blob_id = secrets.token_hex(16)
        blob = f"{blob_id[:2]}/{blob_id}"
        path = self._blobs / blob

        def place() -> None:
            try:
                path.parent.mkdir()
                _fsync_dir(self._blobs)  # the new fan-out directory must survive a crash too
            except FileExistsError:
                pass
            os.replace(tmp, path)
            _fsync_dir(path.parent)

        now = datetime.now(UTC)
        attrs = ObjectAttrs(
            name=key, size=size, etag=etag, content_type=opts.content_type,
            version=new_version_id() if self.versioned else None,
            cache_control=opts.cache_control, content_disposition=opts.content_disposition,
            metadata=dict(opts.metadata), last_modified=now,
        )  # fmt: skip

        def commit(db: sqlite3.Connection) -> list[str]:
            cur = self._find(db, key, None)
            check_preconditions(_attrs(cur) if cur else None, opts.preconditions, key)
            old: list[str] = []
            if not self.versioned:
                old = [r[0] for r in db.execute("SELECT blob FROM versions WHERE key = ?", (key,))]
                db.execute("DELETE FROM versions WHERE key = ?", (key,))
            db.execute(
                "INSERT INTO versions (key, version, size, etag, content_type, cache_control,"
                " content_disposition, metadata, last_modified, blob) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (key, attrs.version, size, etag, attrs.content_type, attrs.cache_control,
                 attrs.content_disposition, json.dumps(dict(attrs.metadata)),
                 now.isoformat(), blob),
            )  # fmt: skip
            db.execute("DELETE FROM deleted WHERE key = ?", (key,))
            return old

        def place_and_commit() -> None:
            try:
                place()
                self._tx(commit)
            except BaseException:
                _discard(path)
                raise

        with _mapped("write failed", key):
            await anyio.to_thread.run_sync(place_and_commit)
        return attrs

    async def put(self, key: str, data: bytes, opts: PutOptions) -> ObjectAttrs:
        upload = await self.start_multipart(key, opts)  # one path, one set of crash/cancel rules
        try:
            part = await upload.put_part(1, data)
            return await upload.complete([part])
        except BaseException:
            await upload.abort()
            raise

    async def start_multipart(self, key: str, opts: PutOptions) -> _Upload:
        with _mapped("cannot open the bucket", key):
            await self._index(lambda db: None)  # creates the layout on first use
        upload = _Upload(self, key, opts, self._tmpdir / f"{secrets.token_hex(16)}.tmp")
        try:
            await run_to_completion(upload._open())
        except BaseException:
            await upload.abort()
            raise
        return upload

    # -- reads --

    async def _open_blob(self, key: str, version: str | None) -> tuple[tuple[Any, ...], AsyncBufferedReader]:
        # An overwrite in another process may unlink the blob between our index read and
        # the open; the index then names the new blob, so look again.
        for _ in range(10):
            row = await self._lookup(key, version)
            try:
                return row, await aiofiles.open(self._blobs / row[9], "rb")
            except FileNotFoundError:
                continue
        raise BackendError("the index names a blob file that does not exist", key=key, version=version)

    async def get(self, key: str, opts: GetOptions) -> tuple[ObjectAttrs, _Body]:
        with _mapped("read failed", key):
            row, fh = await self._open_blob(key, opts.version)
        attrs = _attrs(row)
        try:
            check_read(attrs, opts, key)
        except BaseException:
            with contextlib.suppress(OSError):
                await fh.close()
            raise
        end = attrs.size if opts.length is None else min(attrs.size, opts.offset + opts.length)
        return attrs, _Body(fh, opts.offset, max(0, end - opts.offset), key)

    async def head(self, key: str, version: str | None = None) -> ObjectAttrs:
        with _mapped("head failed", key):
            return _attrs(await self._lookup(key, version))

    async def delete(self, key: str, version: str | None = None) -> None:
        def remove(db: sqlite3.Connection) -> list[str]:
            if version is not None:
                row = self._find(db, key, version)
                if row is None:
                    raise ObjectNotFound("object version not found", key=key, version=version)
                db.execute("DELETE FROM versions WHERE seq = ?", (row[10],))
                gone = [row[9]]
            else:
                if self._find(db, key, None) is None:
                    raise ObjectNotFound("object not found", key=key)
                if self.versioned:  # a delete marker; older versions stay
                    db.execute("INSERT OR IGNORE INTO deleted (key) VALUES (?)", (key,))
                    return []
                gone = [r[0] for r in db.execute("SELECT blob FROM versions WHERE key = ?", (key,))]
                db.execute("DELETE FROM versions WHERE key = ?", (key,))
            if db.execute("SELECT 1 FROM versions WHERE key = ? LIMIT 1", (key,)).fetchone() is None:
                db.execute("DELETE FROM deleted WHERE key = ?", (key,))
            return gone

        with _mapped("delete failed", key):
            if self._db is None and await anyio.to_thread.run_sync(self._absent):
                missing = "object not found" if version is None else "object version not found"
                raise ObjectNotFound(missing, key=key, version=version)  # and creates nothing
            await run_to_completion(anyio.to_thread.run_sync(self._tx, remove))

    async def delete_many(self, keys: Sequence[str]) -> list[BucketError | None]:
        return await delete_each(self.delete, keys)

    async def list(
        self,
        prefix: str,
        *,
        start_after: str | None = None,
        delimiter: str | None = None,
        versions: bool = False,
        limit: int | None = None,
    ) -> AsyncIterator[ListEntry]:
        page = max(1, min(limit or PAGE, PAGE))
        hi = _upper(prefix)
        # The cursor (key, seq) means: rows of `key` with a smaller seq, then later keys.
        inclusive = 1 << 62
        if start_after is not None and start_after >= prefix:
            cursor: tuple[str, int] = (start_after, -1)
        else:
            cursor = (prefix, inclusive)
        # A real upper bound (not "? IS NULL OR ...") so the index range stops at the prefix end.
        sql = (
            f"SELECT {_COLS}, {_NEWEST} AND {_LIVE} FROM versions o"
            " WHERE key >= :ck AND (key > :ck OR seq < :cs)"
            + ("" if hi is None else " AND key < :hi")
            + ("" if versions else f" AND {_NEWEST} AND {_LIVE}")
            + " ORDER BY key ASC, seq DESC LIMIT :page"
        )
        while True:
            args = {"ck": cursor[0], "cs": cursor[1], "hi": hi, "page": page}
            with _mapped("list failed"):
                rows: list[Any] = await self._read_index(functools.partial(_fetch, sql, args), [])
            for row in rows:
                key = row[0]
                if delimiter is not None:
                    cut = key.find(delimiter, len(prefix))
                    if cut >= 0:
                        # Every key in this group starts with `common`: skip past them all.
                        common = key[: cut + len(delimiter)]
                        yield ListEntry(name=common, is_prefix=True)
                        nxt = _upper(common)
                        if nxt is None:
                            return
                        cursor = (nxt, inclusive)
                        break
                yield ListEntry(
                    name=key, size=row[2], etag=row[3], version=row[1],
                    last_modified=datetime.fromisoformat(row[8]), is_latest=bool(row[11]),
                )  # fmt: skip
                cursor = (key, row[10])
            else:
                if len(rows) < page:
                    return

    def can_copy_from(self, source: Provider) -> bool:
        return isinstance(source, LocalProvider)

    async def copy(self, source: Provider, src: str, dst: str, opts: CopyOptions) -> ObjectAttrs:
        assert isinstance(source, LocalProvider)
        origin = source
        with _mapped("copy failed", src):
            row, fh = await origin._open_blob(src, opts.version)  # the open handle pins the bytes
        found = _attrs(row)
        put = (
            put_options_from(found, opts.preconditions)
            if opts.replace is None
            else replace(opts.replace, preconditions=opts.preconditions)
        )
        try:
            with _mapped("copy failed", dst):  # the destination's layout, once there is a source
                await self._index(lambda db: None)
            return await run_to_completion(self._copy_blob(origin._blobs / row[9], fh, dst, put, found))
        finally:
            with contextlib.suppress(OSError):
                await fh.close()

    async def _copy_blob(
        self, blob: Path, fh: AsyncBufferedReader, dst: str, put: PutOptions, source: ObjectAttrs
    ) -> ObjectAttrs:
        tmp = self._tmpdir / f"{secrets.token_hex(16)}.tmp"
        try:
            with _mapped("copy failed", dst):
                try:  # blobs are immutable, so sharing the inode is safe
                    await anyio.to_thread.run_sync(os.link, blob, tmp)
                except OSError:  # no hard links here, or the source was just replaced: copy
                    async with aiofiles.open(tmp, "xb") as out:
                        while chunk := await fh.read(CHUNK):
                            await out.write(chunk)
                        await out.flush()
                        await anyio.to_thread.run_sync(os.fsync, out.fileno())
            return await self._commit_tmp(tmp, dst, put, source.etag, source.size)
        finally:
            _discard(tmp)

    async def sign_post(self, key: str, policy: PostPolicy) -> UploadForm:
        raise NotSupported("the local backend cannot sign upload forms yet", key=key)

    async def sign_url(
        self,
        key: str,
        method: Literal["GET", "PUT"],
        ttl: timedelta,
        version: str | None = None,
        *,
        content_type: str | None = None,
        content_length: int | None = None,
    ) -> str:
        """An HMAC-signed URL to ``aiobucket serve`` (see aiobucket._signing).

        The secret lives in ``<root>/signing.key`` (created on first use), so the dev
        server verifies it with no configuration. ``key`` is the stored key.
        """
        with _mapped("cannot sign the URL", key):
            secret = await anyio.to_thread.run_sync(_signing.load_key, self.root)
        assert secret is not None
        base = _signing.dev_server_base(self._options)
        return _signing.signed_url(base, secret, method, self.name, key, version, ttl.total_seconds())

    async def aclose(self) -> None:
        def close() -> None:
            with self._lock:
                db, self._db = self._db, None
                if db is not None:
                    db.close()

        with _mapped("close failed"):
            await anyio.to_thread.run_sync(close)


def create(settings: BucketSettings, name: str, config: BucketConfig) -> LocalProvider:
    """``file:///abs/path``: the path is the bucket's root directory."""
    parts = urlsplit(settings.url)
    if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
        raise InvalidArgument(f"bucket {name!r}: file URL {settings.url!r} needs an absolute path")
    return LocalProvider(root_of(settings.url), config.versioned, name=name, options=settings.options)
