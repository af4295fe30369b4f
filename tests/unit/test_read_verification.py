"""The whole-object read check, against a fake provider whose bodies can drop,
resume, lie about their bytes, or end early."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest

import aiobucket
from aiobucket import Bucket, IntegrityError, InvalidArgument, ObjectAttrs, config
from aiobucket._checksum import WholeObjectCheck, crc32c_b64
from aiobucket.errors import ConnectionLost
from aiobucket.providers.base import Capabilities, GetOptions

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("clean_config")]

DATA = bytes((i * 7 + (i >> 8)) & 0xFF for i in range(5000))


class Body:
    def __init__(self, data: bytes, chunk: int, drop_at: int | None) -> None:
        self.data, self.chunk, self.drop_at = data, chunk, drop_at

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for pos in range(0, len(self.data), self.chunk):
            piece = self.data[pos : pos + self.chunk]
            if self.drop_at is not None and pos + len(piece) > self.drop_at:
                yield piece[: self.drop_at - pos] if self.drop_at > pos else b""
                raise ConnectionLost("connection reset")
            yield piece

    async def aclose(self) -> None:
        pass


@dataclass
class Fake:
    stored: bytes = DATA
    """What the object's checksums describe."""
    served: bytes = DATA
    """What the bodies deliver (the first ``len(served)`` bytes of any range)."""
    crc32c: str | None = field(default_factory=lambda: crc32c_b64(DATA))
    md5: str | None = None
    drops: list[int] = field(default_factory=list)
    resumed_served: bytes | None = None
    """What bodies deliver after the first one (a server that changes its answer)."""
    capabilities: Capabilities = field(default_factory=Capabilities)
    gets: list[GetOptions] = field(default_factory=list)

    def attrs(self) -> ObjectAttrs:
        return ObjectAttrs(name="k", size=len(self.stored), etag="e1", crc32c=self.crc32c, md5=self.md5)

    async def get(self, key: str, opts: GetOptions) -> tuple[ObjectAttrs, Body]:
        source = self.served if not self.gets or self.resumed_served is None else self.resumed_served
        self.gets.append(opts)
        end = len(source) if opts.length is None else opts.offset + opts.length
        return self.attrs(), Body(source[opts.offset : end], 700, self.drops.pop(0) if self.drops else None)

    async def head(self, key: str, version: str | None = None, *, checksums: bool = False) -> ObjectAttrs:
        return self.attrs()

    async def aclose(self) -> None:
        pass


@pytest.fixture
def fake() -> Iterator[Fake]:
    provider = Fake()
    aiobucket.register_provider("fakecheck", lambda settings, name, cfg: provider)
    with config.override({"vb": "fakecheck://x"}):
        yield provider


def flipped(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x80]) + data[at + 1 :]


async def read_all(**kw: object) -> bytes:
    return await Bucket("vb").download("k", **kw).read()  # type: ignore[arg-type]


@pytest.mark.parametrize("drop_at", [1, 699, 700, 2500, 4999])
async def test_verification_spans_a_resume(fake: Fake, drop_at: int) -> None:
    fake.drops = [drop_at]
    assert await read_all() == DATA
    assert len(fake.gets) == 2 and fake.gets[1].offset == drop_at


@pytest.mark.parametrize("at", [0, 3000, 4999])
async def test_corrupt_bytes_after_a_resume_are_caught(fake: Fake, at: int) -> None:
    fake.drops = [2000]
    fake.resumed_served = flipped(DATA, at) if at >= 2000 else DATA
    if at < 2000:
        fake.served = flipped(DATA, at)
    with pytest.raises(IntegrityError, match="crc32c") as info:
        await read_all()
    assert (info.value.bucket, info.value.key) == ("vb", "k")


async def test_md5_is_the_fallback(fake: Fake) -> None:
    fake.crc32c = None
    fake.md5 = hashlib.md5(DATA, usedforsecurity=False).hexdigest().upper()  # hex in either case
    assert await read_all() == DATA
    fake.served = flipped(DATA, 10)
    with pytest.raises(IntegrityError, match="md5"):
        await read_all()


async def test_crc32c_wins_over_md5(fake: Fake) -> None:
    fake.md5 = "0" * 32  # wrong, but not consulted
    assert await read_all() == DATA


async def test_no_stored_checksum_means_no_check(fake: Fake) -> None:
    fake.crc32c = None
    fake.served = flipped(DATA, 10)
    assert await read_all() == fake.served


async def test_only_whole_object_reads_are_checked(fake: Fake) -> None:
    fake.served = flipped(DATA, 10)
    assert await read_all(offset=1) == fake.served[1:]
    assert await read_all(length=len(DATA) - 1) == fake.served[:-1]
    with pytest.raises(IntegrityError):
        await read_all(length=len(DATA))  # covers the whole object
    with pytest.raises(IntegrityError):
        await read_all(length=10 * len(DATA))


async def test_short_and_long_bodies_fail(fake: Fake) -> None:
    fake.served = DATA[:-1]
    with pytest.raises(IntegrityError, match="ended after 4999 of 5000 bytes"):
        await read_all()
    fake.served = DATA + b"x"
    with pytest.raises(IntegrityError, match="more bytes"):
        await read_all()


async def test_the_completing_chunk_is_withheld_and_the_reader_closes(fake: Fake) -> None:
    fake.served = flipped(DATA, 4999)
    r = Bucket("vb").download("k")
    got = b""
    with pytest.raises(IntegrityError):
        while chunk := await r.read(700):
            got += chunk
    assert got == DATA[:4900]  # every byte handed out was a byte of the good prefix
    with pytest.raises(InvalidArgument, match="closed"):
        await r.read()


async def test_empty_objects_are_checked_too(fake: Fake) -> None:
    fake.stored = fake.served = b""
    fake.crc32c = crc32c_b64(b"")
    assert await read_all() == b""
    fake.crc32c = crc32c_b64(b"x")
    with pytest.raises(IntegrityError):
        await read_all()


def test_for_read_decides_when_to_check() -> None:
    a = ObjectAttrs(name="k", size=10, etag="e", crc32c=crc32c_b64(b"0123456789"))
    assert WholeObjectCheck.for_read(a, 0, None) is not None
    assert WholeObjectCheck.for_read(a, 0, 10) is not None
    assert WholeObjectCheck.for_read(a, 0, 9) is None
    assert WholeObjectCheck.for_read(a, 1, None) is None
    assert WholeObjectCheck.for_read(ObjectAttrs(name="k", size=10, etag="e"), 0, None) is None
