"""Parallel downloads on the memory backend, with faults the real servers cannot be asked for.

The spy (tests/spy_provider.py) passes the memory provider's real bytes through and
injects one dropped connection, or reports a checksum the backend does not keep
(as S3 and GCS do), so verification and resumption are exercised here.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from spy_provider import Spies, spying

import aiobucket
from aiobucket import Bucket, IntegrityError
from aiobucket.testing import memory_buckets

pytestmark = pytest.mark.anyio

PART = 4096
DATA = bytes((i * 7 + (i >> 9)) & 0xFF for i in range(10 * PART + 99))


@pytest.fixture
def bucket() -> Iterator[Bucket]:
    with memory_buckets():
        yield Bucket("par")


@pytest.fixture
def spies(monkeypatch: pytest.MonkeyPatch) -> Iterator[Spies]:
    with spying(monkeypatch) as s:
        yield s


async def _store(b: Bucket, data: bytes = DATA) -> None:
    async with b.upload("obj") as w:
        await w.write(data)


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _crc32c(data: bytes) -> str:
    import google_crc32c

    return base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode()


@pytest.mark.parametrize("kind", ["md5", "crc32c"])
async def test_a_whole_download_is_verified(bucket: Bucket, spies: Spies, tmp_path: Path, kind: str) -> None:
    await _store(bucket)
    # The backend may report both; keep only the one under test.
    good = {"md5": None, "crc32c": None, kind: _md5(DATA) if kind == "md5" else _crc32c(DATA)}
    spies.only.attrs_hook = lambda a: dataclasses.replace(a, **good)
    assert await bucket.download("obj", concurrency=3, part_size=PART).read() == DATA
    await bucket.download_to("obj", tmp_path / "f", concurrency=3, part_size=PART)
    assert (tmp_path / "f").read_bytes() == DATA

    bad = {"md5": None, "crc32c": None, kind: _md5(b"other") if kind == "md5" else _crc32c(b"other")}
    spies.only.attrs_hook = lambda a: dataclasses.replace(a, **bad)
    with pytest.raises(IntegrityError, match=kind) as info:
        await bucket.download("obj", concurrency=3, part_size=PART).read()
    assert info.value.bucket == "par" and info.value.key == "obj"
    with pytest.raises(IntegrityError, match=kind):
        await bucket.download_to("obj", tmp_path / "g", concurrency=3, part_size=PART)
    assert sorted(os.listdir(tmp_path)) == ["f"]  # no bad file, no temporary
    # A range is not the whole object: nothing to compare it with, so it is not checked.
    assert await bucket.download("obj", concurrency=2, part_size=PART, offset=1).read() == DATA[1:]


async def test_a_dropped_range_resumes_from_where_it_stopped(bucket: Bucket, spies: Spies) -> None:
    await _store(bucket)
    await bucket.attrs("obj")
    spy = spies.only
    spy.drop_after = 3 * PART + 10
    assert await bucket.download("obj", concurrency=2, part_size=PART).read() == DATA
    parts = -(-len(DATA) // PART)
    assert len(spy.gets) == parts + 1  # one request per part, plus the one resumption
    assert all(g.if_match is not None for g in spy.gets[1:])


async def test_a_second_drop_of_the_same_range_is_an_error(bucket: Bucket, spies: Spies) -> None:
    await _store(bucket, DATA[: 2 * PART])
    await bucket.attrs("obj")
    spy = spies.only
    spy.drop_after = 1

    def drop_again() -> None:
        if spy.drop_after is None and len(spy.gets) >= 2:
            spy.drop_after = spy.fetched  # the resumed body drops too

    spy.on_chunk = drop_again
    with pytest.raises(aiobucket.ConnectionLost):
        await bucket.download("obj", concurrency=1, part_size=2 * PART).read()
    assert spy.open_bodies == set()


async def test_reader_interface_matches_the_single_stream_reader(bucket: Bucket) -> None:
    await _store(bucket)
    r = bucket.download("obj", concurrency=2, part_size=PART)
    assert r.key == "obj"
    assert await r.read(0) == b""
    head = await r.read(5)
    rest = b"".join([c async for c in r])
    assert head + rest == DATA
    assert await r.read() == b""  # stays at EOF
    await r.aclose()
    await r.aclose()  # idempotent
    with pytest.raises(aiobucket.InvalidArgument):
        await r.read("3")  # type: ignore[arg-type]


@pytest.mark.parametrize("concurrency", [None, 2])
async def test_attrs_stay_available_after_eof_and_close(bucket: Bucket, concurrency: int | None) -> None:
    """Reader and ParallelReader agree: attrs known once stay readable after EOF and aclose;
    a reader closed before it ever opened cannot open again to learn them."""
    await _store(bucket)
    r = bucket.download("obj", concurrency=concurrency, part_size=PART if concurrency else None)
    assert await r.read() == DATA  # exhausted: closed at EOF
    assert (await r.attrs()).size == len(DATA)
    await r.aclose()
    assert (await r.attrs()).size == len(DATA)
    unopened = bucket.download("obj", concurrency=concurrency, part_size=PART if concurrency else None)
    await unopened.aclose()
    with pytest.raises(aiobucket.InvalidArgument, match="closed"):
        await unopened.attrs()
