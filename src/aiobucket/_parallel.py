"""Parallel ranged downloads: ParallelReader, one in-order stream fed by concurrent ranges.

Invariants:

* One object. The first range request answers the object's attributes; every other
  range is pinned to that etag (and version) with ``if_match``, so bytes of two
  versions are never spliced: a change midway raises ObjectChanged.
* Bounded memory. ParallelReader holds at most ``part_size * (concurrency + 1)``
  bytes: ``concurrency`` parts downloading or waiting, plus the one being handed
  out. (download_to, in ``_download_file.py``, writes parts in place instead.)
* Nothing leaks. Every range task is owned: on an error, a cancellation or
  ``aclose()`` all of them are cancelled and awaited, and each closes its response
  body (connection or file handle) on the way out.
* Verified. A download of the whole object is checked against the object's
  ``crc32c`` or ``md5`` where the backend reported one (IntegrityError). A range
  answer may carry neither where the object has one (S3 sends no checksum with a
  206, and a multipart object's ETag is no MD5): then one HEAD asks for it.
* Each range resumes once after a dropped connection, from where it stopped,
  like the single-stream reader.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from . import _runtime
from ._aio import cancel_and_wait, release, run_to_completion
from ._checksum import WholeObjectCheck
from .errors import ConnectionLost, IntegrityError, InvalidArgument, ObjectChanged, PreconditionFailed
from .providers.base import Body, GetOptions, MiB, Provider, same_etag
from .reader import ChunkReader
from .tracing import start_span
from .types import ObjectAttrs

if TYPE_CHECKING:
    from ._runtime import Handle

__all__ = ["DEFAULT_PART_SIZE", "TASK_NAME", "ParallelReader", "fetch_range", "open_first", "ranges_of"]

DEFAULT_PART_SIZE = 8 * MiB
TASK_NAME = "aiobucket-download"  # every task started here, so tests can prove none leak


# -- one range ------------------------------------------------------------------------


async def _close(body: Body) -> None:
    await release(body.aclose())


async def fetch_range(
    provider: Provider,
    key: str,
    attrs: ObjectAttrs,
    start: int,
    length: int,
    on_chunk: Callable[[bytes], Awaitable[None] | None],
    body: Body | None = None,
) -> None:
    """Feed ``length`` bytes from ``start`` to ``on_chunk``, pinned to ``attrs.etag``.

    ``body`` is an already-open response for exactly this range (the first range).
    A dropped or short body is resumed once from where it stopped.
    """
    got = 0
    resumed = False
    if length == 0 and body is not None:
        await _close(body)
    while got < length:
        if body is None:
            opts = GetOptions(
                version=attrs.version, offset=start + got, length=length - got, if_match=attrs.etag
            )
            try:
                _, body = await provider.get(key, opts)
            except PreconditionFailed as exc:
                raise ObjectChanged(
                    "the object changed while it was being downloaded; download it again", key=key
                ) from exc
        try:
            async for raw in body:
                chunk = raw if isinstance(raw, bytes) else bytes(raw)
                if got + len(chunk) > length:
                    raise IntegrityError(
                        f"the server sent more than the {length} bytes asked for at offset {start}", key=key
                    )
                got += len(chunk)
                pending = on_chunk(chunk)
                if pending is not None:
                    await pending
        except ConnectionLost:
            if resumed:
                raise
        finally:
            await _close(body)
            body = None
        if got < length:
            if resumed:
                raise ConnectionLost(f"the body ended {length - got} bytes early at offset {start}", key=key)
            resumed = True


def ranges_of(start: int, end: int, part_size: int) -> list[tuple[int, int]]:
    """(offset, length) of each part of [start, end); one empty part for an empty range."""
    return [(s, min(part_size, end - s)) for s in range(start, end, part_size)] or [(start, 0)]


async def open_first(
    provider: Provider, key: str, cache: GetOptions, offset: int, length: int | None, part_size: int
) -> tuple[ObjectAttrs, Body, int]:
    """The first range: it carries the caching conditions and answers the object's attrs.

    Returns (attrs, body of the first part, end of the whole requested range).
    """
    first = part_size if length is None else min(part_size, length)
    attrs, body = await provider.get(key, replace(cache, offset=offset, length=first))
    end = attrs.size if length is None else min(attrs.size, offset + length)
    if offset == 0 and end == attrs.size > first and attrs.verified_by is None:
        try:
            head = await provider.head(key, attrs.version, checksums=True)
        except BaseException:
            await release(body.aclose())
            raise
        if same_etag(head.etag, attrs.etag) and head.size == attrs.size:  # else the pinned ranges fail
            sums = head.crc32c, head.md5, head.crc32, head.crc64nvme
            attrs = replace(attrs, crc32c=sums[0], md5=sums[1], crc32=sums[2], crc64nvme=sums[3])
    return attrs, body, max(end, offset)


# -- the in-order stream ----------------------------------------------------------------


class ParallelReader(ChunkReader):
    """Returned by ``Bucket.download(key, concurrency=N)``: the same interface as Reader,
    fed by up to ``concurrency`` range requests of ``part_size`` bytes at a time."""

    def __init__(
        self,
        bucket: Handle,
        key: str,
        version: str | None,
        offset: int,
        length: int | None,
        concurrency: int,
        part_size: int,
        cache: GetOptions | None = None,
    ) -> None:
        super().__init__(bucket, key)
        self._version = version
        self._offset = offset
        self._length = length
        self._concurrency = concurrency
        self._part_size = part_size
        self._cache = cache or GetOptions()
        self._provider: Provider | None = None
        self._ranges: list[tuple[int, int]] = []
        self._tasks: dict[int, asyncio.Task[list[bytes]]] = {}
        self._next_launch = 0
        self._next_take = 0
        self._current: deque[bytes] = deque()
        self._failure: asyncio.Task[list[bytes]] | None = None
        self._first_body: Body | None = None  # until part 0's task takes it over
        self._opened = False

    def _holding(self) -> bool:
        return bool(getattr(self, "_tasks", None))

    async def _open(self) -> None:
        if self._closed:
            raise InvalidArgument(
                "the reader is closed; call download() again", bucket=self._bucket.name, key=self.key
            )
        if self._opened:
            return
        self._opened = True
        self._span = start_span(
            "download",
            self._bucket.name,
            self.key,
            version=self._version,
            offset=self._offset or None,
            concurrency=self._concurrency,
            part_size=self._part_size,
        )
        async with _runtime.mapped_errors(self._bucket.name, self.key, self._finish):
            self._provider, _ = self._bucket.provider()
            cache = replace(self._cache, version=self._version)
            attrs, body, end = await open_first(
                self._provider, self.key, cache, self._offset, self._length, self._part_size
            )
            self._attrs = attrs
            self._ranges = ranges_of(self._offset, end, self._part_size)
            self._check = WholeObjectCheck.for_read(attrs, self._offset, end - self._offset)
            self._first_body = body
            self._span.set(size=attrs.size, version=attrs.version, parts=len(self._ranges))
            self._launch()

    def _launch(self) -> None:
        """Keep ``concurrency`` parts downloading (or downloaded and waiting)."""
        while len(self._tasks) < self._concurrency and self._next_launch < len(self._ranges):
            index = self._next_launch
            task = asyncio.create_task(self._fetch(index), name=TASK_NAME)
            task.add_done_callback(self._done)
            self._tasks[index] = task
            self._next_launch = index + 1

    async def _fetch(self, index: int) -> list[bytes]:
        assert self._provider is not None and self._attrs is not None
        body = None
        if index == 0:  # taken over only once running: a task cancelled unstarted runs nothing
            body, self._first_body = self._first_body, None
        start, length = self._ranges[index]
        chunks: list[bytes] = []
        await fetch_range(self._provider, self.key, self._attrs, start, length, chunks.append, body)
        return chunks

    def _done(self, task: asyncio.Task[list[bytes]]) -> None:
        # Fail fast: a later part's error surfaces on the next read, not when its turn comes.
        if self._failure is None and not task.cancelled() and task.exception() is not None:
            self._failure = task

    async def _next_chunk(self) -> bytes:
        """The next non-empty chunk in object order, or b"" at the end (which closes the reader)."""
        if self._eof:
            return b""
        await self._open()
        async with _runtime.mapped_errors(self._bucket.name, self.key, self._finish):
            while True:
                if self._failure is not None:
                    self._failure.result()  # raises the part's error
                if self._current:
                    return self._deliver(self._current.popleft())
                if self._next_take == len(self._ranges):
                    return await self._at_end()
                task = self._tasks[self._next_take]
                chunks = await task
                del self._tasks[self._next_take]
                self._next_take += 1
                self._current.extend(c for c in chunks if c)
                self._launch()

    async def _finish(self, error: BaseException | None) -> None:
        if self._closed:
            return
        self._closed = True
        self._current.clear()
        tasks = list(self._tasks.values())
        self._tasks.clear()
        body, self._first_body = self._first_body, None
        try:
            await run_to_completion(_cancel_all(tasks, body))
        finally:
            if self._span is not None:
                self._span.set(complete=self._eof)
                self._span.end(error)


async def _cancel_all(tasks: list[asyncio.Task[Any]], body: Body | None = None) -> None:
    """Cancel ``tasks`` and wait until every one has finished (each closes its body);
    close ``body``, a response no task took over."""
    try:
        await cancel_and_wait(tasks)  # the error that ended the download takes precedence
    finally:
        if body is not None:
            await body.aclose()
