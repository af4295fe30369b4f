"""Throughput of the whole-object checksums a download is verified against.

    python benchmarks/checksums.py [--mib 64] [--rounds 5]

CRC32C (google-crc32c), CRC64NVME (awscrt, as botocore's CRT extra), CRC32 (zlib) and MD5
(hashlib) over one buffer, best of N rounds, in GiB/s of this process's CPU. On a loaded
machine the figures are lower bounds.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time
import zlib
from collections.abc import Callable


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    import google_crc32c
    from awscrt.checksums import crc64nvme  # type: ignore[import-untyped]

    data = os.urandom(args.mib * 1024 * 1024)
    cases: dict[str, Callable[[bytes], object]] = {
        "crc32c (google-crc32c)": google_crc32c.value,
        "crc64nvme (awscrt)": crc64nvme,
        "crc32 (zlib)": zlib.crc32,
        "md5 (hashlib)": lambda d: hashlib.md5(d, usedforsecurity=False).digest(),
    }
    for name, fn in cases.items():
        best = min(_cpu_time(fn, data) for _ in range(args.rounds))
        print(f"{name:24} {args.mib / 1024 / best:7.2f} GiB/s")


def _cpu_time(fn: Callable[[bytes], object], data: bytes) -> float:
    start = time.process_time()
    fn(data)
    return max(time.process_time() - start, 1e-9)


if __name__ == "__main__":
    main()
