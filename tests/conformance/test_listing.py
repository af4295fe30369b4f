"""Listing: key order, prefix, limit, isolation, folders (delimiter)."""

from __future__ import annotations

import pytest

from aiobucket import InvalidArgument, Query
from conformance.conftest import get, names, put

pytestmark = pytest.mark.anyio

# UTF-8 byte order: "Z" < "a" < "z" < "ä" (c3 a4) < "é" (c3 a9) < "𝄞" (f0 ...)
KEYS = ["a/1", "a/10", "a/2", "a/Z", "a/a", "a/z", "a/ä", "a/é", "a/𝄞", "b", "a-sibling"]


async def _fill(b, keys=KEYS):
    for k in keys:
        await put(b, k, k.encode())


@pytest.mark.quirk("listing_byte_order")
async def test_lists_everything_in_utf8_byte_order(backend):
    b = backend.bucket()
    await _fill(b)
    assert await names(b) == sorted(KEYS, key=lambda k: k.encode())


async def test_prefix_and_entry_fields(backend):
    b = backend.bucket()
    await _fill(b)
    got = []
    async for err, entry in b.list(Query(prefix="a/")):
        assert err is None and entry is not None
        got.append(entry)
    assert [e.name for e in got] == sorted((k for k in KEYS if k.startswith("a/")), key=str.encode)
    for e in got:
        attrs = await b.attrs(e.name)
        assert e.size == attrs.size == len(e.name.encode())
        assert e.etag == attrs.etag
        assert not e.is_prefix


@pytest.mark.parametrize("limit", [0, 1, 3, 100])
async def test_limit(backend, limit):
    b = backend.bucket()
    await _fill(b)
    everything = await names(b)
    assert sorted(everything) == sorted(KEYS)
    assert await names(b, Query(limit=limit)) == everything[:limit]


async def test_empty_bucket_and_unmatched_prefix(backend):
    b = backend.bucket()
    assert await names(b) == []
    await _fill(b)
    assert await names(b, Query(prefix="zzz")) == []


async def test_buckets_are_isolated(backend):
    one, two = backend.bucket(), backend.bucket()
    await put(one, "x", b"1")
    assert await names(two) == []
    assert await names(one) == ["x"]


async def test_breaking_out_early_is_fine(backend):
    b = backend.bucket()
    await _fill(b)
    async for err, _entry in b.list():
        assert err is None
        break
    assert len(await names(b)) == len(KEYS)


async def test_bad_queries_raise_before_io(backend):
    b = backend.bucket()
    with pytest.raises(InvalidArgument):
        Query(limit=-1)
    with pytest.raises(InvalidArgument):
        b.list(Query(prefix="a/../b"))
    with pytest.raises(InvalidArgument):
        b.list("prefix")  # type: ignore[arg-type]


FOLDER_KEYS = [
    "photos/",
    "photos/a.jpg",
    "photos/2024/x.jpg",
    "photos/2024/y.jpg",
    "photos/2025/z/deep.jpg",
    "photos/b.jpg",
    "top.txt",
    "photosX",
]


async def _entries(b, query):
    out = []
    async for err, entry in b.list(query):
        assert err is None, err
        out.append((entry.name, entry.is_prefix))
    return out


async def test_delimiter_lists_folders_and_objects_in_key_order(backend):
    b = backend.bucket()
    await _fill(b, FOLDER_KEYS)
    got = await _entries(b, Query(prefix="photos/", delimiter="/"))
    assert got == [
        ("photos/", False),
        ("photos/2024/", True),
        ("photos/2025/", True),
        ("photos/a.jpg", False),
        ("photos/b.jpg", False),
    ]


async def test_delimiter_with_empty_prefix(backend):
    b = backend.bucket()
    await _fill(b, FOLDER_KEYS)
    got = await _entries(b, Query(delimiter="/"))
    assert got == [("photos/", True), ("photosX", False), ("top.txt", False)]


async def test_delimiter_limit_counts_both_kinds(backend):
    b = backend.bucket()
    await _fill(b, FOLDER_KEYS)
    got = await _entries(b, Query(prefix="photos/", delimiter="/", limit=3))
    assert got == [("photos/", False), ("photos/2024/", True), ("photos/2025/", True)]


@pytest.mark.quirk("empty_key_segments")
async def test_keys_with_empty_segments_keep_their_identity(backend):
    b = backend.bucket()
    await _fill(b, ["d//x", "d/x", "d/"])
    assert await names(b, Query(prefix="d/")) == ["d/", "d//x", "d/x"]
    assert await get(b, "d//x") == b"d//x"
    got = await _entries(b, Query(prefix="d/", delimiter="/"))
    assert got == [("d/", False), ("d//", True), ("d/x", False)]


async def test_no_delimiter_is_a_flat_listing(backend):
    b = backend.bucket()
    await _fill(b, FOLDER_KEYS)
    got = await names(b, Query(prefix="photos/"))
    assert sorted(got) == sorted(k for k in FOLDER_KEYS if k.startswith("photos/"))
