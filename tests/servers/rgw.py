"""A real distributed S3 store for the tests: single-node Ceph RGW 16.2 (see rgw.sh).

Loaded as a pytest plugin. The session fixture ``rgw_server`` runs ``rgw.sh start``
with free ports and a temporary state directory, creates a plain and a versioned
bucket, and runs ``rgw.sh stop`` (which stops each daemon by PID) at the end.

Set ``AIOBUCKET_RGW_ENDPOINT`` (plus ``AIOBUCKET_RGW_ACCESS_KEY`` /
``AIOBUCKET_RGW_SECRET_KEY``) to use an RGW that is already running instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from servers._proc import free_ports, missing
from servers.seaweedfs import S3Server, create_buckets

NAME = "rgw"
SCRIPT = Path(__file__).with_name("rgw.sh")
INSTALL = "apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw"

QUIRKS: dict[str, str] = {
    "multipart_not_exists": (
        "RGW 16.2 ignores If-None-Match on CompleteMultipartUpload: a multipart upload with "
        "not_exists overwrites an existing object"
    ),
    "if_match": (
        "RGW 16.2 answers 412 to a quoted If-Match on PutObject, and to any If-Match on a "
        "versioned bucket's PutObject"
    ),
    "multipart_unverified": (
        "RGW 16.2 keeps no whole-object checksum for a multipart object: it ignores the "
        "x-amz-checksum-algorithm/-type of CreateMultipartUpload and the FULL_OBJECT "
        "x-amz-checksum-crc32c of CompleteMultipartUpload and returns no x-amz-checksum-* on "
        "GET/HEAD, and the object's ETag is an MD5 of the parts' MD5s (HEAD ?partNumber= answers "
        "with the whole object, so the part sizes to check it against cannot be learnt); a whole "
        "download of it is not verified"
    ),
    "not_exists_race": "RGW 16.2 ignores If-None-Match on PutObject in versioned buckets",
    "conditional_copy": ("RGW 16.2 ignores the destination If-None-Match/If-Match on CopyObject"),
}
"""RGW 16.2 differences from AWS S3. Tests that hit one name it and run as a strict xfail."""


def available() -> bool:
    return all(shutil.which(b) for b in ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "monmaptool"))


@pytest.fixture(scope="session")
def rgw_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    access_key = os.environ.get("AIOBUCKET_RGW_ACCESS_KEY", "aiobucket-test")
    secret_key = os.environ.get("AIOBUCKET_RGW_SECRET_KEY", "aiobucket-test-secret")
    external = os.environ.get("AIOBUCKET_RGW_ENDPOINT")
    if external:
        server = S3Server(NAME, external.rstrip("/"), access_key, secret_key, "us-east-1",
                          "aiobucket-plain", "aiobucket-versioned", QUIRKS)  # fmt: skip
        create_buckets(server)
        yield server
        return
    if not available():
        missing("Ceph RGW (ceph-mon, ceph-osd, radosgw)", f"install it with: {INSTALL}")
    base = tmp_path_factory.mktemp("rgw")
    port, mon_v1, mon_v2 = free_ports(3)
    env = {
        **os.environ,
        "RGW_DIR": str(base),
        "RGW_PORT": str(port),
        "RGW_MON_PORT_V1": str(mon_v1),
        "RGW_MON_PORT_V2": str(mon_v2),
        "RGW_ACCESS_KEY": access_key,
        "RGW_SECRET_KEY": secret_key,
    }
    started = subprocess.run(
        ["bash", str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=180, check=False
    )
    try:
        if started.returncode != 0:
            pytest.fail(
                f"rgw.sh start failed ({started.returncode}):\n{started.stdout}\n{started.stderr}",
                pytrace=False,
            )
        server = S3Server(
            NAME, f"http://127.0.0.1:{port}", access_key, secret_key, "us-east-1",
            "aiobucket-plain", "aiobucket-versioned", QUIRKS, log=base / "log" / "rgw.log",
        )  # fmt: skip
        create_buckets(server)
        yield server
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop"], env=env, capture_output=True, timeout=60, check=False)


def conformance_target(request: pytest.FixtureRequest, versioned: bool) -> dict[str, object]:
    """Bucket settings for the conformance suite (the conftest adds a per-test key_prefix)."""
    server: S3Server = request.getfixturevalue("rgw_server")
    return server.settings(versioned)
