"""Scenario 6: the local backend against a raw aiofiles loop and against cp.

Every writer makes its bytes durable (aiobucket fsyncs and renames; the aiofiles
loop fsyncs; cp is followed by ``sync FILE``), so the comparison is like for like.
Reads come from the page cache for everyone (the files were just written).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiofiles

import aiobucket
from aiobucket import Bucket

from .._common import MiB, chunks, run_child

READ_KEY = "read/object"


def configure(root: Path) -> Bucket:
    aiobucket.configure({"bench-local": f"file://{root}"})
    return Bucket("bench-local")


async def aiobucket_write(root: Path, key: str, size: int) -> None:
    b = configure(root)
    async with b.upload(key) as w:
        async for chunk in chunks(size):
            await w.write(chunk)


async def aiobucket_read(root: Path, key: str) -> int:
    b = configure(root)
    n = 0
    async with b.download(key) as r:
        async for chunk in r:
            n += len(chunk)
    return n


async def aiofiles_write(path: Path, size: int) -> None:
    async with aiofiles.open(path, "wb") as f:
        async for chunk in chunks(size):
            await f.write(chunk)
        await f.flush()
        await asyncio.to_thread(os.fsync, f.fileno())


async def aiofiles_read(path: Path) -> int:
    n = 0
    async with aiofiles.open(path, "rb") as f:
        while chunk := await f.read(MiB):
            n += len(chunk)
    return n


def _child(cmd: list[str]) -> tuple[float, float]:
    return run_child(cmd)


def cp_write(src: Path, dst: Path) -> tuple[float, float]:
    """cp, then ``sync FILE`` (an fsync of it): durable, like the other two writers."""
    copy_s, peak = _child(["cp", str(src), str(dst)])
    sync_s, _ = _child(["sync", str(dst)])
    return copy_s + sync_s, peak


def cp_read(path: Path) -> tuple[float, float]:
    return _child(["cp", str(path), "/dev/null"])
