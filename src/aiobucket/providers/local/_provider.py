"""Local filesystem backend: immutable blob files plus a SQLite index.

Keys never become paths (S3 allows both "a" and "a/b", names may exceed 255
bytes, some filesystems fold case), so the layout under the root is::

    blobs/<xx>/<id>    object bytes, never modified once renamed into place
    tmp/               uploads in progress, and journals of blobs that may be orphaned
    index.sqlite3      one row per (key, version) plus per-key delete markers (see _index)

A write goes tmp file -> fsync -> rename into blobs/ -> fsync dir -> one
``BEGIN IMMEDIATE`` transaction that checks preconditions and swaps the index
row. The commit is the only point where an object changes, so a crash leaves
the old object or the new one; the leftovers (a tmp file or an unreferenced
blob) are invisible, and reclaimed by the sweep at open or ``aiobucket fsck``
(see _fsck). Each row keeps the object's MD5 (its etag) and CRC32C, which a
whole-object download is checked against. Readers open the blob file, so a
later unlink by an overwrite cannot cut their stream short; no file handle is
ever dropped by a cancel. Versioning follows memory.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import io
import os
import secrets
import shutil
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar
from urllib.parse import urlsplit

import aiofiles
import anyio.to_thread
from aiofiles.threadpool.binary import AsyncBufferedIOBase

from ..._aio import run_to_completion
from ..._checksum import Crc32c
from ...errors import (
    BackendError,
    BucketError,
    InvalidArgument,
    PermissionDenied,
)
from ...types import BucketConfig, ListEntry, ObjectAttrs, UploadForm
from ..base import (
    Capabilities,
    CopyOptions,
    GetOptions,
    MiB,
    Part,
    PartOrder,
    PostPolicy,
    Provider,
    PutOptions,
    check_preconditions,
    check_read,
    copy_put_options,
    delete_each,
    new_object_attrs,
    not_found,
)
from . import _fsck, _index, _signing
from ._index import INDEX

if TYPE_CHECKING:
    from ...config import BucketSettings

T = TypeVar("T")
CHUNK = MiB
PAGE = 1000
CAPABILITIES = Capabilities(
    signed_urls=True, signed_forms=True, signed_url_length=True, parallel_parts=False, min_part_size=1
)
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


async def _open_for_reading(path: Path) -> io.FileIO:
    """Open ``path`` in a worker thread without ever dropping the handle.

    A cancel cannot stop the thread, so the open runs to completion; if the caller
    was cancelled meanwhile, the file is closed here before the cancel goes on.
    """

    def open_unbuffered() -> io.FileIO:
        return open(path, "rb", buffering=0)

    task = asyncio.ensure_future(anyio.to_thread.run_sync(open_unbuffered))
    try:
        return await run_to_completion(task)
    except asyncio.CancelledError:
        if task.done() and not task.cancelled() and task.exception() is None:
            task.result().close()
        raise


class _Body:
    """Positional reads (pread) of an open blob file, in worker threads.

    A cancel does not stop a read in flight, so reads and the close take one lock:
    the file is closed only once the read in flight is over (its descriptor could
    otherwise be reused under it), and a read that starts later finds it closed.
    """

    def __init__(self, f: io.FileIO, offset: int, length: int, key: str) -> None:
        self._f = f
        self._lock = threading.Lock()
        self._pos = offset
        self._left = length
        self._key = key
        self._closed = False

    def _read(self, n: int, pos: int) -> bytes | None:
        with self._lock:
            return None if self._f.closed else os.pread(self._f.fileno(), n, pos)

    def _close(self) -> None:
        with self._lock:
            self._f.close()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        # A stream: iterating again continues where the last iteration stopped.
        with _mapped("read failed", self._key):
            while self._left > 0 and not self._closed:
                chunk = await anyio.to_thread.run_sync(self._read, min(CHUNK, self._left), self._pos)
                if chunk is None:  # closed meanwhile
                    return
                if not chunk:
                    raise BackendError("blob file is shorter than its index entry", key=self._key)
                self._pos += len(chunk)
                self._left -= len(chunk)
                yield chunk

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            # In a worker thread, which waits for a read in flight; a cancel cannot stop it.
            await anyio.to_thread.run_sync(self._close)


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
        self._crc = Crc32c()
        self._size = 0
        self._order = PartOrder()
        self._done = False

    async def _open(self) -> None:
        with _mapped("cannot start the upload", self._key):
            self._fh = await aiofiles.open(self._tmp, "xb")

    async def _append(self, data: bytes | bytearray | memoryview) -> str:
        assert self._fh is not None
        # Write and hash at once, in two worker threads (hashlib and google-crc32c release
        # the GIL on large buffers). Only the whole object's MD5 and CRC32C are kept:
        # parts need no etag here.
        with _mapped("write failed", self._key):
            await asyncio.gather(self._fh.write(data), anyio.to_thread.run_sync(self._hash, data))
        self._size += len(data)
        return f"part-{self._order.next - 1}"

    def _hash(self, data: bytes | bytearray | memoryview) -> None:
        self._md5.update(data)
        self._crc.update(data)

    async def put_part(self, number: int, data: bytes | bytearray | memoryview) -> Part:
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
                self._tmp, self._key, self._opts, self._md5.hexdigest(), self._size, self._crc.b64()
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
        public: bool = False,
    ) -> None:
        self.root = root
        self.versioned = versioned
        self.public = public  # the code's BucketConfig(public=...), recorded for the dev server
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
        db = _index.connect(self.root / INDEX)
        _fsck.sweep(self.root, db)  # debris of writes whose process died
        if self.public:  # here, on the loop's first use and in a thread: public_url() does no I/O
            _signing.mark_public(self.root)
        return db

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

    async def _query(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await anyio.to_thread.run_sync(self._locked, fn)

    async def _read_index(self, fn: Callable[[sqlite3.Connection], T], missing: T) -> T:
        """Like _query, for reads: ``missing`` when the bucket was never written."""
        try:
            return await anyio.to_thread.run_sync(functools.partial(self._locked, fn, read=True))
        except _Missing:
            return missing

    def _tx(self, fn: Callable[[sqlite3.Connection], list[str]], journal: _fsck.Journal) -> None:
        """Run ``fn`` as one write transaction, then unlink the blobs it returned.

        The blobs go into ``journal`` before the commit, so a process that dies
        between the commit and the unlinks leaves a note for the sweep. Runs in a
        worker thread from start to end: a cancelled caller stops waiting but cannot
        interrupt it between the commit and the cleanup. The caller removes the journal.
        """

        def run(db: sqlite3.Connection) -> list[str]:
            gone = fn(db)
            journal.note(gone)
            return gone

        # Nothing refers to these any more; failing to unlink only leaves invisible garbage.
        _discard(*(self._blobs / b for b in self._locked(lambda db: _index.transaction(db, run))))

    def _tx_journaled(self, fn: Callable[[sqlite3.Connection], list[str]]) -> None:
        journal = _fsck.Journal(self._tmpdir)
        try:
            self._tx(fn, journal)
        finally:
            journal.remove()

    async def _lookup(self, key: str, version: str | None) -> sqlite3.Row:
        row = await self._read_index(lambda db: _index.find(db, key, version), None)
        if row is None:
            raise not_found(key, version)
        return row

    # -- the write path --

    async def _commit_tmp(
        self, tmp: Path, key: str, opts: PutOptions, etag: str, size: int, crc32c: str | None
    ) -> ObjectAttrs:
        """Rename a complete, fsynced tmp file into blobs/ and point the index at it.

        ``etag`` is the MD5 of the bytes and ``crc32c`` their CRC32C (None for a copy
        of an object stored before checksums were kept).
        """
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

        attrs = new_object_attrs(key, opts, size=size, md5=etag, crc32c=crc32c, versioned=self.versioned)

        def commit(db: sqlite3.Connection) -> list[str]:
            if not path.exists():  # only a sweep or fsck in another process removes it
                raise BackendError("the new blob file vanished before the commit", key=key)
            cur = _index.find(db, key, None)
            check_preconditions(_index.attrs(cur) if cur else None, opts.preconditions, key)
            old: list[str] = []
            if not self.versioned:
                old = [r[0] for r in db.execute("SELECT blob FROM versions WHERE key = ?", (key,))]
                db.execute("DELETE FROM versions WHERE key = ?", (key,))
            db.execute(_index.INSERT, _index.row_values(attrs, blob))
            db.execute("DELETE FROM deleted WHERE key = ?", (key,))
            return old

        def place_and_commit() -> None:
            journal = _fsck.Journal(self._tmpdir)
            try:
                journal.note([blob])  # before the rename: from then on it could be orphaned
                try:
                    place()
                    self._tx(commit, journal)
                except BaseException:
                    _discard(path)
                    raise
            finally:
                journal.remove()

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
            await self._query(lambda db: None)  # creates the layout on first use
        upload = _Upload(self, key, opts, self._tmpdir / f"{secrets.token_hex(16)}.tmp")
        try:
            await run_to_completion(upload._open())
        except BaseException:
            await upload.abort()
            raise
        return upload

    # -- reads --

    async def _open_blob(self, key: str, version: str | None) -> tuple[sqlite3.Row, io.FileIO]:
        # An overwrite in another process may unlink the blob between our index read and
        # the open; the index then names the new blob, so look again.
        for _ in range(10):
            row = await self._lookup(key, version)
            try:
                return row, await _open_for_reading(self._blobs / row["blob"])
            except FileNotFoundError:
                continue
        raise BackendError("the index names a blob file that does not exist", key=key, version=version)

    async def get(self, key: str, opts: GetOptions) -> tuple[ObjectAttrs, _Body]:
        with _mapped("read failed", key):
            row, fh = await self._open_blob(key, opts.version)
        attrs = _index.attrs(row)
        try:
            check_read(attrs, opts, key)
        except BaseException:
            fh.close()
            raise
        end = attrs.size if opts.length is None else min(attrs.size, opts.offset + opts.length)
        return attrs, _Body(fh, opts.offset, max(0, end - opts.offset), key)

    async def head(self, key: str, version: str | None = None, *, checksums: bool = False) -> ObjectAttrs:
        with _mapped("head failed", key):
            return _index.attrs(await self._lookup(key, version))

    async def delete(self, key: str, version: str | None = None) -> None:
        def remove(db: sqlite3.Connection) -> list[str]:
            if version is not None:
                row = _index.find(db, key, version)
                if row is None:
                    raise not_found(key, version)
                db.execute("DELETE FROM versions WHERE seq = ?", (row["seq"],))
                gone = [row["blob"]]
            else:
                if _index.find(db, key, None) is None:
                    raise not_found(key)
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
                raise not_found(key, version)  # and creates nothing
            await run_to_completion(anyio.to_thread.run_sync(self._tx_journaled, remove))

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
        hi = _index.upper(prefix)
        # The cursor (key, seq) means: rows of `key` with a smaller seq, then later keys.
        inclusive = 1 << 62
        if start_after is not None and start_after >= prefix:
            cursor: tuple[str, int] = (start_after, -1)
        else:
            cursor = (prefix, inclusive)
        # A real upper bound (not "? IS NULL OR ...") so the index range stops at the prefix end.
        sql = _index.list_sql(hi, versions)
        while True:
            args = {"ck": cursor[0], "cs": cursor[1], "hi": hi, "page": page}
            with _mapped("list failed"):
                rows: list[sqlite3.Row] = await self._read_index(
                    functools.partial(_index.fetch, sql, args), []
                )
            for row in rows:
                key = row["key"]
                if delimiter is not None:
                    cut = key.find(delimiter, len(prefix))
                    if cut >= 0:
                        # Every key in this group starts with `common`: skip past them all.
                        common = key[: cut + len(delimiter)]
                        yield ListEntry(name=common, is_prefix=True)
                        nxt = _index.upper(common)
                        if nxt is None:
                            return
                        cursor = (nxt, inclusive)
                        break
                yield ListEntry(
                    name=key, size=row["size"], etag=row["etag"], version=row["version"],
                    last_modified=datetime.fromisoformat(row["last_modified"]), is_latest=bool(row["latest"]),
                )  # fmt: skip
                cursor = (key, row["seq"])
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
        found = _index.attrs(row)
        put = copy_put_options(found, opts)
        try:
            with _mapped("copy failed", dst):  # the destination's layout, once there is a source
                await self._query(lambda db: None)
            return await run_to_completion(self._copy_blob(origin._blobs / row["blob"], fh, dst, put, found))
        finally:
            fh.close()

    async def _copy_blob(
        self, blob: Path, fh: io.FileIO, dst: str, put: PutOptions, source: ObjectAttrs
    ) -> ObjectAttrs:
        tmp = self._tmpdir / f"{secrets.token_hex(16)}.tmp"

        def copy_bytes() -> None:
            try:  # blobs are immutable, so sharing the inode is safe
                os.link(blob, tmp)
                os.utime(tmp)  # the new blob's age starts now (the sweep and fsck go by mtime)
            except OSError:  # no hard links here, or the source was just replaced: copy
                with open(tmp, "xb") as out:
                    shutil.copyfileobj(fh, out, CHUNK)
                    out.flush()
                    os.fsync(out.fileno())

        try:
            with _mapped("copy failed", dst):
                await anyio.to_thread.run_sync(copy_bytes)
            return await self._commit_tmp(tmp, dst, put, source.etag, source.size, source.crc32c)
        finally:
            _discard(tmp)

    async def sign_post(self, key: str, policy: PostPolicy) -> UploadForm:
        """An HMAC-signed form for ``aiobucket serve``, which enforces it (see _signing)."""
        secret = await self._secret(key)
        return _signing.signed_form(_signing.dev_server_base(self._options), secret, self.name, key, policy)

    async def _secret(self, key: str) -> bytes:
        with _mapped("cannot sign", key):
            secret = await anyio.to_thread.run_sync(_signing.load_key, self.root)
        assert secret is not None
        return secret

    async def sign_url(
        self,
        key: str,
        method: Literal["GET", "PUT"],
        ttl: timedelta,
        version: str | None = None,
        *,
        content_type: str | None = None,
        content_length: int | None = None,
        not_exists: bool = False,
    ) -> str:
        """An HMAC-signed URL to ``aiobucket serve`` (see _signing).

        The secret lives in ``<root>/signing.key`` (created on first use), so the dev
        server verifies it with no configuration. ``key`` is the stored key.
        """
        secret = await self._secret(key)
        base = _signing.dev_server_base(self._options)
        put = method == "PUT"
        return _signing.signed_url(
            base,
            secret,
            method,
            self.name,
            key,
            version,
            ttl.total_seconds(),
            content_type=content_type if put else None,
            content_length=content_length if put else None,
            create_only=put and not_exists,
        )

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
    return LocalProvider(
        root_of(settings.url), config.versioned, name=name, options=settings.options, public=config.public
    )
