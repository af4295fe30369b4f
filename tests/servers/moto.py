"""A third S3 target with AWS's own semantics: moto's server (``moto[server]``) on loopback.

Loaded as a pytest plugin. The session fixture ``moto_server`` starts one
``python -m moto.server`` on 127.0.0.1 with a free port and a temporary directory
(large objects spill to its TMPDIR), waits for ``/moto-api/``, creates a plain and a
versioned bucket, and stops the server by PID at the end of the session.

moto follows AWS for If-Match/If-None-Match on PutObject, CopyObject and multipart
completion, where SeaweedFS and RGW declare quirks. It is not a judge of integrity or
authentication: it accepts any signature, or none (it checks signatures only with IAM
auth switched on), and it verifies no body digest (see QUIRKS). Signing and digests
are proven on SeaweedFS and RGW (tests/test_s3_sigv4_server.py), never here.

moto computes a multipart upload's FULL_OBJECT CRC32C itself (ignoring the one the
client sends) with the optional ``crc32c`` package, and without it silently with
zlib's CRC32 under the CRC32C name, which would fail every whole download of a
multipart object: the fixture requires that package (it is in the dev extra).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from servers._proc import INSTALL_HINT, free_ports, http_status, missing, stop, tail, wait_until
from servers.seaweedfs_server import S3Server, create_buckets

__all__ = ["NAME", "QUIRKS", "conformance_target", "launch", "moto_server"]

NAME = "moto"

QUIRKS: dict[str, str] = {
    "moto_signatures_unchecked": (
        "moto checks no signature, policy, expiry or signed header, "
        "so forged or expired forms and signed URLs are accepted"
    ),
    "checksums_unverified": (
        "moto 5.2 stores a body that does not match its Content-MD5 or x-amz-checksum-* header "
        "(and checks no signature, so not x-amz-content-sha256 either)"
    ),
    "not_exists_race": (
        "moto 5.2 checks If-None-Match on CompleteMultipartUpload before assembling the parts, "
        "without a lock in its threaded server: concurrent not_exists multipart writers can both win"
    ),
    "versions_not_url_encoded": (
        "moto 5.2 ignores encoding-type=url on ListObjectVersions (it honours it on ListObjectsV2), "
        "so a key with a control character breaks the XML of its versions listing"
    ),
}
"""moto 5.2 differences from AWS S3 that the conformance suite meets; tests naming one run
as a strict xfail here."""

DOCTOR_DIFFERENCES: dict[str, str] = {  # (it keeps a PUT's checksum when the SDK header names it)
    "checksum_headers": "moto 5.2 stores a body whose x-amz-checksum-crc32c is wrong (see QUIRKS)",
    "conditional_copy": (
        "moto 5.2 ignores If-None-Match on CopyObject (AWS honours it): aiobucket's HEAD precheck "
        "refuses outside a race window"
    ),
}
"""Where ``aiobucket doctor`` sees moto differ from the profile it is declared as (aws):
tests/test_s3_doctor.py checks that exactly these differ."""


def launch(base: Path) -> tuple[subprocess.Popen[bytes], S3Server]:
    """Start moto's server under ``base`` on a free port; wait until it answers; make the buckets.

    Stops the server if any step fails. Stop it with ``servers._proc.stop(proc)``.
    """
    (base / "tmp").mkdir()
    (port,) = free_ports(1)
    log = base / "moto.out"
    env = {**os.environ, "TMPDIR": str(base / "tmp")}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    server = S3Server(
        name=NAME,
        endpoint=f"http://127.0.0.1:{port}",
        access_key="aiobucket-test",
        secret_key="aiobucket-test-secret",
        region="us-east-1",
        bucket="aiobucket-plain",
        versioned_bucket="aiobucket-versioned",
        quirks=QUIRKS,
        log=log,
    )
    try:
        ready = f"{server.endpoint}/moto-api/"
        wait_until(lambda: http_status(ready) == 200, proc, 60, "moto server", log)
        create_buckets(server)
    except BaseException:
        stop(proc)
        raise
    return proc, server


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("flask") is None:
        missing("moto's server (moto[server])", INSTALL_HINT)
    if importlib.util.find_spec("crc32c") is None:  # see the module docs
        missing("the crc32c package, which moto needs to compute CRC32C checksums", INSTALL_HINT)
    base = tmp_path_factory.mktemp("moto")
    try:
        proc, server = launch(base)
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    except BaseException:
        print(f"moto server log tail:\n{tail(base / 'moto.out')}", file=sys.stderr)
        raise
    try:
        yield server
    finally:
        stop(proc)


def conformance_target(request: pytest.FixtureRequest, versioned: bool) -> dict[str, object]:
    """Bucket settings for the conformance suite (the conftest adds a per-test key_prefix)."""
    server: S3Server = request.getfixturevalue("moto_server")
    return server.settings(versioned)
