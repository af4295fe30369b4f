"""Upload and download round trips, attributes, and writer semantics."""

from __future__ import annotations

import pytest

from aiobucket import (
    InvalidArgument,
    ObjectNotFound,
    UploadAborted,
    UploadAttrs,
    WriterClosed,
)
from conformance.conftest import get, part_size_for, payload, put

pytestmark = pytest.mark.anyio


async def test_small_roundtrip(backend):
    b = backend.bucket()
    attrs = await put(b, "hello.txt", b"hello world")
    assert (attrs.name, attrs.size) == ("hello.txt", 11)
    assert attrs.etag
    assert await get(b, "hello.txt") == b"hello world"
    assert await b.exists("hello.txt")


async def test_write_accepts_bytes_bytearray_memoryview(backend):
    b = backend.bucket()
    async with b.upload("mixed") as w:
        assert await w.write(b"ab") == 2
        assert await w.write(bytearray(b"cd")) == 2
        assert await w.write(memoryview(b"xxefxx")[2:4]) == 2
    assert await get(b, "mixed") == b"abcdef"


async def test_close_without_writes_stores_empty_object(backend):
    b = backend.bucket()
    w = b.upload("empty")
    attrs = await w.close()
    assert attrs.size == 0
    assert await get(b, "empty") == b""
    assert (await b.attrs("empty")).size == 0


async def test_multipart_roundtrip_keeps_order(backend):
    b = backend.bucket()
    ps = part_size_for(backend.supports(b))
    data = payload(ps * 2 + 12345, seed=1)
    w = b.upload("big.bin", part_size=ps, concurrency=3)
    for i in range(0, len(data), 100_000):  # writes that straddle part boundaries
        await w.write(data[i : i + 100_000])
    attrs = await w.close()
    assert attrs.size == len(data)
    assert await get(b, "big.bin") == data
    assert (await b.attrs("big.bin")).size == len(data)


async def test_exactly_one_part_is_a_single_put(backend):
    b = backend.bucket()
    ps = part_size_for(backend.supports(b))
    data = payload(ps, seed=2)
    attrs = await put(b, "one-part", data, part_size=ps)
    assert attrs.size == ps
    assert await get(b, "one-part") == data


async def test_attrs_round_trip(backend):
    b = backend.bucket()
    ua = UploadAttrs(
        content_type="text/csv",
        cache_control="max-age=60",
        content_disposition='attachment; filename="r.csv"',
        metadata={"owner": "u1", "purpose": "report"},
    )
    written = await put(b, "r", b"a,b\n", attrs=ua)
    got = await b.attrs("r")
    for a in (written, got):
        assert a.content_type == "text/csv"
        assert a.cache_control == "max-age=60"
        assert a.content_disposition == 'attachment; filename="r.csv"'
        assert dict(a.metadata) == {"owner": "u1", "purpose": "report"}
    assert got.etag == written.etag
    assert got.size == 4
    async with b.download("r") as r:
        assert (await r.attrs()).content_type == "text/csv"


async def test_content_type_is_guessed_from_extension(backend):
    b = backend.bucket()
    await put(b, "p/photo.jpg", b"\xff\xd8")
    await put(b, "p/noext", b"x")
    await put(b, "p/page.html", b"<p>", attrs=UploadAttrs(content_type="text/plain"))
    assert (await b.attrs("p/photo.jpg")).content_type == "image/jpeg"
    assert (await b.attrs("p/noext")).content_type == "application/octet-stream"
    assert (await b.attrs("p/page.html")).content_type == "text/plain"


async def test_overwrite_replaces_content(backend):
    b = backend.bucket()
    await put(b, "k", b"one")
    await put(b, "k", b"second")
    assert await get(b, "k") == b"second"
    assert (await b.attrs("k")).size == 6


