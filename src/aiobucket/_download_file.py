"""``Bucket.download_to``: parallel ranges written in place into a file.

Invariants:

* The target is replaced only by a complete, verified file: parts are written at
  their offsets into a temporary file beside it (``.NAME.aiobucket-XXXXXXXX``, same
  directory, so the final rename is atomic), which is renamed over the target at the
  end and removed on any failure or cancellation.
* Every range is pinned to the first response's etag (see ``_parallel.fetch_range``).
* Memory is ``concurrency`` write buffers of at most WRITE_BUFFER, however large the
  parts; a whole-object checksum is computed by reading the written parts back in
  order as they complete, overlapping the download.
* All range tasks live in one TaskGroup: a failing part cancels the others, and
  every response body and the file descriptor are closed before the error leaves.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from . import _runtime
from ._aio import run_to_completion
from ._checksum import WholeObjectCheck
from ._parallel import TASK_NAME, fetch_range, open_first, ranges_of
from .errors import BucketError, IntegrityError, InvalidArgument
from .providers.base import Body, GetOptions, MiB, Provider
from .tracing import Span, start_span
from .types import ObjectAttrs

if TYPE_CHECKING:
    from ._runtime import Handle

__all__ = ["WRITE_BUFFER", "download_to"]

WRITE_BUFFER = MiB


async def download_to(
    bucket: Handle,
    key: str,
    path: Path,
    *,
    version: str | None,
    concurrency: int,
    part_size: int,
    cache: GetOptions | None,
    on_progress: Callable[[int], object] | None,
) -> ObjectAttrs:
    """Download the object into ``path``: parts written in place into a temporary file
    in the same directory, renamed over ``path`` once complete and verified.

    Storage errors are aiobucket errors; errors of the local file (a missing directory,
    no permission, a full disk) are the OSError the file system raised, as from open().
    The file is not fsynced (as with cp or curl -o): call os.fsync() on it if it must
    survive a power loss.
    """
    if await anyio.Path(path).is_dir():
        raise InvalidArgument(f"{str(path)!r} is a directory; name the file", bucket=bucket.name, key=key)
    span = start_span("download_to", bucket.name, key, version=version, concurrency=concurrency)
    try:
        provider, _ = bucket.provider()
        cache = replace(cache or GetOptions(), version=version)
        attrs, body, _ = await open_first(provider, key, cache, 0, None, part_size)
        span.set(size=attrs.size, version=attrs.version)
        await _write_file(provider, key, attrs, body, path, concurrency, part_size, span, on_progress)
    except BaseException as exc:
        # One failing part is reported as itself, not as the TaskGroup's group.
        first = exc.exceptions[0] if isinstance(exc, BaseExceptionGroup) else exc
        local_file = isinstance(first, OSError) and not isinstance(first, BucketError)
        err = first if local_file else _runtime.map_error(first, bucket.name, key)
        span.end(err)
        if err is exc:
            raise
        raise err from (first if err is not first else first.__cause__)
    span.end()
    return attrs


async def _write_file(
    provider: Provider,
    key: str,
    attrs: ObjectAttrs,
    body: Body,
    path: Path,
    concurrency: int,
    part_size: int,
    span: Span,
    on_progress: Callable[[int], object] | None,
) -> None:
    first_body: Body | None = body
    tmp = path.with_name(f".{path.name}.aiobucket-{uuid.uuid4().hex[:8]}")
    fd: int | None = None
    try:
        fd = await anyio.to_thread.run_sync(_create, tmp, attrs.size)
        ranges = ranges_of(0, attrs.size, part_size)
        done = [asyncio.Event() for _ in ranges]
        check = WholeObjectCheck.for_read(attrs, 0, None)
        todo = iter(range(len(ranges)))

        wfd = fd

        async def part(i: int) -> None:
            nonlocal first_body
            start, length = ranges[i]
            buf: list[bytes] = []
            buffered = 0
            pos = start

            async def flush() -> None:
                nonlocal pos, buffered
                data = b"".join(buf)
                buf.clear()
                buffered = 0
                await anyio.to_thread.run_sync(_pwrite_all, wfd, data, pos)
                pos += len(data)
                span.add("bytes", len(data))
                if on_progress is not None:
                    on_progress(len(data))

            async def on_chunk(chunk: bytes) -> None:
                nonlocal buffered
                buf.append(chunk)
                buffered += len(chunk)
                if buffered >= WRITE_BUFFER:
                    await flush()

            opened, first_body = (first_body, None) if i == 0 else (None, first_body)
            await fetch_range(provider, key, attrs, start, length, on_chunk, opened)
            if buf:
                await flush()
            done[i].set()

        async def worker() -> None:
            for i in todo:
                await part(i)

        async def verify() -> None:
            assert check is not None
            for (start, length), ready in zip(ranges, done, strict=True):
                await ready.wait()
                await anyio.to_thread.run_sync(_hash_range, wfd, start, length, check)
            check.end()

        async with asyncio.TaskGroup() as tg:
            for _ in range(min(concurrency, len(ranges))):
                tg.create_task(worker(), name=TASK_NAME)
            if check is not None:
                tg.create_task(verify(), name=TASK_NAME)
        await anyio.to_thread.run_sync(_finish_file, fd, tmp, path)
        fd = None
    except BaseException:
        await run_to_completion(_discard(first_body, fd, tmp))
        raise


def _create(tmp: Path, size: int) -> int:
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        os.ftruncate(fd, size)  # sparse: parts land at their offsets in any order
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    return fd


def _pwrite_all(fd: int, data: bytes, pos: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, pos)
        view, pos = view[n:], pos + n


def _hash_range(fd: int, start: int, length: int, check: WholeObjectCheck) -> None:
    end = start + length
    while start < end:
        block = os.pread(fd, min(end - start, WRITE_BUFFER), start)
        if not block:
            raise IntegrityError(f"the temporary file is short at offset {start}")
        check.update(block)
        start += len(block)


def _finish_file(fd: int, tmp: Path, path: Path) -> None:
    os.close(fd)
    os.replace(tmp, path)


async def _discard(body: Body | None, fd: int | None, tmp: Path) -> None:
    if body is not None:
        await body.aclose()
    if fd is not None:
        os.close(fd)
    await anyio.Path(tmp).unlink(missing_ok=True)
