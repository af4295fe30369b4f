"""Upload, list, download and remove against any S3-compatible endpoint (MinIO, SeaweedFS, RGW, AWS).

    AIOBUCKET_S3_ENDPOINT=http://127.0.0.1:9000 AIOBUCKET_S3_BUCKET=demo \\
    AWS_ACCESS_KEY_ID=minioadmin AWS_SECRET_ACCESS_KEY=minioadmin \\
    python examples/s3_minio.py

Optional: AWS_REGION (default us-east-1); AIOBUCKET_S3_PROVIDER (minio, ceph, seaweedfs, r2 ...:
what the store honours; an endpoint aiobucket does not recognise is "other", which works for
this example but refuses conditional writes). Leave AIOBUCKET_S3_ENDPOINT unset for AWS itself.
The cloud bucket must already exist.
"""

from __future__ import annotations

import asyncio
import os
import sys
from urllib.parse import urlencode

import aiobucket
from aiobucket import Bucket, Query, UploadAttrs

photos = Bucket("photos")  # the code names the bucket; configuration says where it lives


def configure_from_env() -> None:
    cloud_bucket = os.environ.get("AIOBUCKET_S3_BUCKET")
    if not cloud_bucket:
        sys.exit(
            "set AIOBUCKET_S3_BUCKET (and AIOBUCKET_S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)"
        )
    query = {"region": os.environ.get("AWS_REGION", "us-east-1")}
    if os.environ.get("AIOBUCKET_S3_ENDPOINT"):
        query["endpoint"] = os.environ["AIOBUCKET_S3_ENDPOINT"]  # path-style addressing by default
    if os.environ.get("AIOBUCKET_S3_PROVIDER"):
        query["provider"] = os.environ["AIOBUCKET_S3_PROVIDER"]
    settings: dict[str, object] = {
        "url": f"s3://{cloud_bucket}?{urlencode(query)}",
        "key_prefix": "aiobucket-demo/",
    }
    if os.environ.get("AWS_ACCESS_KEY_ID"):
        # Name the variable that holds the secret, so it never sits in a config file.
        settings["access_key_id"] = os.environ["AWS_ACCESS_KEY_ID"]
        settings["secret_access_key_env"] = "AWS_SECRET_ACCESS_KEY"
    aiobucket.configure({"photos": settings})


async def main() -> None:
    configure_from_env()
    try:
        # Streaming upload: parts go out as they fill, memory stays bounded.
        async with photos.upload("hello.txt", attrs=UploadAttrs(content_type="text/plain")) as w:
            for i in range(3):
                await w.write(f"line {i}\n".encode())
        attrs = await w.close()
        print(f"uploaded {attrs.name}: {attrs.size} bytes, etag {attrs.etag}")

        async for err, entry in photos.list(Query(prefix="hello")):
            if err is not None:
                raise err
            print("listed", entry.name, entry.size) if entry else None

        async with photos.download("hello.txt") as r:
            print("downloaded:", (await r.read()).decode().splitlines())

        url = await photos.signed_download_url("hello.txt")
        print("signed URL (1 h):", url[:80], "...")

        await photos.remove("hello.txt")
        print("removed; exists now:", await photos.exists("hello.txt"))
    finally:
        await aiobucket.aclose()


if __name__ == "__main__":
    asyncio.run(main())
