"""The files ``AiobucketFileSystem.open`` and ``open_async`` return.

Invariants:

* A read file pins the ETag seen at open (or carried over by pickling): every
  range it fetches must come from that ETag, else it raises FileExpired (an
  OSError) instead of handing out bytes of another version. A range that covers
  the whole object is verified against its stored checksum, like any download.
* A write file is one aiobucket ``Writer``. ``close()`` commits. An exception
  inside ``with fs.open(p, "wb")`` aborts it and nothing is stored (fsspec's
  base class, and so s3fs, commits the partial object then); so does a
  ``close()`` made while an exception raised after the open propagates (an
  ``fsspec.open`` OpenFile's ``__exit__``, a ``finally:`` in pandas). A file dropped
  unclosed is aborted with a ResourceWarning, never committed (the base class
  commits from ``__del__``). ``xb`` is create-only: refused at open when the
  object exists, and atomically at commit (``Preconditions(not_exists=True)``)
  when another writer got there first. ``ab`` is refused: objects are immutable.
* A read file of a version (``version_id=``, ``?versionId=``, or pinned at open on
  a ``version_aware`` filesystem) reads only that version.
* With ``autocommit=False`` (fsspec transactions) ``close()`` uploads everything
  and ``commit()`` commits; ``discard()`` aborts.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import sys
import warnings
from types import TracebackType
from typing import TYPE_CHECKING, Any

import fsspec.asyn
from fsspec.spec import AbstractBufferedFile

from ..errors import NotSupported, RangeNotSatisfiable
from ..types import Preconditions
from ._errors import FileExpired, os_errors

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from ..bucket import Bucket
    from ..reader import Reader
    from ..writer import Writer
    from ._filesystem import AiobucketFileSystem

__all__ = ["AiobucketFile", "AiobucketStreamedFile", "write_mode"]


def write_mode(mode: str) -> bool:
    """Whether ``mode`` writes; refuses the modes an object store cannot honour."""
    if mode == "ab":
        raise NotSupported(
            "mode 'ab' is not supported: objects are immutable, so appending would mean rewriting the "
            "whole object; read it and write a new one with mode 'wb'"
        )
    if mode not in ("rb", "wb", "xb"):
        raise ValueError(f"mode must be 'rb', 'wb' or 'xb' (text modes wrap these), got {mode!r}")
    return mode != "rb"


FILL_FROM = 1024 * 1024
"""Reads this large fill one buffer as the chunks arrive (see ``read_all``)."""


async def read_all(reader: Reader, expected: int) -> bytes:
    """Everything ``reader`` returns, about ``expected`` bytes of it. A large read copies
    each chunk into one buffer of the final size as it arrives and drops it, so the
    allocator hands the same memory to the next chunk; ``reader.read()`` keeps every chunk
    until it joins them, and freeing them all at once lets the allocator return them to
    the system, so every read touches twice its size of fresh memory (measured, 16 reads
    of 17 MB: 140 k page faults against about 80 k, and a third more CPU)."""
    if expected < FILL_FROM:
        return await reader.read()
    buf = io.BytesIO()
    buf.seek(expected - 1)
    buf.write(b"\0")  # sized once: getvalue() then hands the buffer over without a copy
    buf.seek(0)
    async for chunk in reader:
        buf.write(chunk)
    buf.truncate()  # fewer bytes than expected: never the zeros past them
    return buf.getvalue()


def _abort_later(writer: Writer, loop: asyncio.AbstractEventLoop | None) -> None:
    """Abort ``writer`` from a finalizer: scheduled on its loop, never waited for."""
    if loop is None or loop.is_closed():
        return  # nothing was sent on a loop that is gone; the writer never commits by itself

    def start() -> None:
        loop.create_task(writer.abort(), name="aiobucket-fsspec-abort")

    with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
        loop.call_soon_threadsafe(start)


class AiobucketFile(AbstractBufferedFile):  # type: ignore[misc]  # fsspec is untyped
    """A buffered file of ``AiobucketFileSystem`` (``rb``, ``wb``, ``xb``); see the module doc."""

    def __init__(
        self,
        fs: AiobucketFileSystem,
        path: str,
        mode: str = "rb",
        block_size: int | str | None = None,
        autocommit: bool = True,
        cache_type: str = "readahead",
        cache_options: dict[str, Any] | None = None,
        size: int | None = None,
        etag: str | None = None,
        version_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        writing = write_mode(mode)
        self._exception_at_open = sys.exception()  # see close()
        bucket, key, full, version = fs._versioned_target(path, version_id)
        if writing and version is not None:
            raise ValueError(f"a version is read, never written: drop version_id for mode {mode!r}")
        self._bucket: Bucket = bucket
        self._key = key
        self._writer: Writer | None = None
        self.etag = etag
        self.version = version
        info = None
        if not writing and (etag is None or size is None):
            info, self.version = fs._pin_sync(bucket, full, version)  # now, not what a cache saw
            self.etag, size = info["ETag"], info["size"]
        if mode == "xb" and fs.exists(full, refresh=True):
            raise FileExistsError(full)  # early; the commit's precondition is what decides
        super().__init__(
            fs,
            full,
            mode,
            block_size=block_size or "default",
            autocommit=autocommit,
            cache_type=cache_type,
            cache_options=cache_options,
            size=size,
            **kwargs,
        )
        if not writing:
            # A pickled file reopens pinned to the same ETag (and version).
            self.kwargs.update(etag=self.etag, version_id=self.version)
            if info is not None:
                self._details = info

    def _run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return fsspec.asyn.sync(self.fs.loop, lambda: coro)

    # -- reading ------------------------------------------------------------

    def _fetch_range(self, start: int, end: int) -> bytes:
        data: bytes = self._run(self._read_range(start, end))
        return data

    def read(self, length: int = -1) -> bytes:
        """A read of at least a block (a parquet column chunk, a whole file) is fetched as
        asked, in one request; smaller ones go through the read-ahead cache, which would
        fetch a block more than asked and copy the answer."""
        if self.mode == "rb" and not self.closed:
            want = self.size - self.loc if length is None or length < 0 else int(length)
            if want >= self.blocksize:
                end = min(self.loc + want, self.size)
                out = self._fetch_range(self.loc, end) if end > self.loc else b""
                self.loc += len(out)
                return out
        data: bytes = super().read(length)
        return data

    async def _read_range(self, start: int, end: int) -> bytes:
        end = min(end, self.size)
        length = None if start == 0 and end == self.size else max(end - start, 0)  # None: whole, verified
        reader = self._bucket.download(self._key, version=self.version, offset=start, length=length)
        with os_errors(self.path):
            try:
                async with reader:  # opened: the answer's ETag is known before any byte is taken
                    if (await reader.attrs()).etag != self.etag:
                        raise FileExpired(self.path, self.etag)
                    return await read_all(reader, end - start)
            except RangeNotSatisfiable:  # past the end: fine only if the object is the same
                if (await self._bucket.attrs(self._key, version=self.version)).etag != self.etag:
                    raise FileExpired(self.path, self.etag) from None
                return b""

    # -- writing ------------------------------------------------------------

    def _initiate_upload(self) -> None:
        pre = Preconditions(not_exists=True) if self.mode == "xb" else None
        self._writer = self._bucket.upload(self._key, preconditions=pre)

    def _upload_chunk(self, final: bool = False) -> bool:
        self._run(self._send(self.buffer.getvalue(), commit=final and self.autocommit))
        return True

    async def _send(self, data: bytes, commit: bool) -> None:
        assert self._writer is not None
        with os_errors(self.path):
            if data:
                await self._writer.write(data)
            if commit:
                await self._writer.close()

    def commit(self) -> None:
        """Commit a file opened with ``autocommit=False`` (an fsspec transaction), after close()."""
        if self._writer is None:
            raise ValueError("nothing to commit: the file was not written and closed")
        self._run(self._send(b"", commit=True))
        self.fs.invalidate_cache(self.path)

    def discard(self) -> None:
        """Throw the upload away: nothing is stored."""
        self._abandon(wait=True)

    def _abandon(self, *, wait: bool) -> None:
        self.closed = True
        self.buffer = io.BytesIO()  # dropped: what was buffered is never sent
        writer, self._writer = self._writer, None
        if writer is None:
            return
        if wait:
            self._run(writer.abort())
        else:
            _abort_later(writer, self.fs.loop)

    def close(self) -> None:
        """Commit (a write file), unless an exception raised since the open is propagating:
        then abort. So ``with fsspec.open(url, "wb")`` (an OpenFile, which closes its files
        in its own ``__exit__``) and ``try: ... finally: f.close()`` (pandas) store nothing
        on an error either, while a file opened inside an ``except`` block still commits."""
        if self.writable() and sys.exception() not in (None, self._exception_at_open):
            self._abandon(wait=True)
            return
        super().close()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None and self.writable():
            self._abandon(wait=True)  # an error inside the block: store nothing
        else:
            self.close()

    def __del__(self) -> None:
        if self.closed:
            return
        if "r" not in self.mode:
            warnings.warn(
                f"aiobucket file {self.path!r} was never closed; the upload was aborted and nothing "
                "was stored. Use 'with fs.open(...)'",
                ResourceWarning,
                stacklevel=2,
            )
            self._abandon(wait=False)
        self.closed = True


class AiobucketStreamedFile:
    """What ``open_async`` returns: a streamed read over one pinned, verified download,
    or a streamed write into one writer. No buffering beyond the reader's and writer's."""

    def __init__(
        self,
        fs: AiobucketFileSystem,
        bucket: Bucket,
        key: str,
        path: str,
        mode: str,
        etag: str | None = None,
        size: int | None = None,
        version: str | None = None,
    ) -> None:
        self.fs = fs
        self.path = path
        self.mode = mode
        self.etag = etag
        self.size = size
        self.loc = 0
        self.closed = False
        self._reader: Reader | None = bucket.download(key, version=version) if mode == "rb" else None
        pre = Preconditions(not_exists=True) if mode == "xb" else None
        self._writer: Writer | None = None if mode == "rb" else bucket.upload(key, preconditions=pre)
        self._loop: asyncio.AbstractEventLoop | None = None

    def readable(self) -> bool:
        return self._reader is not None and not self.closed

    def writable(self) -> bool:
        return self._writer is not None and not self.closed

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return self.loc

    async def read(self, length: int = -1) -> bytes:
        if self._reader is None:
            raise ValueError("File not in read mode")
        if self.closed:
            raise ValueError("I/O operation on closed file.")
        with os_errors(self.path):
            data = await self._reader.read(-1 if length is None or length < 0 else length)
            if self.loc == 0 and (await self._reader.attrs()).etag != self.etag:
                await self._reader.aclose()
                raise FileExpired(self.path, self.etag)
        self.loc += len(data)
        return data

    async def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._writer is None:
            raise ValueError("File not in write mode")
        if self.closed:
            raise ValueError("I/O operation on closed file.")
        self._loop = asyncio.get_running_loop()
        with os_errors(self.path):
            n = await self._writer.write(data)
        self.loc += n
        return n

    async def close(self) -> None:
        """Release the download, or commit the upload."""
        if self.closed:
            return
        self.closed = True
        if self._reader is not None:
            await self._reader.aclose()
            return
        assert self._writer is not None
        with os_errors(self.path):
            await self._writer.close()
        self.fs.invalidate_cache(self.path)

    async def abort(self) -> None:
        """Throw the upload away (nothing is stored), or release the download."""
        self.closed = True
        if self._writer is not None:
            await self._writer.abort()
        elif self._reader is not None:
            await self._reader.aclose()

    async def __aenter__(self) -> AiobucketStreamedFile:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None and self._writer is not None and not self.closed:
            self.closed = True
            await self._writer.__aexit__(exc_type, exc, tb)  # aborts: nothing is stored
        else:
            await self.close()

    def __del__(self) -> None:
        if getattr(self, "closed", True) or getattr(self, "_writer", None) is None:
            return
        warnings.warn(
            f"aiobucket file {self.path!r} was never closed; the upload was aborted and nothing was stored. "
            "Use 'async with await fs.open_async(...)'",
            ResourceWarning,
            stacklevel=2,
        )
        self.closed = True
        assert self._writer is not None
        _abort_later(self._writer, self._loop)
