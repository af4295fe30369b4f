"""Shared helpers for the benchmark workers: sizes, data sources, memory, concurrency."""

from __future__ import annotations

import asyncio
import os
import resource
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
CHUNK = 1 * MiB


@dataclass
class Env:
    """What a worker needs to know: the server, the sizes and the keys of one measurement."""

    scenario: str
    lib: str
    endpoint: str = ""
    region: str = "us-east-1"
    access_key: str = ""
    secret_key: str = ""
    bucket: str = ""
    big_size: int = GiB
    small_size: int = 4 * KiB
    small_count: int = 2000
    concurrency: int = 64
    list_count: int = 20_000
    memory_ops: int = 20_000
    workdir: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


async def chunks(total: int, size: int = CHUNK) -> AsyncIterator[bytes]:
    """An async generator of fresh ``size``-byte chunks: a request body arriving over the network.

    Each chunk is a new bytes object (a copy of one random template), as a web
    framework hands them out; nothing is reused behind the library's back.
    """
    template = bytearray(os.urandom(min(size, total) or 1))
    sent = 0
    while sent < total:
        n = min(size, total - sent)
        yield bytes(template[:n]) if n < len(template) else bytes(template)
        sent += n


async def bounded(n: int, concurrency: int, op: Callable[[int], Awaitable[object]]) -> None:
    """Run ``op(0) .. op(n-1)`` with at most ``concurrency`` in flight (a fixed pool of workers)."""
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            await op(i)

    async with asyncio.TaskGroup() as tg:
        for _ in range(min(concurrency, n)):
            tg.create_task(worker())


def small_key(i: int) -> str:
    return f"small/{i:05d}"


def list_prefix() -> str:
    return "list/"


def list_key(i: int) -> str:
    return f"list/{i:05d}"


BIG_KEY = "big/object"


# -- memory -------------------------------------------------------------------


def _status_kib(field_name: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so the peak is this measurement's own."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def rss_mib() -> float:
    kib = _status_kib("VmRSS")
    if kib is None:
        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024


def peak_mib() -> float:
    kib = _status_kib("VmHWM")
    if kib is None:
        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024


def run_child(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd``; return (seconds, its peak RSS in MiB).

    The peak is the child's own VmHWM, sampled every 10 ms while it runs:
    ru_maxrss from wait4 is useless here, because Linux carries the parent's
    high-water mark into a child across fork and exec.
    """
    import subprocess
    import time

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    peak_kib = 0
    status = f"/proc/{proc.pid}/status"
    while proc.poll() is None:
        try:
            with open(status) as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        peak_kib = max(peak_kib, int(line.split()[1]))
                        break
        except (OSError, ValueError):
            pass
        time.sleep(0.01)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed with exit code {proc.returncode}")
    return elapsed, peak_kib / 1024
