"""End to end integrity: a whole-object download is checked against the stored checksum.

``ObjectAttrs.crc32c`` and ``ObjectAttrs.md5``, where a backend sets them, describe
the object's bytes exactly; memory and local always set both. A byte flipped in
the stored data behind the library's back makes a full download raise
IntegrityError (never hand out the bytes as good), through one stream, through
parallel ranges and through ``download_to`` (which then leaves no file), while
ranged reads of the untouched bytes keep working.

Behind the library's back means: memory's store and local's blob file are edited
in place; for S3 and GCS a fault proxy in front of the real server flips that byte
of the object in every answer that holds it (``FlipByte(in_object=True)``), headers
untouched, so the client sees what a server holding corrupt bytes would send.

A backend that keeps no whole-object checksum for some objects names it as a quirk
(``multipart_unverified``: multipart objects on Ceph RGW 16.2, which ignores the
FULL_OBJECT CRC32C aiobucket declares), and the test asserts what that means
instead of skipping.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from faultproxy import FaultProxy, FlipByte, Request
from faultproxy import fault_proxy as fault_proxy

import aiobucket
from aiobucket import IntegrityError, _runtime
from aiobucket._checksum import crc32c_b64
from conformance.conftest import get, part_size_for, payload, put

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024
MULTIPART_UNVERIFIED = "multipart_unverified"


async def test_stored_checksums_describe_the_bytes(backend):
    b = backend.bucket()
    small = payload(1000, seed=1)
    big = payload(2 * part_size_for(backend.supports(b)) + 7, seed=2)
    for key, data in (("empty", b""), ("small", small), ("multipart", big)):
        kwargs = {"part_size": part_size_for(backend.supports(b))} if key == "multipart" else {}
        written = await put(b, key, data, **kwargs)
        async with b.download(key) as reader:  # a whole read: S3 is asked for the checksums
            read = await reader.attrs()
            await reader.read()
        for attrs in (written, read, await b.attrs(key)):
            if backend.name in ("memory", "local"):
                assert attrs.crc32c is not None and attrs.md5 is not None
            if attrs is read and MULTIPART_UNVERIFIED not in backend.quirks:
                assert attrs.verified_by is not None, key  # a whole read is checked
            if attrs.crc32c is not None:
                assert attrs.crc32c == crc32c_b64(data), key
            if attrs.md5 is not None:
                assert attrs.md5 == hashlib.md5(data, usedforsecurity=False).hexdigest(), key
        assert await get(b, key) == data  # and the check passes on good bytes


class AtRest:
    """Buckets of one backend whose stored bytes a test can change behind the library's back."""

    def __init__(self, backend, make_proxy: Callable[..., FaultProxy]) -> None:
        self.backend = backend
        self._make_proxy = make_proxy
        self._proxies: dict[str, FaultProxy] = {}

    @property
    def cloud(self) -> bool:
        return self.backend.name not in ("memory", "local")

    def bucket(self) -> aiobucket.Bucket:
        """A fresh bucket; on S3 and GCS its requests all go through a fault proxy."""
        b = self.backend.bucket()
        if self.cloud:  # the provider is built on first use, after this
            settings = self.backend._buckets[b.name]
            url = str(settings["url"])
            (endpoint,) = parse_qs(urlsplit(url).query)["endpoint"]
            proxy = self._make_proxy(endpoint)
            settings["url"] = url.replace(f"endpoint={endpoint}", f"endpoint={proxy.url}")
            self._proxies[b.name] = proxy
        return b

    def flip(self, b: aiobucket.Bucket, key: str, at: int, *, also: tuple[str, ...] = ()) -> None:
        """Change the stored byte ``at`` of ``key`` (on S3 and GCS: of ``also`` too, objects
        the server made from the same stored bytes, such as a server-side copy)."""
        if self.backend.name == "memory":
            store = _runtime.provider_for(b.name, b.config)[0].store  # type: ignore[attr-defined]
            version = store.keys[key].versions[-1]
            data = bytearray(version.data)
            data[at] ^= 0x01
            version.data = bytes(data)
        elif self.backend.name == "local":
            root = self.backend.local_root(b)
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
            prefix = str(self.backend._buckets[b.name]["key_prefix"])
            names = {f"/{prefix}{k}" for k in (key, *also)}

            def holds_the_bytes(r: Request) -> bool:  # an object GET (GCS: the media, not metadata)
                media = "alt=media" in r.query if self.backend.name == "gcs" else True
                return r.method == "GET" and media and any(unquote(r.path).endswith(n) for n in names)

            self._proxies[b.name].add_rule(FlipByte(at, in_object=True), when=holds_the_bytes, times=None)

    def flips(self, b: aiobucket.Bucket) -> int:
        """How many answers the proxy corrupted (memory, local: -1, nothing to count)."""
        proxy = self._proxies.get(b.name)
        if proxy is None:
            return -1
        proxy.wait_idle()
        return sum(1 for r in proxy.requests if r.fault is not None)


