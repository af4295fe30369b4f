"""Seed the server and the disk with what the read scenarios read."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from ._common import BIG_KEY, Env, MiB, bounded, chunks, list_key, small_key


def write_source_file(path: Path, size: int) -> None:
    """A file of ``size`` bytes (a random 1 MiB block repeated), for curl -T and cp."""
    block = os.urandom(MiB)
    with open(path, "wb") as fh:
        left = size
        while left > 0:
            fh.write(block[: min(left, MiB)])
            left -= MiB


async def seed_server(env: Env) -> None:
    from aiobotocore.config import AioConfig
    from aiobotocore.session import AioSession

    config = AioConfig(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        max_pool_connections=64,
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    async with AioSession().create_client(
        "s3",
        endpoint_url=env.endpoint,
        region_name=env.region,
        aws_access_key_id=env.access_key,
        aws_secret_access_key=env.secret_key,
        config=config,
    ) as c:
        small = os.urandom(env.small_size)
        await bounded(
            env.small_count, 64, lambda i: c.put_object(Bucket=env.bucket, Key=small_key(i), Body=small)
        )
        await bounded(
            env.list_count, 64, lambda i: c.put_object(Bucket=env.bucket, Key=list_key(i), Body=b"x")
        )
        # The big object, in 8 MiB parts.
        upload_id = (await c.create_multipart_upload(Bucket=env.bucket, Key=BIG_KEY))["UploadId"]
        parts, buf, number = [], bytearray(), 0
        async for chunk in chunks(env.big_size):
            buf += chunk
            if len(buf) >= 8 * MiB:
                number += 1
                r = await c.upload_part(
                    Bucket=env.bucket, Key=BIG_KEY, UploadId=upload_id, PartNumber=number, Body=bytes(buf)
                )
                parts.append({"ETag": r["ETag"], "PartNumber": number})
                buf = bytearray()
        if buf:
            number += 1
            r = await c.upload_part(
                Bucket=env.bucket, Key=BIG_KEY, UploadId=upload_id, PartNumber=number, Body=bytes(buf)
            )
            parts.append({"ETag": r["ETag"], "PartNumber": number})
        await c.complete_multipart_upload(
            Bucket=env.bucket, Key=BIG_KEY, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
        head = await c.head_object(Bucket=env.bucket, Key=BIG_KEY)
        assert head["ContentLength"] == env.big_size, head


async def seed_local(env: Env, source_file: Path) -> None:
    import shutil

    from .scenarios import local

    work = Path(env.workdir)
    shutil.copyfile(source_file, work / "plain-file")
    b = local.configure(work / "bucket")
    async with b.upload(local.READ_KEY) as w:
        async for chunk in chunks(env.big_size):
            await w.write(chunk)
    import aiobucket

    await aiobucket.aclose()


def seed(env: Env, source_file: Path, *, server: bool, disk: bool) -> None:
    if server:
        asyncio.run(seed_server(env))
    if disk:
        asyncio.run(seed_local(env, source_file))
