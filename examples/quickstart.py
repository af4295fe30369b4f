"""aiobucket quickstart: upload, list, download, read attrs and remove.

With no configuration the bucket lives on the local filesystem under
./.aiobucket/profile-pictures/, so this runs with no account and no server:

    python examples/quickstart.py
"""

from __future__ import annotations

import asyncio

import aiobucket
from aiobucket import Bucket, BucketConfig, ObjectNotFound, Query, UploadAttrs

# Declared once, at module level. Declaring does no I/O.
ProfilePictures = Bucket("profile-pictures", BucketConfig(versioned=False))


async def fake_image_stream(size: int, chunk: int = 64 * 1024):
    """Stands in for a request body arriving in chunks."""
    for start in range(0, size, chunk):
        yield bytes((start + i) % 251 for i in range(min(chunk, size - start)))


async def main() -> None:
    # Upload: stream chunks into a writer; leaving the block commits it.
    async with ProfilePictures.upload("users/42.jpg", attrs=UploadAttrs(metadata={"user": "42"})) as writer:
        async for chunk in fake_image_stream(300_000):
            await writer.write(chunk)
    attrs = await writer.close()  # the same attrs the block committed
    print(f"uploaded  {attrs.name}: {attrs.size} bytes, {attrs.content_type}, etag {attrs.etag}")

    # List: (error, entry) pairs, filtered by prefix and limit.
    async for err, entry in ProfilePictures.list(Query(prefix="users/", limit=10)):
        if err is not None:
            raise err
        print(f"listed    {entry.name} ({entry.size} bytes)")

    # Download: stream it, or take a range.
    total = 0
    async with ProfilePictures.download("users/42.jpg") as reader:
        async for chunk in reader:
            total += len(chunk)
    head = await ProfilePictures.download("users/42.jpg", offset=0, length=4).read()
    print(f"downloaded {total} bytes; first bytes {head.hex()}")

    # Attributes and existence.
    attrs = await ProfilePictures.attrs("users/42.jpg")
    print(f"attrs     metadata={dict(attrs.metadata)} exists={await ProfilePictures.exists('users/42.jpg')}")

    # Remove; removing again raises ObjectNotFound.
    await ProfilePictures.remove("users/42.jpg")
    try:
        await ProfilePictures.remove("users/42.jpg")
    except ObjectNotFound as exc:
        print(f"removed   users/42.jpg (again: {type(exc).__name__})")

    await aiobucket.aclose()


if __name__ == "__main__":
    asyncio.run(main())
