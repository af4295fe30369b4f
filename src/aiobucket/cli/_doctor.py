"""``aiobucket doctor BUCKET [--json]``: what an S3-compatible store really honours.

A thin shell over ``providers.s3._doctor.diagnose``, which holds the probes. It
writes under a temporary prefix and removes it. Exit status 0 when the declared
profile claims nothing the store did not do, 1 otherwise (the report then names
the ``provider=`` and the overrides to use).
"""

from __future__ import annotations

import argparse
import json
import sys

from .. import _runtime
from ..errors import InvalidArgument
from ..providers.prefixed import PrefixedProvider
from ..types import BucketConfig

__all__ = ["DESCRIPTION", "HELP", "add_arguments", "run"]

HELP = "probe what an S3-compatible bucket's store honours, and compare it with its profile"

DESCRIPTION = """\
Writes a few small objects under a temporary prefix (aiobucket-doctor-<hex>/)
and reports what the store did with each request aiobucket relies on:

  * If-None-Match: * twice (the second must be refused), and a wrong If-Match
  * x-amz-checksum-crc32c (a wrong one must be refused) and x-amz-checksum-mode
  * a one-part multipart upload with a FULL_OBJECT CRC32C, and one completed
    with If-None-Match on an existing key
  * a conditional CopyObject, DeleteObjects, version listing, a POST form upload

It removes what it wrote, and prints the table and the provider= (or the
option overrides) that declare what it saw. It never runs implicitly."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bucket", help="a bucket whose configuration is an s3:// URL")
    p.add_argument("--json", action="store_true", help="the report as JSON")


async def run(args: argparse.Namespace) -> int:
    from ..providers.s3 import S3Provider
    from ..providers.s3._doctor import diagnose

    name = args.bucket.removesuffix(":")
    provider, settings = _runtime.provider_for(name, BucketConfig())
    prefix = settings.key_prefix
    if isinstance(provider, PrefixedProvider):
        provider = provider.inner
    if not isinstance(provider, S3Provider):
        raise InvalidArgument(
            f"doctor probes S3-compatible stores, and this bucket is at {settings.url!r}", bucket=name
        )
    d = await diagnose(provider, prefix)
    report = d.to_json()
    if args.json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        out = [f"bucket {name!r}: declared provider={report['provider']}", ""]
        out.append(f"{'field':<22}{'declared':<13}{'observed':<13}  store's answer")
        for field, row in report["fields"].items():
            mark = "" if row["agrees"] in (True, None) else "  <-- differs"
            out.append(f"{field:<22}{row['declared']!s:<13}{row['observed']!s:<13}  {row['answer']}{mark}")
        out += ["", f"use: {report['suggestion']}", f"cleanup: {report['cleanup']}"]
        sys.stdout.write("\n".join(out) + "\n")
    return 0 if not d.differences else 1
