"""Ranged and streaming reads."""

from __future__ import annotations

import pytest

from conformance.conftest import get, part_size_for, payload, put

pytestmark = pytest.mark.anyio

DATA = bytes(range(256)) * 40  # 10240 bytes


@pytest.mark.parametrize(
    ("offset", "length"),
    [(0, None), (0, 1), (10, 100), (10239, None), (10239, 5), (5000, 0), (100, 99999), (0, 10240)],
)
async def test_ranged_reads(backend, offset, length):
    b = backend.bucket()
    await put(b, "k", DATA)
    end = None if length is None else offset + length
    assert await get(b, "k", offset=offset, length=length) == DATA[offset:end]


async def test_reader_attrs_describe_the_whole_object(backend):
    b = backend.bucket()
    await put(b, "k", DATA)
    async with b.download("k", offset=100, length=10) as r:
        attrs = await r.attrs()
        assert attrs.size == len(DATA)
        assert await r.read() == DATA[100:110]


async def test_read_n_and_iteration(backend):
    b = backend.bucket()
    ps = part_size_for(backend.supports(b))
    data = payload(ps * 2 + 5)
    await put(b, "k", data, part_size=ps)
    r = b.download("k")
    first = await r.read(7)
    assert first == data[:7]
    got = bytearray(first)
    while chunk := await r.read(100_003):
        assert len(chunk) <= 100_003
        got += chunk
    assert bytes(got) == data
    assert await r.read() == b""  # exhausted readers stay at EOF

    async with b.download("k") as r2:
        chunks = [c async for c in r2]
    assert b"".join(chunks) == data
    assert all(chunks)


async def test_empty_object_reads(backend):
    b = backend.bucket()
    await put(b, "empty", b"")
    assert await get(b, "empty") == b""
    assert await get(b, "empty", length=0) == b""