@pytest.fixture
def at_rest(backend, fault_proxy) -> AtRest:
    return AtRest(backend, fault_proxy)


async def _fails_every_whole_download(b: aiobucket.Bucket, key: str, size: int, tmp_path: Path) -> None:
    """One stream, parallel ranges and download_to all raise IntegrityError; the stream
    never hands out the chunk that completes the object, and download_to leaves no file."""
    with pytest.raises(IntegrityError) as info:
        await get(b, key)
    assert b.name in str(info.value) and repr(key) in str(info.value)
    assert "corrupt" in info.value.message

    # Streaming: the chunk that completes the object is withheld, and the reader does
    # not then pretend to be at a clean end.
    reader = b.download(key)
    handed_out = 0
    with pytest.raises(IntegrityError):
        async for chunk in reader:
            handed_out += len(chunk)
    assert handed_out < size
    with pytest.raises(aiobucket.InvalidArgument, match="closed"):
        await reader.read()

    with pytest.raises(IntegrityError) as info:
        await b.download(key, concurrency=3, part_size=MiB).read()
    assert b.name in str(info.value) and repr(key) in str(info.value)

    target = tmp_path / "downloads" / "out.bin"
    target.parent.mkdir()
    with pytest.raises(IntegrityError):
        await b.download_to(key, target, concurrency=3, part_size=MiB)
    assert list(target.parent.iterdir()) == []  # neither the file nor its temporary


@pytest.mark.parametrize("where", ["first", "middle", "last"])
async def test_a_flipped_stored_byte_fails_every_whole_download(at_rest, where, tmp_path):
    b = at_rest.bucket()
    data = payload(3 * MiB + 17, seed=3)  # one request on every backend (below 8 MiB)
    at = {"first": 0, "middle": len(data) // 2, "last": len(data) - 1}[where]
    await put(b, "k", data)
    at_rest.flip(b, "k", at)

    await _fails_every_whole_download(b, "k", len(data), tmp_path)

    # Ranges are not checked, and the untouched bytes read fine.
    if at > 0:
        assert await get(b, "k", length=at) == data[:at]
    if at < len(data) - 1:
        assert await get(b, "k", offset=at + 1) == data[at + 1 :]
    # A range that holds the flipped byte cannot be checked against a whole-object checksum.
    assert await get(b, "k", offset=at, length=1) == bytes([data[at] ^ 0x01])
    assert at_rest.flips(b) != 0  # on S3 and GCS: the proxy did corrupt the answers


async def test_a_flipped_byte_in_a_multipart_object(backend, at_rest, tmp_path):
    b = at_rest.bucket()
    part = part_size_for(backend.supports(b))
    data = payload(2 * part + 7, seed=5)
    attrs = await put(b, "k", data, part_size=part)
    at = part + 3  # in the second part
    at_rest.flip(b, "k", at)
    if MULTIPART_UNVERIFIED in backend.quirks:
        # No whole-object checksum to check against: the corrupt byte is handed out.
        assert attrs.crc32c is None and attrs.md5 is None
        assert (await b.attrs("k")).crc32c is None and (await b.attrs("k")).md5 is None
        got = await get(b, "k")
        assert len(got) == len(data) and [i for i in range(len(data)) if got[i] != data[i]] == [at]
    else:
        await _fails_every_whole_download(b, "k", len(data), tmp_path)
    assert at_rest.flips(b) != 0


async def test_copies_do_not_launder_a_corrupt_object(backend, at_rest):
    b = at_rest.bucket()
    data = payload(100_000, seed=4)
    await put(b, "src", data)
    # On S3 and GCS the server copies what it stores, so its copy holds the same bad byte.
    at_rest.flip(b, "src", 5, also=("same-backend",))
    await b.copy("src", "same-backend")  # on the server: the stored checksum travels along
    with pytest.raises(IntegrityError):
        await get(b, "same-backend")
    other = aiobucket.Bucket(f"{b.name}-other")  # a backend that cannot copy on the server from b's
    elsewhere = f"file://{backend.tmp}/other" if backend.name == "memory" else f"memory://x?ns={b.name}"
    with aiobucket.config.override({other.name: elsewhere}):
        with pytest.raises(IntegrityError):  # streamed: the upload is aborted
            await b.copy("src", "streamed", dst_bucket=other)
        assert not await other.exists("streamed")
