"""A sixth S3 target: s3rver (npm, the fake S3 server for Node), installed under
``.tools/s3rver`` by ``.ci/run``; ``AIOBUCKET_S3RVER`` may name another binary.

Loaded as a pytest plugin; no conformance target: like rclone it accepts ``If-None-Match``
and ``If-Match`` and ignores them (the store issue #20 warns about), verifies no
checksum and has no versions (405). Declared ``provider=other``, aiobucket refuses
conditional writes to it before any I/O; ``aiobucket doctor`` checks that verdict.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from servers._proc import free_ports, http_status, missing, stop, tail, wait_until
from servers.seaweedfs_server import S3Server

__all__ = ["DOCTOR_DIFFERENCES", "NAME", "QUIRKS", "s3rver_server"]

NAME = "s3rver"
ROOT = Path(__file__).resolve().parents[2]

QUIRKS: dict[str, str] = {}

DOCTOR_DIFFERENCES: dict[str, str] = {
    "versions": "s3rver 3.7 answers 405 MethodNotAllowed to ListObjectVersions",
}
"""Where ``aiobucket doctor`` sees s3rver differ from ``provider=other``."""


def executable() -> str | None:
    named = os.environ.get("AIOBUCKET_S3RVER")
    for candidate in (named, ROOT / ".tools" / "s3rver" / "node_modules" / ".bin" / "s3rver"):
        if candidate and Path(candidate).exists():
            return str(candidate)
    return None


@pytest.fixture(scope="session")
def s3rver_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    exe = executable()
    if exe is None:
        missing("s3rver (npm)", "run .ci/run, or: npm install --prefix .tools/s3rver s3rver@3.7.1")
        raise AssertionError("unreachable")
    base = tmp_path_factory.mktemp("s3rver")
    (port,) = free_ports(1)
    log = base / "s3rver.out"
    with open(log, "wb") as out:
        # s3rver takes any signature made with its fixed key pair (S3RVER / S3RVER).
        proc = subprocess.Popen(
            [exe, "--directory", str(base / "data"), "--address", "127.0.0.1", "--port", str(port),
             "--configure-bucket", "aiobucket-plain", "--configure-bucket", "aiobucket-versioned",
             "--silent"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    server = S3Server(NAME, f"http://127.0.0.1:{port}", "S3RVER", "S3RVER", "us-east-1",
                      "aiobucket-plain", "aiobucket-versioned", QUIRKS, log)  # fmt: skip
    try:
        wait_until(lambda: http_status(server.endpoint + "/") in (200, 400, 403), proc, 30, "s3rver", log)
    except BaseException:
        print(f"s3rver log tail:\n{tail(log)}", file=sys.stderr)
        stop(proc)
        raise
    try:
        yield server
    finally:
        stop(proc)
