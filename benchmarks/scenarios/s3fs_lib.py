"""s3fs through its async API (asynchronous=True, the underscore coroutines).

s3fs has no async streaming writer (open_async is read-only), so the upload
collects the stream and hands it to _pipe_file, which multiparts it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import s3fs

from .._common import Env


class Ctx:
    def __init__(self, fs: Any, session: Any, bucket: str) -> None:
        self.fs, self.session, self.bucket = fs, session, bucket

    def path(self, key: str) -> str:
        return f"{self.bucket}/{key}"


async def open(env: Env) -> Ctx:
    fs = s3fs.S3FileSystem(
        asynchronous=True,
        skip_instance_cache=True,
        key=env.access_key,
        secret=env.secret_key,
        endpoint_url=env.endpoint,
        client_kwargs={"region_name": env.region},
        config_kwargs={
            "request_checksum_calculation": "when_required",
            "response_checksum_validation": "when_required",
        },
    )
    session = await fs.set_session()
    return Ctx(fs, session, env.bucket)


async def close(ctx: Ctx) -> None:
    await ctx.session.close()


async def upload(ctx: Ctx, key: str, source: AsyncIterator[bytes], size: int) -> None:
    buf = bytearray()
    async for chunk in source:
        buf += chunk
    await ctx.fs._pipe_file(ctx.path(key), buf)


async def download(ctx: Ctx, key: str) -> int:
    n = 0
    f = await ctx.fs.open_async(ctx.path(key), "rb")
    try:
        while chunk := await f.read(1024 * 1024):
            n += len(chunk)
    finally:
        await f.close()
    return n


async def put_small(ctx: Ctx, key: str, data: bytes) -> None:
    await ctx.fs._pipe_file(ctx.path(key), data)


async def get_small(ctx: Ctx, key: str) -> int:
    return len(await ctx.fs._cat_file(ctx.path(key)))


async def list_keys(ctx: Ctx, prefix: str) -> int:
    return len(await ctx.fs._ls(ctx.path(prefix.rstrip("/")), detail=False, refresh=True))
