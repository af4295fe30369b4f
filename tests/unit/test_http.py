"""aiobucket.http: Range parsing and consistent ranged opens."""

from __future__ import annotations

import pytest

from aiobucket import Bucket, ObjectChanged, RangeNotSatisfiable
from aiobucket.http import open_range, parse_range
from aiobucket.testing import memory_buckets

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 10, None),
        ("bytes=0-3", 10, (0, 3)),
        ("bytes=5-", 10, (5, 9)),
        ("bytes=5-100", 10, (5, 9)),
        ("bytes=-3", 10, (7, 9)),
        ("bytes=-30", 10, (0, 9)),
        ("bytes = 1 - 2", 10, (1, 2)),
        ("bytes=3-1", 10, None),  # invalid: ignored
        ("bytes=0-1,4-5", 10, None),  # several ranges: the whole object
        ("items=0-1", 10, None),
        ("bytes=-", 10, None),
    ],
)
def test_parse_range(header, size, expected):
    assert parse_range(header, size) == expected


@pytest.mark.parametrize(("header", "size"), [("bytes=10-", 10), ("bytes=-0", 10), ("bytes=-5", 0)])
def test_unsatisfiable_ranges_carry_the_size(header, size):
    with pytest.raises(RangeNotSatisfiable) as info:
        parse_range(header, size)
    assert info.value.size == size


@pytest.fixture
def bucket():
    with memory_buckets():
        yield Bucket("http-test")


async def _put(b: Bucket, data: bytes) -> None:
    async with b.upload("k") as w:
        await w.write(data)


@pytest.mark.parametrize(
    ("header", "expected_range", "body"),
    [
        (None, None, b"0123456789"),
        ("bytes=2-4", (2, 4), b"234"),
        ("bytes=8-", (8, 9), b"89"),
        ("bytes=-2", (8, 9), b"89"),
        ("bytes=5-99", (5, 9), b"56789"),
    ],
)
async def test_open_range(bucket, header, expected_range, body):
    await _put(bucket, b"0123456789")
    reader, attrs, rng = await open_range(bucket, "k", header)
    async with reader:
        assert (rng, await reader.read(), attrs.size) == (expected_range, body, 10)


async def test_open_range_unsatisfiable_reports_size(bucket):
    await _put(bucket, b"0123456789")
    for header in ("bytes=10-", "bytes=-0"):
        with pytest.raises(RangeNotSatisfiable) as info:
            await open_range(bucket, "k", header)
        assert info.value.size == 10
    await _put(bucket, b"")
    with pytest.raises(RangeNotSatisfiable):
        await open_range(bucket, "k", "bytes=0-")


async def test_suffix_range_gives_up_when_the_object_keeps_changing(bucket, monkeypatch):
    await _put(bucket, b"0123456789")
    real_attrs = Bucket.attrs
    calls = 0

    async def attrs_then_overwrite(self, key, *, version=None):
        nonlocal calls
        calls += 1
        result = await real_attrs(self, key, version=version)
        await _put(bucket, b"changed-%d" % calls)  # replaced between attrs() and the open
        return result

    monkeypatch.setattr(Bucket, "attrs", attrs_then_overwrite)
    with pytest.raises(ObjectChanged):
        await open_range(bucket, "k", "bytes=-3", attempts=2)
    assert calls == 2


async def test_serve_sends_the_stored_content_encoding(bucket):
    import gzip

    from aiobucket import UploadAttrs
    from aiobucket.http import serve

    blob = gzip.compress(b"hello " * 100)
    async with bucket.upload(
        "page", attrs=UploadAttrs(content_type="text/html", content_encoding="gzip")
    ) as w:
        await w.write(blob)
    resp = await serve(bucket, "page", {})
    got = b"".join([c async for c in resp.body()])
    assert (resp.headers["Content-Encoding"], got) == ("gzip", blob)
    ranged = await serve(bucket, "page", {"Range": "bytes=0-9"})  # a range of the stored bytes
    got = b"".join([c async for c in ranged.body()])
    assert (ranged.status, ranged.headers["Content-Encoding"], got) == (206, "gzip", blob[:10])
