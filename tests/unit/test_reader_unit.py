"""Reader semantics against a fake provider whose bodies can drop, fail or hang."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

import aiobucket
from aiobucket import (
    BackendError,
    Bucket,
    ConnectionLost,
    InvalidArgument,
    ObjectAttrs,
    ObjectChanged,
    ObjectNotFound,
    PreconditionFailed,
    config,
)
from aiobucket.providers.base import Capabilities, GetOptions

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("clean_config")]

DATA = bytes(range(256)) * 4  # 1024 bytes


class FakeBody:
    """Yields ``data`` in ``chunk``-sized pieces; raises ``error`` once ``fail_after`` bytes went out."""

    def __init__(
        self,
        data: bytes,
        chunk: int,
        fail_after: int | None = None,
        error: BaseException | None = None,
        hang_after: int | None = None,
    ) -> None:
        self.data = data
        self.chunk = chunk
        self.fail_after = fail_after
        self.error = error
        self.hang_after = hang_after
        self.aclose_calls = 0
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        pos = 0
        while pos < len(self.data):
            if self.fail_after is not None and pos >= self.fail_after:
                assert self.error is not None
                raise self.error
            if self.hang_after is not None and pos >= self.hang_after:
                await asyncio.Event().wait()
            end = min(pos + self.chunk, len(self.data))
            for limit in (self.fail_after, self.hang_after):
                if limit is not None and pos < limit:
                    end = min(end, limit)
            piece = self.data[pos:end]
            pos = end
            self.sent += len(piece)
            yield piece

    async def aclose(self) -> None:
        self.aclose_calls += 1


@dataclass
class FakeProvider:
    data: bytes = DATA
    etag: str = "etag-1"
    version: str | None = None
    chunk: int = 100
    drops: list[int] = field(default_factory=list)
    """Byte positions (relative to each body) at which successive bodies drop the connection."""
    body_error: BaseException | None = None
    hang_after: int | None = None
    resume_error: BaseException | None = None
    capabilities: Capabilities = field(default_factory=Capabilities)
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    bodies: list[FakeBody] = field(default_factory=list)

    def attrs(self) -> ObjectAttrs:
        return ObjectAttrs(name="k", size=len(self.data), etag=self.etag, version=self.version)

    async def get(self, key: str, opts: GetOptions) -> tuple[ObjectAttrs, FakeBody]:
        self.calls.append(("get", key, opts))
        if opts.if_match is not None:
            if self.resume_error is not None:
                raise self.resume_error
            if opts.if_match != self.etag:
                raise PreconditionFailed("etag changed", key=key)
        end = len(self.data) if opts.length is None else opts.offset + opts.length
        part = self.data[opts.offset : end]
        if self.drops:
            body = FakeBody(part, self.chunk, self.drops.pop(0), ConnectionLost("connection reset"))
        elif self.body_error is not None:
            body = FakeBody(part, self.chunk, len(part) // 2, self.body_error)
        else:
            body = FakeBody(part, self.chunk, hang_after=self.hang_after)
        self.bodies.append(body)
        return self.attrs(), body

    async def head(self, key: str, version: str | None = None, *, checksums: bool = False) -> ObjectAttrs:
        self.calls.append(("head", key, version))
        return self.attrs()

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]

    def gets(self) -> list[GetOptions]:
        return [c[2] for c in self.calls if c[0] == "get"]

    async def aclose(self) -> None:
        pass


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    provider = FakeProvider()
    aiobucket.register_provider("fakeread", lambda settings, name, cfg: provider)
    with config.override({"rb": "fakeread://x"}):
        yield provider


def bucket(versioned: bool = False) -> Bucket:
    return Bucket("rb", aiobucket.BucketConfig(versioned=versioned))


# -- resume on a dropped connection --------------------------------------------------------------


@pytest.mark.parametrize("drop_at", [1, 99, 100, 350, 1023])
async def test_dropped_body_resumes_pinned_to_etag_and_returns_exact_bytes(
    fake: FakeProvider, drop_at: int
) -> None:
    fake.drops = [drop_at]
    async with bucket().download("k") as r:
        data = await r.read()
    assert data == DATA
    first, resumed = fake.gets()
    assert first == GetOptions()
    assert resumed == GetOptions(version=None, offset=drop_at, length=None, if_match="etag-1")
    assert [b.aclose_calls for b in fake.bodies] == [1, 1]


async def test_resume_of_a_range_keeps_offset_and_remaining_length(fake: FakeProvider) -> None:
    fake.drops = [150]
    r = bucket().download("k", offset=10, length=500)
    chunks = [c async for c in r]
    assert b"".join(chunks) == DATA[10:510]
    assert fake.gets()[0] == GetOptions(offset=10, length=500)
    assert fake.gets()[1] == GetOptions(offset=160, length=350, if_match="etag-1")


async def test_resume_pins_the_version_it_saw(fake: FakeProvider) -> None:
    fake.version = "v1"
    fake.drops = [200]
    async with bucket().download("k") as r:
        assert await r.read() == DATA
    assert fake.gets()[1] == GetOptions(version="v1", offset=200, if_match="etag-1")


async def test_resume_happens_only_once(fake: FakeProvider) -> None:
    fake.drops = [300, 100]
    r = bucket().download("k")
    got = b""
    with pytest.raises(ConnectionLost) as info:
        while chunk := await r.read(64):
            got += chunk
    assert got == DATA[:400]  # every byte handed out was right
    assert (info.value.bucket, info.value.key) == ("rb", "k")
    assert len(fake.gets()) == 2
    assert [b.aclose_calls for b in fake.bodies] == [1, 1]
    await r.aclose()
    assert [b.aclose_calls for b in fake.bodies] == [1, 1]


async def test_object_changed_between_drop_and_resume_raises_object_changed(fake: FakeProvider) -> None:
    fake.drops = [250]
    r = bucket().download("k")
    assert await r.read(200) == DATA[:100]  # one chunk at most
    fake.etag = "etag-2"  # someone overwrote the object
    with pytest.raises(ObjectChanged) as info:
        await r.read()
    assert isinstance(info.value, PreconditionFailed)
    assert isinstance(info.value.__cause__, PreconditionFailed)
    assert "download it again" in info.value.message
    assert (info.value.bucket, info.value.key) == ("rb", "k")
    assert fake.gets()[1].if_match == "etag-1"
    assert [b.aclose_calls for b in fake.bodies] == [1]
    await r.aclose()
    assert [b.aclose_calls for b in fake.bodies] == [1]


async def test_resumed_get_raising_precondition_failed_is_object_changed(fake: FakeProvider) -> None:
    fake.drops = [10]
    fake.resume_error = PreconditionFailed("412 from server")
    with pytest.raises(ObjectChanged):
        async with bucket().download("k") as r:
            await r.read()


async def test_resume_failing_otherwise_surfaces_that_error(fake: FakeProvider) -> None:
    fake.drops = [10]
    fake.resume_error = ObjectNotFound("deleted meanwhile")
    r = bucket().download("k")
    with pytest.raises(ObjectNotFound):
        await r.read()
    assert fake.bodies[0].aclose_calls == 1


# -- the body is closed exactly once -------------------------------------------------------------


async def test_body_closed_once_at_eof(fake: FakeProvider) -> None:
    r = bucket().download("k")
    assert await r.read() == DATA
    assert fake.bodies[0].aclose_calls == 1
    assert await r.read() == b""
    await r.aclose()
    await r.aclose()
    assert fake.bodies[0].aclose_calls == 1


async def test_body_closed_once_at_eof_via_iteration_and_context(fake: FakeProvider) -> None:
    async with bucket().download("k") as r:
        assert b"".join([c async for c in r]) == DATA
    assert fake.bodies[0].aclose_calls == 1


async def test_body_closed_once_on_early_aclose(fake: FakeProvider) -> None:
    r = bucket().download("k")
    assert await r.read(3) == DATA[:3]
    await r.aclose()
    await r.aclose()
    assert fake.bodies[0].aclose_calls == 1
    with pytest.raises(InvalidArgument, match="the reader is closed"):
        await r.read()


async def test_body_closed_once_when_leaving_context_early(fake: FakeProvider) -> None:
    async with bucket().download("k") as r:
        await r.read(10)
    assert fake.bodies[0].aclose_calls == 1


async def test_body_closed_once_on_error(fake: FakeProvider) -> None:
    fake.body_error = BackendError("server hiccup")
    r = bucket().download("k")
    with pytest.raises(BackendError, match="server hiccup"):
        await r.read()
    assert fake.bodies[0].aclose_calls == 1
    await r.aclose()
    assert fake.bodies[0].aclose_calls == 1
    assert len(fake.gets()) == 1  # only ConnectionLost resumes


async def test_plain_exception_from_body_is_backend_error_and_closes(fake: FakeProvider) -> None:
    cause = ValueError("bad gzip")
    fake.body_error = cause
    r = bucket().download("k")
    with pytest.raises(BackendError) as info:
        await r.read()
    assert info.value.__cause__ is cause
    assert fake.bodies[0].aclose_calls == 1


async def test_body_closed_once_on_error_inside_context(fake: FakeProvider) -> None:
    with pytest.raises(KeyError):
        async with bucket().download("k") as r:
            await r.read(5)
            raise KeyError("user bug")
    assert fake.bodies[0].aclose_calls == 1


async def test_body_closed_once_on_cancellation_during_read(fake: FakeProvider) -> None:
    fake.hang_after = 300
    r = bucket().download("k")
    got = bytearray()

    async def consume() -> None:
        async for chunk in r:
            got.extend(chunk)

    task = asyncio.create_task(consume())
    for _ in range(50):
        await asyncio.sleep(0)
    assert not task.done()
    assert bytes(got) == DATA[:300]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fake.bodies[0].aclose_calls == 1
    await r.aclose()
    assert fake.bodies[0].aclose_calls == 1


# -- reads -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 3, 64, 99, 100, 101, 250, 5000])
async def test_read_n_never_returns_more_than_n(fake: FakeProvider, n: int) -> None:
    fake.drops = [333]  # a resume in the middle must not change that
    r = bucket().download("k")
    out = bytearray()
    while chunk := await r.read(n):
        assert 0 < len(chunk) <= n
        out.extend(chunk)
    assert bytes(out) == DATA
    assert [b.aclose_calls for b in fake.bodies] == [1, 1]


async def test_mixed_read_sizes_and_iteration_give_the_exact_stream(fake: FakeProvider) -> None:
    r = bucket().download("k")
    a = await r.read(7)
    assert await r.read(0) == b""
    b = await r.read(200)
    c = b"".join([chunk async for chunk in r])
    assert a + b + c == DATA


async def test_read_rejects_non_int(fake: FakeProvider) -> None:
    r = bucket().download("k")
    with pytest.raises(InvalidArgument, match="read\\(\\) takes an int"):
        await r.read(1.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        await r.read(True)
    assert fake.calls == []


async def test_length_zero_does_a_head_only(fake: FakeProvider) -> None:
    r = bucket().download("k", offset=5, length=0)
    assert await r.read() == b""
    assert fake.names() == ["head"]
    assert (await r.attrs()).size == len(DATA)
    await r.aclose()
    assert fake.names() == ["head"]


async def test_length_zero_attrs_and_iteration(fake: FakeProvider) -> None:
    async with bucket().download("k", length=0) as r:
        assert (await r.attrs()).etag == "etag-1"
        assert [c async for c in r] == []
    assert fake.names() == ["head"]


async def test_download_is_lazy_and_attrs_opens(fake: FakeProvider) -> None:
    r = bucket().download("k")
    assert fake.calls == []
    attrs = await r.attrs()
    assert attrs.size == len(DATA)
    assert fake.names() == ["get"]
    await r.aclose()
    assert fake.bodies[0].aclose_calls == 1


@pytest.mark.parametrize(
    ("kwargs", "hint"),
    [
        ({"offset": -1}, "offset must be an int >= 0"),
        ({"length": -1}, "length must be an int >= 0"),
        ({"offset": True}, "offset must be an int"),
        ({"length": 1.0}, "length must be an int"),
    ],
)
async def test_bad_range_arguments(fake: FakeProvider, kwargs: dict[str, Any], hint: str) -> None:
    with pytest.raises(InvalidArgument, match=hint):
        bucket().download("k", **kwargs)


async def test_reader_dropped_open_warns(fake: FakeProvider) -> None:
    import gc

    r = bucket().download("left-open")
    await r.read(1)
    with pytest.warns(ResourceWarning, match="'left-open' was neither exhausted nor closed"):
        del r
        gc.collect()


async def test_a_small_read_makes_no_task() -> None:
    """The hot path: opening, reading and closing at EOF on memory:// runs in the caller's
    task (the body's release finishes in its first step, so it needs no shielded task)."""
    from aiobucket.testing import memory_buckets

    made: list[asyncio.Task[Any]] = []
    loop = asyncio.get_running_loop()

    def factory(lp: asyncio.AbstractEventLoop, coro: Any, **kw: Any) -> asyncio.Task[Any]:
        task = asyncio.Task(coro, loop=lp, **kw)
        made.append(task)
        return task

    with memory_buckets():
        b = aiobucket.Bucket("hot")
        async with b.upload("k") as w:
            await w.write(b"x" * 4096)
        loop.set_task_factory(factory)
        try:
            assert await b.download("k").read() == b"x" * 4096
            async with b.download("k") as r:
                assert [c async for c in r] == [b"x" * 4096]
        finally:
            loop.set_task_factory(None)
    assert made == []