async def test_close_twice_returns_same_attrs(backend):
    b = backend.bucket()
    w = b.upload("k")
    await w.write(b"data")
    first = await w.close()
    assert await w.close() == first
    with pytest.raises(WriterClosed, match="already closed"):
        await w.write(b"more")
    with pytest.raises(WriterClosed, match="already committed"):
        await w.abort()
    assert await get(b, "k") == b"data"


async def test_abort_discards_and_poisons_writer(backend):
    b = backend.bucket()
    await put(b, "k", b"old")
    w = b.upload("k")
    await w.write(b"new data")
    await w.abort()
    with pytest.raises(UploadAborted):
        await w.write(b"x")
    with pytest.raises(UploadAborted):
        await w.close()
    await w.abort()  # idempotent
    assert await get(b, "k") == b"old"


async def test_abort_with_error_is_reraised(backend):
    b = backend.bucket()
    w = b.upload("k")
    await w.write(b"x")
    reason = RuntimeError("client went away")
    await w.abort(reason)
    with pytest.raises(RuntimeError, match="client went away"):
        await w.close()
    assert not await b.exists("k")


async def test_abort_of_multipart_upload_stores_nothing(backend):
    b = backend.bucket()
    ps = part_size_for(backend.supports(b))
    w = b.upload("k", part_size=ps)
    await w.write(payload(ps * 2 + 1))
    await w.abort()
    assert not await b.exists("k")
    async for err, entry in b.list():
        raise AssertionError(f"unexpected entry {entry} / {err}")


async def test_explicit_abort_inside_async_with_is_not_an_error(backend):
    b = backend.bucket()
    async with b.upload("k") as w:
        await w.write(b"x")
        await w.abort()
    assert not await b.exists("k")


async def test_exception_inside_async_with_aborts(backend):
    b = backend.bucket()
    await put(b, "k", b"old")
    ps = part_size_for(backend.supports(b))
    with pytest.raises(ZeroDivisionError):
        async with b.upload("k", part_size=ps) as w:
            await w.write(payload(ps * 2 + 7))
            raise ZeroDivisionError("user code failed")
    assert await get(b, "k") == b"old"
    with pytest.raises(UploadAborted) as info:
        await w.close()
    assert isinstance(info.value.__cause__, ZeroDivisionError)


async def test_upload_does_no_io_until_first_write(backend):
    b = backend.bucket()
    w = b.upload("never-written")
    assert not w.closed
    del w
    assert not await b.exists("never-written")


async def test_missing_object_errors(backend):
    b = backend.bucket()
    with pytest.raises(ObjectNotFound) as info:
        await b.attrs("nope")
    assert "nope" in str(info.value) and b.name in str(info.value)
    with pytest.raises(ObjectNotFound):
        await get(b, "nope")
    with pytest.raises(ObjectNotFound):
        await b.remove("nope")
    assert await b.exists("nope") is False


async def test_remove(backend):
    b = backend.bucket()
    await put(b, "k", b"v")
    await put(b, "other", b"keep")
    await b.remove("k")
    assert not await b.exists("k")
    with pytest.raises(ObjectNotFound):
        await b.remove("k")
    assert await get(b, "other") == b"keep"


@pytest.mark.parametrize("bad", ["str", 42, None, [b"a"]])
async def test_write_rejects_wrong_types_without_losing_data(backend, bad):
    b = backend.bucket()
    w = b.upload("k")
    await w.write(b"good")
    with pytest.raises(InvalidArgument, match="bytes, bytearray or memoryview"):
        await w.write(bad)
    await w.write(b"!")
    await w.close()
    assert await get(b, "k") == b"good!"


async def test_concurrent_uploads_to_different_keys(backend):
    import asyncio

    b = backend.bucket()
    datas = {f"c/{i}": payload(1000 + i, seed=i) for i in range(20)}
    await asyncio.gather(*(put(b, k, v) for k, v in datas.items()))
    for k, v in datas.items():
        assert await get(b, k) == v
