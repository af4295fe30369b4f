"""Start and stop SeaweedFS ``weed mini`` on loopback, without pytest.

Shared by the pytest fixture in ``servers/seaweedfs.py`` and by ``benchmarks/run.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from servers._proc import free_ports, http_status, stop, wait_until

NAME = "seaweedfs"
PROVIDERS = {
    "seaweedfs": "seaweedfs", "rgw": "ceph", "moto": "aws", "aws-kms": "aws", "ministack": "aws",
    "rclone": "other",
}  # fmt: skip
"""Test server name -> the aiobucket store profile it runs as (moto imitates AWS)."""


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

    @property
    def provider(self) -> str:
        """The store profile the server is declared as (aiobucket's ``provider=``); each
        server's profile is checked against what ``aiobucket doctor`` finds there."""
        return PROVIDERS.get(self.name, "other")

    def settings(self, versioned: bool = False, **extra: object) -> dict[str, object]:
        """A settings mapping for ``aiobucket.configure``."""
        bucket = self.versioned_bucket if versioned else self.bucket
        return {
            "url": f"s3://{bucket}?endpoint={self.endpoint}&region={self.region}&provider={self.provider}&path_style=true",
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


def launch(base: Path, weed: str, quirks: dict[str, str]) -> tuple[subprocess.Popen[bytes], S3Server]:
    """Start ``weed mini`` under ``base`` on free ports; does not wait for it."""
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
        quirks=quirks,
        log=log,
    )
    return proc, server


def start(
    base: Path, weed: str | None = None, quirks: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], S3Server]:
    """Launch, wait for ``/healthz``, create the buckets. Stops the server if any step fails.

    Raises RuntimeError if the binary is missing or the server does not come up.
    Stop it with ``servers._proc.stop(proc)``.
    """
    weed = weed or weed_binary()
    if weed is None:
        raise RuntimeError("the SeaweedFS binary `weed` is not available")
    proc, server = launch(base, weed, quirks or {})
    try:
        healthy = f"{server.endpoint}/healthz"
        wait_until(lambda: http_status(healthy) == 200, proc, 60, "weed mini", base / "weed.out")
        create_buckets(server)
    except BaseException:
        stop(proc)
        raise
    return proc, server
