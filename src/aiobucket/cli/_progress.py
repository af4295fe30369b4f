"""A transfer progress bar for the CLI: rich on a terminal, nothing otherwise."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

from ..providers.base import MiB

__all__ = ["MIN_BYTES", "progress"]

MIN_BYTES = MiB
"""Transfers known to be smaller than this finish too fast to need a bar."""

Advance = Callable[[int], None]


def _noop(_: int) -> None:
    return None


def enabled(stream: TextIO | None = None) -> bool:
    stream = stream if stream is not None else sys.stderr
    if os.environ.get("AIOBUCKET_NO_PROGRESS"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


@contextmanager
def progress(description: str, total: int | None, *, show: bool = True) -> Iterator[Advance]:
    """Yield ``advance(nbytes)``. A bar (bytes, rate, ETA) is drawn on stderr only when
    ``show`` is true, stderr is a terminal, rich is installed and the transfer is not
    known to be small; otherwise ``advance`` does nothing."""
    if not show or not enabled() or (total is not None and total < MIN_BYTES):
        yield _noop
        return
    try:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
    except ImportError:
        yield _noop
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task(description, total=total)

        def advance(n: int) -> None:
            bar.advance(task, n)

        yield advance
