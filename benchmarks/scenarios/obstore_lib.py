"""obstore as its docs show it: an S3Store for the endpoint (allow_http), put_async/get_async/list."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import obstore as obs
from obstore.store import S3Store

from .._common import Env


async def open(env: Env) -> Any:
    return S3Store(
        env.bucket,
        endpoint=env.endpoint,
        region=env.region,
        access_key_id=env.access_key,
        secret_access_key=env.secret_key,
        virtual_hosted_style_request=False,
        client_options={"allow_http": True},
    )


async def close(ctx: Any) -> None:
    return None


async def upload(store: Any, key: str, source: AsyncIterator[bytes], size: int) -> None:
    await obs.put_async(store, key, source)


async def download(store: Any, key: str) -> int:
    resp = await obs.get_async(store, key)
    n = 0
    async for chunk in resp.stream():
        n += len(chunk)
    return n


async def put_small(store: Any, key: str, data: bytes) -> None:
    await obs.put_async(store, key, data)


async def get_small(store: Any, key: str) -> int:
    resp = await obs.get_async(store, key)
    return len(await resp.bytes_async())


async def list_keys(store: Any, prefix: str) -> int:
    n = 0
    async for batch in obs.list(store, prefix=prefix):
        n += len(batch)
    return n
