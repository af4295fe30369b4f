"""A fourth S3 target: MiniStack (``ministack`` on PyPI), a Python AWS emulator, on loopback.

Loaded as a pytest plugin. MiniStack pins its own botocore, which aiobotocore does not
accept, so it lives in its own venv, ``.venv-servers`` (``pip install '.[servers]'``,
built by ``.ci/run``); ``AIOBUCKET_MINISTACK`` may name another ``ministack`` executable.
The session fixture ``ministack_server`` starts one on 127.0.0.1 with a free port,
waits until it answers, creates a plain and a versioned bucket, and stops it by PID.

It is declared as ``provider=aws`` (what it imitates); where ``aiobucket doctor`` sees it
differ, ``DOCTOR_DIFFERENCES`` says so, and ``QUIRKS`` lists what the conformance suite meets.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from servers._proc import free_ports, http_status, missing, stop, tail, wait_until
from servers.seaweedfs_server import S3Server, create_buckets

__all__ = ["NAME", "QUIRKS", "conformance_target", "launch", "ministack_server"]

NAME = "ministack"
ROOT = Path(__file__).resolve().parents[2]

QUIRKS: dict[str, str] = {
    "multipart_unverified": (
        "MiniStack 1.5 keeps composite multipart checksums only (it refuses a FULL_OBJECT CRC32C at "
        "completion, BadDigest, and aiobucket completes without it): a whole download of a "
        "multipart object is not verified"
    ),
    "versioned_range_ignored": (
        "MiniStack 1.5 ignores Range on a GET with versionId and sends the whole object "
        "(aiobucket refuses that answer: ConnectionLost)"
    ),
    "post_policy_unchecked": (
        "MiniStack 1.5 stores a POST form upload whose policy was tampered with "
        "(it checks no policy signature)"
    ),
}
"""MiniStack differences from AWS S3 that the conformance suite meets (strict xfails)."""

DOCTOR_DIFFERENCES: dict[str, str] = {
    "conditional_copy": "MiniStack 1.5 ignores If-None-Match on CopyObject (AWS honours it)",
    "multipart_checksum": (
        "MiniStack 1.5 keeps composite multipart checksums only: it refuses a FULL_OBJECT CRC32C at "
        "completion (BadDigest), which aiobucket learns as composite"
    ),
}
"""Where ``aiobucket doctor`` sees MiniStack differ from ``provider=aws``."""


def executable() -> str | None:
    named = os.environ.get("AIOBUCKET_MINISTACK")
    for candidate in (
        named,
        ROOT / ".venv-servers" / "bin" / "ministack",
        Path(sys.executable).parent / "ministack",
    ):
        if candidate and Path(candidate).exists():
            return str(candidate)
    return None


def launch(base: Path, exe: str) -> tuple[subprocess.Popen[bytes], S3Server]:
    (port,) = free_ports(1)
    log = base / "ministack.out"
    env = {
        **os.environ,
        "GATEWAY_PORT": str(port),
        "BIND_HOST": "127.0.0.1",
        "TMPDIR": str(base),
        "SERVICES": "s3",
    }
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [exe], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            cwd=base, start_new_session=True,
        )  # fmt: skip
    server = S3Server(
        name=NAME,
        endpoint=f"http://127.0.0.1:{port}",
        access_key="test",  # MiniStack's own default account: presigned URLs are checked against it
        secret_key="test",
        region="us-east-1",
        bucket="aiobucket-plain",
        versioned_bucket="aiobucket-versioned",
        quirks=QUIRKS,
        log=log,
    )
    try:
        wait_until(
            lambda: http_status(f"{server.endpoint}/_ministack/health") == 200, proc, 60, "ministack", log
        )
        create_buckets(server)
    except BaseException:
        stop(proc)
        raise
    return proc, server


@pytest.fixture(scope="session")
def ministack_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    exe = executable()
    if exe is None:
        missing("MiniStack (ministack)", "build its venv: python3 -m venv .venv-servers && "
                ".venv-servers/bin/pip install '.[servers]'")  # fmt: skip
        raise AssertionError("unreachable")
    base = tmp_path_factory.mktemp("ministack")
    try:
        proc, server = launch(base, exe)
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    except BaseException:
        print(f"ministack log tail:\n{tail(base / 'ministack.out')}", file=sys.stderr)
        raise
    try:
        yield server
    finally:
        stop(proc)


def conformance_target(request: pytest.FixtureRequest, versioned: bool) -> dict[str, object]:
    server: S3Server = request.getfixturevalue("ministack_server")
    return server.settings(versioned)
