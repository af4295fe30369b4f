"""``aiobucket fsck BUCKET [--dry-run]``: check and repair a local bucket.

A thin shell over ``providers.local._fsck.fsck``, which holds the rules. Exit
status 0 when the bucket is consistent afterwards, 1 when problems remain (a dry
run that found some, or size mismatches, which are never repaired).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from urllib.parse import urlsplit

from .. import config
from ..errors import InvalidArgument

__all__ = ["DESCRIPTION", "HELP", "add_arguments", "run"]

HELP = "check a local (file://) bucket's index against its files, and repair it"

DESCRIPTION = """\
Compares the bucket's index with its blob files and its tmp/ directory:

  * index rows whose blob file is missing (the object's bytes are lost):
    the row is dropped; on a versioned bucket an older version becomes current
  * blob files no index row names (a write or delete died half way): unlinked
  * leftover tmp files of uploads whose process died: unlinked
  * blob files whose size disagrees with the index: reported, never repaired

Debris younger than --min-age seconds (default 3600), or named by the journal of
a write still in progress, is left alone: it may belong to another process. Use
--min-age 0 only when nothing else is using the bucket. The check holds the
index's write lock, so writers wait until it is done. It covers the whole root
directory, whatever key_prefix the bucket's configuration has."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bucket", help="a bucket whose configuration is a file:// URL")
    p.add_argument("--dry-run", action="store_true", help="only report; change nothing")
    p.add_argument("--min-age", type=float, default=None, metavar="SECONDS", help="see above (default 3600)")
    p.add_argument("--json", action="store_true", help="the report as JSON")


def run(args: argparse.Namespace) -> int:
    from ..providers.local import _fsck

    name = args.bucket.removesuffix(":")
    url = config.resolve(name).url
    parts = urlsplit(url)
    if parts.scheme != "file":
        raise InvalidArgument(
            f"fsck works on local buckets (file://), and this one is at {url!r}", bucket=name
        )
    if args.min_age is not None and args.min_age < 0:
        raise InvalidArgument("--min-age must be 0 or more seconds", bucket=name)
    min_age = _fsck.MAX_AGE if args.min_age is None else args.min_age
    report = _fsck.fsck(Path(parts.path), dry_run=args.dry_run, min_age=min_age)
    if args.json:
        data = {
            "root": str(report.root),
            "dry_run": report.dry_run,
            "consistent": report.consistent,
            "missing_blobs": [{"key": k, "version": v, "blob": b} for k, v, b in report.missing_blobs],
            "size_mismatches": [
                {"key": k, "version": v, "blob": b, "index_size": i, "file_size": n}
                for k, v, b, i, n in report.size_mismatches
            ],
            "orphan_blobs": [{"blob": b, "size": n} for b, n in report.orphan_blobs],
            "leftover_tmp": [{"path": p, "size": n} for p, n in report.leftover_tmp],
            "in_progress": report.in_progress,
        }
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        sys.stdout.write("".join(f"{line}\n" for line in report.lines()))
    return 0 if report.consistent else 1
