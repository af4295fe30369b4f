"""curl against presigned URLs on the same server: the ceiling for one large stream."""

from __future__ import annotations

import shutil

from .._common import run_child

INSTALL_HINT = "curl is not installed: apt-get install -y curl"


def available() -> bool:
    return shutil.which("curl") is not None


def run(args: list[str]) -> tuple[float, float]:
    """Run curl; return (seconds, curl's peak RSS in MiB)."""
    return run_child(["curl", "-sS", "-f", *args])


def upload(url: str, source_file: str) -> tuple[float, float]:
    # "Expect:" off: no 100-continue round trip; the body streams from a tmpfs file.
    return run(["-X", "PUT", "-H", "Expect:", "-T", source_file, "-o", "/dev/null", url])


def download(url: str) -> tuple[float, float]:
    return run(["-o", "/dev/null", url])


async def presign(env: object, method: str, key: str) -> str:
    from aiobotocore.config import AioConfig
    from aiobotocore.session import AioSession

    e = env  # an Env
    config = AioConfig(signature_version="s3v4", s3={"addressing_style": "path"})
    async with AioSession().create_client(
        "s3",
        endpoint_url=e.endpoint,  # type: ignore[attr-defined]
        region_name=e.region,  # type: ignore[attr-defined]
        aws_access_key_id=e.access_key,  # type: ignore[attr-defined]
        aws_secret_access_key=e.secret_key,  # type: ignore[attr-defined]
        config=config,
    ) as client:
        op = "put_object" if method == "PUT" else "get_object"
        url: str = await client.generate_presigned_url(
            op,
            Params={"Bucket": e.bucket, "Key": key},
            ExpiresIn=3600,  # type: ignore[attr-defined]
        )
        return url
