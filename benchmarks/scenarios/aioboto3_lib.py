"""aioboto3 as its README shows it: a session client with upload_fileobj/download_fileobj
(default TransferConfig) and the resource API for listing. Default connection pool."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import aioboto3
from botocore.config import Config

from .._common import Env


class _AsyncReader:
    """An async file over an async generator, for upload_fileobj (which awaits read())."""

    def __init__(self, source: AsyncIterator[bytes]) -> None:
        self._source = source
        self._buf = memoryview(b"")

    async def read(self, n: int = -1) -> bytes | memoryview:
        if not self._buf:
            try:
                self._buf = memoryview(await anext(self._source))
            except StopAsyncIteration:
                return b""
        out, self._buf = self._buf[:n], self._buf[n:]
        return out


class _Sink:
    def write(self, data: bytes) -> int:
        return len(data)


class _Counter:
    def __init__(self) -> None:
        self.n = 0

    def write(self, data: bytes) -> int:
        self.n += len(data)
        return len(data)


class Ctx:
    def __init__(self, client: Any, s3: Any, stack: AsyncExitStack, bucket: str) -> None:
        self.client, self.s3, self.stack, self.bucket = client, s3, stack, bucket


async def open(env: Env) -> Ctx:
    session = aioboto3.Session()
    kwargs: dict[str, Any] = {
        "endpoint_url": env.endpoint,
        "region_name": env.region,
        "aws_access_key_id": env.access_key,
        "aws_secret_access_key": env.secret_key,
        # What any S3-compatible endpoint needs; the pool stays at its default.
        "config": Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    }
    stack = AsyncExitStack()
    client = await stack.enter_async_context(session.client("s3", **kwargs))
    s3 = await stack.enter_async_context(session.resource("s3", **kwargs))
    return Ctx(client, s3, stack, env.bucket)


async def close(ctx: Ctx) -> None:
    await ctx.stack.aclose()


async def upload(ctx: Ctx, key: str, source: AsyncIterator[bytes], size: int) -> None:
    await ctx.client.upload_fileobj(_AsyncReader(source), ctx.bucket, key)


async def download(ctx: Ctx, key: str) -> int:
    sink = _Counter()
    await ctx.client.download_fileobj(ctx.bucket, key, sink)
    return sink.n


async def put_small(ctx: Ctx, key: str, data: bytes) -> None:
    await ctx.client.upload_fileobj(io.BytesIO(data), ctx.bucket, key)


async def get_small(ctx: Ctx, key: str) -> int:
    buf = io.BytesIO()
    await ctx.client.download_fileobj(ctx.bucket, key, buf)
    return buf.tell()


async def list_keys(ctx: Ctx, prefix: str) -> int:
    bucket = await ctx.s3.Bucket(ctx.bucket)
    n = 0
    async for _obj in bucket.objects.filter(Prefix=prefix):
        n += 1
    return n
