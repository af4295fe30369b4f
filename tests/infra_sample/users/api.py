# ruff: noqa
from shared.perms import AvatarStore
from shared.storage import Avatars

store = Avatars.ref(AvatarStore)


async def save(user_id: str, data: bytes) -> str:
    async with Avatars.upload(f"u/{user_id}.jpg") as w:
        await w.write(data)
    if await Avatars.exists(f"u/{user_id}.jpg"):
        return Avatars.public_url(f"u/{user_id}.jpg")
    return Avatars.name


async def shadowed(Avatars: object) -> None:
    await Avatars.remove("not the bucket")  # a parameter, not the bucket
