"""End to end integrity: a whole-object download is checked against the stored checksum.

``ObjectAttrs.crc32c`` and ``ObjectAttrs.md5``, where a backend sets them, describe
the object's bytes exactly; memory and local always set both. A byte flipped in
the stored data behind the library's back makes a full download raise
IntegrityError (never hand out the bytes as good), while ranged reads of the
untouched bytes keep working.
"""

from __future__ import annotations

import hashlib
import sqlite3

import pytest

import aiobucket
from aiobucket import IntegrityError, _runtime
from aiobucket._checksum import crc32c_b64
from conformance.conftest import get, part_size_for, payload, put

pytestmark = pytest.mark.anyio


async def test_stored_checksums_describe_the_bytes(backend):
    b = backend.bucket()
    small = payload(1000, seed=1)
    big = payload(2 * part_size_for(backend.supports(b)) + 7, seed=2)
    for key, data in (("empty", b""), ("small", small), ("multipart", big)):
        kwargs = {"part_size": part_size_for(backend.supports(b))} if key == "multipart" else {}
        written = await put(b, key, data, **kwargs)
        for attrs in (written, await b.attrs(key)):
            if backend.name in ("memory", "local"):
                assert attrs.crc32c is not None and attrs.md5 is not None
            if attrs.crc32c is not None:
                assert attrs.crc32c == crc32c_b64(data), key
            if attrs.md5 is not None:
                assert attrs.md5 == hashlib.md5(data, usedforsecurity=False).hexdigest(), key
        assert await get(b, key) == data  # and the check passes on good bytes


def _flip_stored_byte(backend, b: aiobucket.Bucket, key: str, at: int) -> None:
    """Change one stored byte behind the library's back."""
    if backend.name == "memory":
        store = _runtime.provider_for(b.name, b.config)[0].store  # type: ignore[attr-defined]
        version = store.keys[key].versions[-1]
        data = bytearray(version.data)
        data[at] ^= 0x01
        version.data = bytes(data)
    elif backend.name == "local":
        root = backend.local_root(b)
        with sqlite3.connect(root / "index.sqlite3") as db:
            (blob,) = db.execute(
                "SELECT blob FROM versions WHERE key = ? ORDER BY seq DESC LIMIT 1", (key,)
            ).fetchone()
        with open(root / "blobs" / blob, "r+b") as f:
            f.seek(at)
            old = f.read(1)
            f.seek(at)
            f.write(bytes([old[0] ^ 0x01]))
    else:
        pytest.skip(
            f"no hook yet to change {backend.name}'s stored bytes behind the library's back "
            "(that needs the fault proxy in front of the server)"
        )


@pytest.mark.parametrize("where", ["first", "middle", "last"])
async def test_a_flipped_stored_byte_fails_a_full_download(backend, where):
    b = backend.bucket()
    data = payload(3 * 1024 * 1024 + 17, seed=3)
    at = {"first": 0, "middle": len(data) // 2, "last": len(data) - 1}[where]
    await put(b, "k", data)
    _flip_stored_byte(backend, b, "k", at)

    with pytest.raises(IntegrityError) as info:
        await get(b, "k")
    assert b.name in str(info.value) and "'k'" in str(info.value)
    assert "corrupt" in info.value.message

    # Streaming: the chunk that completes the object is withheld, and the reader does
    # not then pretend to be at a clean end.
    reader = b.download("k")
    handed_out = 0
    with pytest.raises(IntegrityError):
        async for chunk in reader:
            handed_out += len(chunk)
    assert handed_out < len(data)
    with pytest.raises(aiobucket.InvalidArgument, match="closed"):
        await reader.read()

    # Ranges are not checked, and the untouched bytes read fine.
    if at > 0:
        assert await get(b, "k", length=at) == data[:at]
    if at < len(data) - 1:
        assert await get(b, "k", offset=at + 1) == data[at + 1 :]


async def test_copies_do_not_launder_a_corrupt_object(backend):
    b = backend.bucket()
    data = payload(100_000, seed=4)
    await put(b, "src", data)
    _flip_stored_byte(backend, b, "src", 5)
    await b.copy("src", "same-backend")  # on the server: the stored checksum travels along
    with pytest.raises(IntegrityError):
        await get(b, "same-backend")
    other = aiobucket.Bucket(f"{b.name}-other")  # a backend that cannot copy on the server from b's
    elsewhere = f"file://{backend.tmp}/other" if backend.name == "memory" else f"memory://x?ns={b.name}"
    with aiobucket.config.override({other.name: elsewhere}):
        with pytest.raises(IntegrityError):  # streamed: the upload is aborted
            await b.copy("src", "streamed", dst_bucket=other)
        assert not await other.exists("streamed")
