# ruff: noqa
from shared import storage


async def resize(bucket: object) -> None: ...


async def handler(key: str) -> None:
    await resize(storage.Avatars)
    b = storage.Avatars
    await b.remove(key)
    op = getattr(storage.Avatars, "download")
