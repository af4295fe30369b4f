"""Bad input gets a clear InvalidArgument before any I/O, and loses nothing."""

from __future__ import annotations

import pytest

from aiobucket import InvalidArgument, Query, RangeNotSatisfiable
from conformance.conftest import get, names, put

pytestmark = pytest.mark.anyio

BAD_KEYS = {
    "empty": ("", "empty"),
    "too long": ("é" * 513, "1026 bytes"),
    "NUL": ("a\x00b", "control character"),
    "newline": ("a\nb", "control character"),
    "DEL": ("a\x7f", "control character"),
    "C1": ("a\x85", "control character"),
    "dotdot": ("a/../b", "'..' segment"),
    "dot": ("./a", "'.' segment"),
    "escape": ("../outside", "'..' segment"),
    "leading slash": ("/etc/passwd", "start with '/'"),
    "surrogate": ("a\ud800", "UTF-8"),
    "bytes": (b"key", "must be a str"),
    "int": (7, "must be a str"),
}


@pytest.mark.parametrize("case", sorted(BAD_KEYS))
async def test_bad_keys_are_rejected_everywhere(backend, case):
    key, message = BAD_KEYS[case]
    b = backend.bucket()
    await put(b, "keep", b"precious")
    calls = [
        lambda: b.upload(key),
        lambda: b.download(key),
        lambda: b.public_url(key),
    ]
    for call in calls:
        with pytest.raises(InvalidArgument, match=message) as info:
            call()
        assert b.name in str(info.value)
    for coro in (b.remove, b.attrs, b.exists, b.signed_download_url, b.signed_upload_url):
        with pytest.raises(InvalidArgument, match=message):
            await coro(key)
    assert await names(b) == ["keep"]
    assert await get(b, "keep") == b"precious"


def _key_of(total: int, segment: int) -> str:
    parts, left = [], total
    while left > 0:
        n = min(segment, left)
        parts.append("x" * (n - 1) + "/" if left > n else "x" * n)
        left -= n
    return "".join(parts)


async def _roundtrip_long_key(backend, segment: int) -> None:
    b = backend.bucket()
    room = 1024
    if backend.name not in ("memory", "local"):
        room -= len(b.name) + 1  # the cloud key also carries the test's key prefix
    key = _key_of(room, segment)
    assert len(key.encode()) == room
    await put(b, key, b"v")
    assert await get(b, key) == b"v"
    assert await names(b) == [key]


async def test_key_of_1024_bytes_works(backend):
    await _roundtrip_long_key(backend, segment=200)


@pytest.mark.quirk("long_key_segment")
async def test_key_with_one_segment_near_1024_bytes_works(backend):
    await _roundtrip_long_key(backend, segment=1024)


async def test_bad_ranges(backend):
    b = backend.bucket()
    await put(b, "k", b"0123456789")
    for kwargs in ({"offset": -1}, {"length": -1}, {"offset": "1"}, {"offset": True}):
        with pytest.raises(InvalidArgument):
            b.download("k", **kwargs)
    with pytest.raises(RangeNotSatisfiable):
        await get(b, "k", offset=10)
    with pytest.raises(RangeNotSatisfiable):
        await get(b, "k", offset=11, length=2)
    assert await get(b, "k") == b"0123456789"


async def test_bad_upload_arguments(backend):
    b = backend.bucket()
    with pytest.raises(InvalidArgument, match="part_size"):
        b.upload("k", part_size=0)
    with pytest.raises(InvalidArgument, match="concurrency"):
        b.upload("k", concurrency=-2)
    with pytest.raises(InvalidArgument, match="UploadAttrs"):
        b.upload("k", attrs={"content_type": "x"})  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="metadata"):
        b.upload("k", attrs=__import__("aiobucket").UploadAttrs(metadata={"bad key": "v"}))
    with pytest.raises(InvalidArgument):
        Query(prefix=5)  # type: ignore[arg-type]
    assert await names(b) == []


async def test_bad_copy_signing_and_download_to_arguments(backend, tmp_path):
    """Wrong types are InvalidArgument naming the bucket, before any I/O, and store nothing."""
    import aiobucket

    b = backend.bucket()
    await put(b, "src", b"data")
    bad_copies = [
        ({"attrs": {"content_type": "x"}}, "attrs must be UploadAttrs"),
        ({"preconditions": {"not_exists": True}}, "preconditions must be Preconditions"),
        ({"preconditions": True}, "preconditions must be Preconditions"),
        ({"dst_bucket": "other"}, "dst_bucket must be a Bucket"),
    ]
    for kwargs, message in bad_copies:
        with pytest.raises(InvalidArgument, match=message) as info:
            await b.copy("src", "dst", **kwargs)
        assert info.value.bucket == b.name
    for ttl in (float("nan"), float("inf"), 1e300, -1.0):
        with pytest.raises(InvalidArgument, match="ttl must be more than 0"):
            await b.signed_download_url("src", ttl=ttl)
    with pytest.raises(InvalidArgument, match="on_progress must be callable"):
        await b.download_to("src", tmp_path / "out", on_progress=5)  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists()
    assert sorted(await names(b)) == ["src"]
    assert await get(b, "src") == b"data"
    # Flags that would be truthy strings or ints are refused where they are built.
    with pytest.raises(InvalidArgument, match="versioned must be True or False"):
        aiobucket.BucketConfig(versioned="no")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="public must be True or False"):
        aiobucket.BucketConfig(public=1)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="not_exists must be True or False"):
        aiobucket.Preconditions(not_exists="false")  # type: ignore[arg-type]


RESTRICTED_KEYS = {"segment_ends_with_dot": ["dir./k", "k."], "backslash": ["a\\b"]}
"""An example key for each name a backend may list in Capabilities.key_restrictions."""


async def test_declared_key_restrictions_are_refused_before_any_io(backend):
    b = backend.bucket()
    caps = await b.capabilities()
    assert caps == backend.supports(b)  # the public view is the provider's declaration
    for restriction in caps.key_restrictions:
        assert restriction in RESTRICTED_KEYS, f"give an example key for {restriction!r}"
        for key in RESTRICTED_KEYS[restriction]:
            with pytest.raises(InvalidArgument) as info:
                await put(b, key, b"x")
            assert info.value.key == key
    assert await names(b) == []
