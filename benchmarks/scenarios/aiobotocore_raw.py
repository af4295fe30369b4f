"""Raw aiobotocore, written as an expert would: one shared client, a pool sized for the
fan-out, checksums only when required, multipart by hand with bounded concurrency."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession

from .._common import Env, MiB

PART = 8 * MiB
PARTS_IN_FLIGHT = 8


class Ctx:
    def __init__(self, client: Any, stack: AsyncExitStack, bucket: str) -> None:
        self.client, self.stack, self.bucket = client, stack, bucket


async def open(env: Env) -> Ctx:
    stack = AsyncExitStack()
    config = AioConfig(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        max_pool_connections=env.concurrency,
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    client = await stack.enter_async_context(
        AioSession().create_client(
            "s3",
            endpoint_url=env.endpoint,
            region_name=env.region,
            aws_access_key_id=env.access_key,
            aws_secret_access_key=env.secret_key,
            config=config,
        )
    )
    return Ctx(client, stack, env.bucket)


async def close(ctx: Ctx) -> None:
    await ctx.stack.aclose()


async def upload(ctx: Ctx, key: str, source: AsyncIterator[bytes], size: int) -> None:
    c, bucket = ctx.client, ctx.bucket
    upload_id = (await c.create_multipart_upload(Bucket=bucket, Key=key))["UploadId"]
    slots = asyncio.Semaphore(PARTS_IN_FLIGHT)
    tasks: list[asyncio.Task[dict[str, Any]]] = []

    async def part(number: int, body: bytes) -> dict[str, Any]:
        try:
            resp = await c.upload_part(
                Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body
            )
            return {"ETag": resp["ETag"], "PartNumber": number}
        finally:
            slots.release()

    try:
        buf = bytearray()
        async for chunk in source:
            buf += chunk
            if len(buf) >= PART:
                await slots.acquire()
                tasks.append(asyncio.create_task(part(len(tasks) + 1, bytes(buf))))
                buf = bytearray()
        if buf or not tasks:
            await slots.acquire()
            tasks.append(asyncio.create_task(part(len(tasks) + 1, bytes(buf))))
        parts = await asyncio.gather(*tasks)
        await c.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await c.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        raise


async def download(ctx: Ctx, key: str) -> int:
    resp = await ctx.client.get_object(Bucket=ctx.bucket, Key=key)
    n = 0
    body = resp["Body"]
    async with body:  # releases the connection, even on error
        while chunk := await body.read(MiB):
            n += len(chunk)
    return n


async def put_small(ctx: Ctx, key: str, data: bytes) -> None:
    await ctx.client.put_object(Bucket=ctx.bucket, Key=key, Body=data)


async def get_small(ctx: Ctx, key: str) -> int:
    resp = await ctx.client.get_object(Bucket=ctx.bucket, Key=key)
    body = resp["Body"]
    async with body:
        return len(await body.read())


async def list_keys(ctx: Ctx, prefix: str) -> int:
    n = 0
    paginator = ctx.client.get_paginator("list_objects_v2")
    async for page in paginator.paginate(Bucket=ctx.bucket, Prefix=prefix):
        n += len(page.get("Contents", []))
    return n
