"""Writer semantics against a recording fake of our own Provider protocol."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

import aiobucket
from aiobucket import (
    BackendError,
    Bucket,
    Capabilities,
    InvalidArgument,
    ObjectAttrs,
    UploadAborted,
    UploadAttrs,
    WriterClosed,
    config,
)
from aiobucket._aio import run_to_completion
from aiobucket.providers.base import Part, PutOptions
from aiobucket.writer import TASK_NAME

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("clean_config")]


@dataclass
class FakeProvider:
    """Records every call; put_part can be held at per-part gates and made to fail."""

    capabilities: Capabilities = field(default_factory=Capabilities)
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    gates: dict[int, asyncio.Event] = field(default_factory=dict)
    hold_all_parts: asyncio.Event | None = None
    fail_part: dict[int, BaseException] = field(default_factory=dict)
    put_error: BaseException | None = None
    complete_gate: asyncio.Event | None = None
    parts: dict[int, bytes] = field(default_factory=dict)
    in_flight: int = 0
    max_in_flight: int = 0
    in_flight_bytes: int = 0
    completed_bytes: int = 0
    probe: Any = None  # called at every put_part entry (to sample the writer's memory)

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]

    async def put(self, key: str, data: bytes, opts: PutOptions) -> ObjectAttrs:
        self.calls.append(("put", key, bytes(data), opts))
        if self.put_error is not None:
            raise self.put_error
        return ObjectAttrs(
            name=key, size=len(data), etag=hashlib.md5(data).hexdigest(), content_type=opts.content_type
        )

    async def start_multipart(self, key: str, opts: PutOptions) -> FakeUpload:
        self.calls.append(("start_multipart", key, opts))
        return FakeUpload(self, key, opts)

    async def get(self, key: str, opts: Any) -> Any:
        self.calls.append(("get", key, opts))
        raise AssertionError("the writer never reads")

    async def head(self, key: str, version: str | None = None, *, checksums: bool = False) -> ObjectAttrs:
        self.calls.append(("head", key, version))
        raise AssertionError("the writer never heads")

    async def delete(self, key: str, version: str | None = None) -> None:
        self.calls.append(("delete", key, version))

    def list(self, prefix: str, **kw: Any) -> Any:
        self.calls.append(("list", prefix))
        raise AssertionError("the writer never lists")

    async def delete_many(self, keys: Any) -> Any:
        raise AssertionError("unused")

    def can_copy_from(self, source: Any) -> bool:
        return False

    async def copy(self, source: Any, src: str, dst: str, opts: Any) -> ObjectAttrs:
        raise AssertionError("unused")

    async def sign_url(self, key: str, method: Any, ttl: Any, version: str | None = None, **kw: Any) -> str:
        raise AssertionError("unused")

    async def sign_post(self, key: str, policy: Any) -> Any:
        raise AssertionError("unused")

    async def aclose(self) -> None:
        self.calls.append(("aclose",))


@dataclass
class FakeUpload:
    provider: FakeProvider
    key: str
    opts: PutOptions

    async def put_part(self, number: int, data: bytes) -> Part:
        p = self.provider
        p.calls.append(("put_part", number, len(data)))
        p.in_flight += 1
        p.in_flight_bytes += len(data)
        p.max_in_flight = max(p.max_in_flight, p.in_flight)
        if p.probe is not None:
            p.probe()
        try:
            if p.hold_all_parts is not None:
                await p.hold_all_parts.wait()
            gate = p.gates.get(number)
            if gate is not None:
                await gate.wait()
            if number in p.fail_part:
                raise p.fail_part[number]
            p.parts[number] = bytes(data)
            p.completed_bytes += len(data)
            return Part(number, f"etag-{number}", len(data))
        finally:
            p.in_flight -= 1
            p.in_flight_bytes -= len(data)

    async def complete(self, parts: list[Part]) -> ObjectAttrs:
        p = self.provider
        p.calls.append(("complete", [x.number for x in parts]))
        if p.complete_gate is not None:
            # The request is on the wire: a provider lets it finish, then re-raises a cancel.
            await run_to_completion(p.complete_gate.wait())
        data = b"".join(p.parts[x.number] for x in parts)
        return ObjectAttrs(name=self.key, size=len(data), etag="multi", content_type=self.opts.content_type)

    async def abort(self) -> None:
        self.provider.calls.append(("abort",))


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    provider = FakeProvider()
    built: list[str] = []

    def factory(settings: Any, name: str, bucket_config: Any) -> FakeProvider:
        built.append(name)
        return provider

    aiobucket.register_provider("fake", factory)
    provider.built = built  # type: ignore[attr-defined]
    with config.override({"wb": "fake://store"}):
        yield provider


def bucket() -> Bucket:
    return Bucket("wb")


def chunks(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def payload(n: int) -> bytes:
    return bytes(i % 251 for i in range(n))


async def settle(cond: Any, rounds: int = 200) -> None:
    """Let the loop run until ``cond()`` holds (no wall clock)."""
    for _ in range(rounds):
        if cond():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


def writer_tasks() -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks() if t.get_name() in (TASK_NAME, "aiobucket-shielded")}


# -- laziness and the single-put path -----------------------------------------------------------


async def test_no_provider_call_before_first_write(fake: FakeProvider) -> None:
    w = bucket().upload("k", part_size=10)
    await asyncio.sleep(0)
    assert fake.calls == []
    assert fake.built == []  # type: ignore[attr-defined]
    await w.write(b"abc")  # fits in a part: buffered, still no request
    assert fake.calls == []
    assert fake.built == ["wb"]  # type: ignore[attr-defined]
    attrs = await w.close()
    assert fake.names() == ["put"]
    assert attrs.size == 3


async def test_close_without_write_is_one_empty_put(fake: FakeProvider) -> None:
    w = bucket().upload("empty")
    assert fake.calls == []
    attrs = await w.close()
    assert fake.names() == ["put"]
    assert fake.calls[0][2] == b""
    assert attrs.size == 0


async def test_exactly_part_size_is_a_single_put(fake: FakeProvider) -> None:
    data = payload(100)
    async with bucket().upload("k", part_size=100) as w:
        for c in chunks(data, 30):
            await w.write(c)
    assert fake.names() == ["put"]
    assert fake.calls[0][2] == data
    assert w.closed and w.bytes_written == 100


async def test_part_size_plus_one_is_two_parts_in_order(fake: FakeProvider) -> None:
    data = payload(101)
    async with bucket().upload("k", part_size=100) as w:
        await w.write(data)
    assert fake.names() == ["start_multipart", "put_part", "put_part", "complete"]
    assert [c[1:] for c in fake.calls if c[0] == "put_part"] == [(1, 100), (2, 1)]
    assert fake.parts == {1: data[:100], 2: data[100:]}
    assert fake.calls[-1] == ("complete", [1, 2])
    assert (await w.close()).size == 101  # close() again returns the same attrs


@pytest.mark.parametrize("write_size", [1, 7, 100, 250, 1000])
async def test_parts_reassemble_to_the_stream(fake: FakeProvider, write_size: int) -> None:
    data = payload(1000)
    async with bucket().upload("k", part_size=64) as w:
        for c in chunks(data, write_size):
            assert await w.write(c) == len(c)
    numbers = sorted(fake.parts)
    assert numbers == list(range(1, 17))
    assert all(len(fake.parts[n]) == 64 for n in numbers[:-1])
    assert b"".join(fake.parts[n] for n in numbers) == data


async def test_write_accepts_bytearray_and_memoryview(fake: FakeProvider) -> None:
    async with bucket().upload("k") as w:
        await w.write(bytearray(b"ab"))
        assert await w.write(memoryview(b"xcdx")[1:3]) == 2
    assert fake.calls[0][2] == b"abcd"


async def test_write_rejects_str_without_aborting(fake: FakeProvider) -> None:
    w = bucket().upload("k")
    with pytest.raises(InvalidArgument, match="encode str first"):
        await w.write("text")  # type: ignore[arg-type]
    await w.write(b"ok")
    assert (await w.close()).size == 2


# -- parallel parts: bounded concurrency and memory ----------------------------------------------


def parallel(fake: FakeProvider, **kw: Any) -> None:
    fake.capabilities = Capabilities(parallel_parts=True, **kw)


async def test_parallel_parts_never_exceed_concurrency(fake: FakeProvider) -> None:
    parallel(fake)
    ps, conc = 100, 3
    data = payload(ps * 12 + 5)
    for n in range(1, 14):
        fake.gates[n] = asyncio.Event()
    w = bucket().upload("k", part_size=ps, concurrency=conc)

    async def produce() -> ObjectAttrs:
        for c in chunks(data, 37):
            await w.write(c)
        return await w.close()

    task = asyncio.create_task(produce())
    # Whenever the loop goes quiet, release the newest waiting part (so parts finish out of order).
    for _ in range(100):
        for _ in range(20):
            await asyncio.sleep(0)
        if task.done():
            break
        assert fake.in_flight <= conc
        waiting = [n for n in _started(fake) if not fake.gates[n].is_set()]
        if len(_started(fake)) < 13:
            assert len(waiting) == conc  # the writer keeps every slot busy, and no more
        fake.gates[max(waiting)].set()
    attrs = await task
    assert attrs.size == len(data)
    assert fake.max_in_flight == conc
    assert b"".join(fake.parts[n] for n in sorted(fake.parts)) == data


def _started(fake: FakeProvider) -> set[int]:
    return {c[1] for c in fake.calls if c[0] == "put_part"}


@pytest.mark.parametrize("write_size", [37, 100])
async def test_parallel_parts_in_flight_bytes_bounded(fake: FakeProvider, write_size: int) -> None:
    """The parts on the wire never exceed concurrency x part_size."""
    parallel(fake)
    ps, conc = 100, 3
    fake.hold_all_parts = asyncio.Event()
    max_wire = 0

    def probe() -> None:
        nonlocal max_wire
        max_wire = max(max_wire, fake.in_flight_bytes)

    fake.probe = probe
    w = bucket().upload("k", part_size=ps, concurrency=conc)
    task = asyncio.create_task(_write_all(w, payload(ps * 10), write_size))
    await settle(lambda: fake.in_flight == conc)
    for _ in range(50):
        await asyncio.sleep(0)
    assert not task.done()  # held: every slot is taken
    assert fake.in_flight == conc
    fake.hold_all_parts.set()
    await task
    assert max_wire <= ps * conc


async def _write_all(w: aiobucket.Writer, data: bytes, size: int) -> ObjectAttrs:
    for c in chunks(data, size):
        await w.write(c)
    return await w.close()


@pytest.mark.parametrize("write_size", [37, 100])
async def test_parallel_buffered_bytes_never_exceed_part_size_times_concurrency_plus_one(
    fake: FakeProvider, write_size: int
) -> None:
    """Bytes the writer holds = accepted (bytes_written) minus parts already stored."""
    parallel(fake)
    ps, conc = 100, 3
    fake.hold_all_parts = asyncio.Event()
    w = bucket().upload("k", part_size=ps, concurrency=conc)
    max_held = 0

    def sample() -> None:
        nonlocal max_held
        max_held = max(max_held, w.bytes_written - fake.completed_bytes)

    fake.probe = sample
    task = asyncio.create_task(_write_all(w, payload(ps * 10), write_size))
    await settle(lambda: fake.in_flight == conc)
    for _ in range(50):  # the writer is now blocked on a free slot
        await asyncio.sleep(0)
        sample()
    fake.hold_all_parts.set()
    while not task.done():
        sample()
        await asyncio.sleep(0)
    await task
    assert max_held <= ps * (conc + 1), f"held {max_held} bytes"


async def test_parts_reach_complete_sorted_even_when_they_finish_out_of_order(fake: FakeProvider) -> None:
    parallel(fake)
    for n in (1, 2, 3):
        fake.gates[n] = asyncio.Event()
    data = payload(250)
    w = bucket().upload("k", part_size=100, concurrency=3)
    await w.write(data)  # parts 1 and 2 are cut; 50 bytes stay buffered
    close = asyncio.create_task(w.close())
    await settle(lambda: fake.in_flight == 3)
    for n in (3, 2, 1):  # finish in reverse order
        fake.gates[n].set()
        await settle(lambda n=n: n in fake.parts)
    attrs = await close
    assert fake.calls[-1] == ("complete", [1, 2, 3])
    assert attrs.size == 250
    assert [fake.parts[n] for n in (1, 2, 3)] == [data[:100], data[100:200], data[200:]]


async def test_without_parallel_parts_concurrency_is_one(fake: FakeProvider) -> None:
    fake.capabilities = Capabilities(parallel_parts=False)
    fake.hold_all_parts = asyncio.Event()
    w = bucket().upload("k", part_size=10, concurrency=8)
    task = asyncio.create_task(_write_all(w, payload(100), 10))
    await settle(lambda: fake.in_flight == 1)
    for _ in range(20):
        await asyncio.sleep(0)
    assert fake.in_flight == 1
    fake.hold_all_parts.set()
    await task
    assert fake.max_in_flight == 1
    assert [c[1] for c in fake.calls if c[0] == "put_part"] == list(range(1, 11))


async def test_concurrency_comes_from_settings_then_capabilities(fake: FakeProvider) -> None:
    parallel(fake, default_concurrency=2)
    fake.hold_all_parts = asyncio.Event()
    w = bucket().upload("k", part_size=10)
    task = asyncio.create_task(_write_all(w, payload(100), 10))
    await settle(lambda: fake.in_flight == 2)
    for _ in range(20):
        await asyncio.sleep(0)
    fake.hold_all_parts.set()
    await task
    assert fake.max_in_flight == 2


# -- failures abort -----------------------------------------------------------------------------


@pytest.mark.parametrize("parallel_parts", [False, True])
async def test_failing_put_part_aborts_once_and_errors_are_re_raised(
    fake: FakeProvider, parallel_parts: bool
) -> None:
    fake.capabilities = Capabilities(parallel_parts=parallel_parts)
    boom = BackendError("part 2 failed")
    fake.fail_part[2] = boom
    w = bucket().upload("k", part_size=10, concurrency=2)
    with pytest.raises(BackendError) as info:
        for c in chunks(payload(100), 10):
            await w.write(c)
        await w.close()
    assert info.value is boom
    assert (boom.bucket, boom.key) == ("wb", "k")
    assert fake.names().count("abort") == 1
    assert "complete" not in fake.names()
    assert w.closed
    with pytest.raises(BackendError) as again:
        await w.close()
    assert again.value is boom
    with pytest.raises(BackendError) as again_w:
        await w.write(b"more")
    assert again_w.value is boom
    assert fake.names().count("abort") == 1
    assert writer_tasks() == set()


async def test_failure_of_last_part_during_close_aborts(fake: FakeProvider) -> None:
    boom = BackendError("last part failed")
    fake.fail_part[2] = boom
    w = bucket().upload("k", part_size=10)
    await w.write(payload(15))
    with pytest.raises(BackendError) as info:
        await w.close()
    assert info.value is boom
    assert fake.names() == ["start_multipart", "put_part", "put_part", "abort"]


async def test_plain_runtime_error_surfaces_as_backend_error_with_cause(fake: FakeProvider) -> None:
    cause = RuntimeError("driver exploded")
    fake.fail_part[1] = cause
    w = bucket().upload("k", part_size=10)
    with pytest.raises(BackendError) as info:
        await w.write(payload(11))
    assert info.value.__cause__ is cause
    assert "RuntimeError" in str(info.value)
    assert (info.value.bucket, info.value.key) == ("wb", "k")
    assert fake.names().count("abort") == 1
    # Later calls keep failing, still pointing at the original exception.
    with pytest.raises(aiobucket.BucketError) as later:
        await w.close()
    assert later.value.__cause__ is cause


async def test_plain_error_from_put_surfaces_as_backend_error(fake: FakeProvider) -> None:
    cause = OSError("socket closed")
    fake.put_error = cause
    with pytest.raises(BackendError) as info:
        async with bucket().upload("k") as w:
            await w.write(b"x")
    assert info.value.__cause__ is cause
    assert "abort" not in fake.names()  # nothing multipart to abort


async def test_exception_in_body_of_async_with_aborts(fake: FakeProvider) -> None:
    with pytest.raises(KeyError):
        async with bucket().upload("k", part_size=10) as w:
            await w.write(payload(25))
            raise KeyError("user bug")
    assert fake.names().count("abort") == 1
    assert "complete" not in fake.names()
    with pytest.raises(UploadAborted) as info:
        await w.close()
    assert isinstance(info.value.__cause__, KeyError)


async def test_user_abort_then_close_raises_upload_aborted(fake: FakeProvider) -> None:
    w = bucket().upload("k", part_size=10)
    await w.write(payload(25))
    await w.abort()
    assert fake.names().count("abort") == 1
    with pytest.raises(UploadAborted):
        await w.close()
    await w.abort()  # idempotent
    assert fake.names().count("abort") == 1


async def test_abort_after_commit_raises_writer_closed(fake: FakeProvider) -> None:
    w = bucket().upload("k")
    await w.close()
    with pytest.raises(WriterClosed):
        await w.abort()
    with pytest.raises(WriterClosed):
        await w.write(b"x")


# -- cancellation ---------------------------------------------------------------------------------


async def test_cancel_while_waiting_for_a_slot_aborts_and_leaks_no_task(fake: FakeProvider) -> None:
    parallel(fake)
    fake.hold_all_parts = asyncio.Event()
    before = asyncio.all_tasks()
    w = bucket().upload("k", part_size=10, concurrency=3)
    task = asyncio.create_task(_write_all(w, payload(200), 10))
    await settle(lambda: fake.in_flight == 3)
    for _ in range(20):
        await asyncio.sleep(0)
    assert not task.done()
    assert len(writer_tasks()) == 3  # the three parts, each named by the writer
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fake.names().count("abort") == 1
    assert "complete" not in fake.names()
    assert fake.in_flight == 0  # the held parts were cancelled, not left running
    assert asyncio.all_tasks() - before == set()
    assert writer_tasks() == set()
    with pytest.raises(UploadAborted):
        await w.close()


async def test_cancel_while_a_serial_part_uploads_aborts(fake: FakeProvider) -> None:
    fake.hold_all_parts = asyncio.Event()
    before = asyncio.all_tasks()
    w = bucket().upload("k", part_size=10)
    task = asyncio.create_task(_write_all(w, payload(50), 10))
    await settle(lambda: fake.in_flight == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fake.names().count("abort") == 1
    assert "complete" not in fake.names()
    assert asyncio.all_tasks() - before == set()


async def test_cancel_pending_before_close_aborts_instead_of_committing(fake: FakeProvider) -> None:
    w = bucket().upload("k")
    await w.write(b"abc")

    async def cancelled_closer() -> ObjectAttrs:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()  # pending when close() reaches its first await
        return await w.close()

    with pytest.raises(asyncio.CancelledError):
        await asyncio.create_task(cancelled_closer())
    assert "put" not in fake.names()
    assert w.closed
    with pytest.raises(UploadAborted):
        await w.close()


async def test_cancel_during_complete_lets_the_commit_on_the_wire_finish(fake: FakeProvider) -> None:
    fake.complete_gate = asyncio.Event()
    w = bucket().upload("k", part_size=10)
    await w.write(payload(25))
    task = asyncio.create_task(w.close())
    await settle(lambda: "complete" in fake.names())
    task.cancel()
    for _ in range(5):
        await asyncio.sleep(0)
    assert not task.done()  # the commit is awaited to the end
    fake.complete_gate.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fake.names().count("complete") == 1
    # The writer cannot tell a commit cancelled on the wire from one cancelled in a
    # backoff, so it aborts: a no-op on a completed upload (every provider's abort is).
    assert fake.names()[-1] in ("complete", "abort")


async def test_cancel_during_complete_still_finishes_the_commit(fake: FakeProvider) -> None:
    fake.complete_gate = asyncio.Event()
    w = bucket().upload("k", part_size=10)
    await w.write(payload(25))
    task = asyncio.create_task(w.close())
    await settle(lambda: "complete" in fake.names())
    task.cancel()
    task.cancel()
    for _ in range(5):
        await asyncio.sleep(0)
    assert not task.done()
    fake.complete_gate.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fake.names().count("complete") == 1
    assert writer_tasks() == set()


# -- argument and capability checks -----------------------------------------------------------


@pytest.mark.parametrize(
    ("part_size", "hint"),
    [
        (50, "part_size 50 does not suit this backend: it must be at least 100 and a multiple of 25"),
        (110, "part_size 110 does not suit this backend"),
        (99, "part_size 99 does not suit"),
    ],
)
async def test_part_size_must_suit_the_backend(fake: FakeProvider, part_size: int, hint: str) -> None:
    fake.capabilities = Capabilities(min_part_size=100, part_size_multiple=25)
    w = bucket().upload("k", part_size=part_size)
    with pytest.raises(InvalidArgument) as info:
        await w.write(b"x")
    assert hint in str(info.value)
    assert (info.value.bucket, info.value.key) == ("wb", "k")
    assert fake.calls == []


async def test_part_size_from_settings_is_checked_too(fake: FakeProvider) -> None:
    fake.capabilities = Capabilities(min_part_size=100)
    with config.override({"wb": {"url": "fake://store", "part_size": 64}}):
        w = bucket().upload("k")
        with pytest.raises(InvalidArgument, match="part_size 64 does not suit"):
            await w.close()
    assert fake.calls == []


async def test_valid_part_size_at_the_minimum_is_accepted(fake: FakeProvider) -> None:
    fake.capabilities = Capabilities(min_part_size=100, part_size_multiple=25)
    async with bucket().upload("k", part_size=125) as w:
        await w.write(payload(300))
    assert [c[2] for c in fake.calls if c[0] == "put_part"] == [125, 125, 50]


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "10"])
async def test_part_size_and_concurrency_arguments_are_checked_eagerly(
    fake: FakeProvider, bad: object
) -> None:
    with pytest.raises(InvalidArgument, match="part_size must be a positive int"):
        bucket().upload("k", part_size=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="concurrency must be a positive int"):
        bucket().upload("k", concurrency=bad)  # type: ignore[arg-type]
    assert fake.calls == []


async def test_exactly_max_parts_is_fine(fake: FakeProvider) -> None:
    fake.capabilities = Capabilities(max_parts=3)
    async with bucket().upload("k", part_size=10) as w:
        await w.write(payload(30))
    assert fake.calls[-1] == ("complete", [1, 2, 3])


@pytest.mark.parametrize("size", [31, 45])
async def test_more_than_max_parts_raises_with_a_hint(fake: FakeProvider, size: int) -> None:
    fake.capabilities = Capabilities(max_parts=3)
    w = bucket().upload("k", part_size=10)
    with pytest.raises(InvalidArgument) as info:
        await w.write(payload(size))
        await w.close()
    msg = str(info.value)
    assert "needs more than 3 parts of 10 bytes" in msg
    assert "pass a larger part_size to upload()" in msg
    assert fake.names().count("abort") == 1
    assert "complete" not in fake.names()
    assert [c[1] for c in fake.calls if c[0] == "put_part"] == [1, 2, 3]


async def test_part_size_above_the_largest_part_is_refused_before_any_io(fake: FakeProvider) -> None:
    fake.capabilities = Capabilities(max_parts=3, max_part_size=20)
    w = bucket().upload("k", part_size=21)
    with pytest.raises(
        InvalidArgument, match=r"part_size 21 is above this backend.s largest part \(20 bytes\)"
    ):
        await w.write(b"x")
    assert fake.calls == []


async def test_a_known_size_grows_parts_up_to_the_largest_part(fake: FakeProvider) -> None:
    fake.capabilities = Capabilities(max_parts=3, max_part_size=20)
    async with bucket().upload("k", part_size=10, size=60) as w:
        for c in chunks(payload(60), 7):
            await w.write(c)
    assert fake.calls[-1] == ("complete", [1, 2, 3])
    assert [len(fake.parts[n]) for n in (1, 2, 3)] == [20, 20, 20]


async def test_a_known_size_beyond_parts_times_largest_part_is_refused(fake: FakeProvider) -> None:
    fake.capabilities = Capabilities(max_parts=3, max_part_size=20)
    w = bucket().upload("k", part_size=10, size=61)
    with pytest.raises(InvalidArgument, match="size 61 is above this backend's largest object"):
        await w.write(b"x")
    assert fake.calls == []


async def test_concurrent_writes_raise_invalid_argument(fake: FakeProvider) -> None:
    fake.gates[1] = asyncio.Event()
    w = bucket().upload("k", part_size=10)
    first = asyncio.create_task(w.write(payload(15)))
    await settle(lambda: fake.in_flight == 1)
    with pytest.raises(InvalidArgument, match="another write or close on this writer is still running"):
        await w.write(b"second")
    with pytest.raises(InvalidArgument, match="cannot close: another write"):
        await w.close()
    fake.gates[1].set()
    assert await first == 15
    attrs = await w.close()  # the rejected calls did not spoil the upload
    assert attrs.size == 15
    assert "abort" not in fake.names()
    assert b"".join(fake.parts[n] for n in sorted(fake.parts)) == payload(15)


# -- attributes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "attrs", "expected"),
    [
        ("cat.jpg", None, "image/jpeg"),
        ("dir/page.html", None, "text/html"),
        ("data.unknownext123", None, "application/octet-stream"),
        ("no-extension", None, "application/octet-stream"),
        ("cat.jpg", UploadAttrs(content_type="text/plain"), "text/plain"),
        ("x.bin", UploadAttrs(content_type="application/x-custom"), "application/x-custom"),
    ],
)
async def test_content_type_is_guessed_unless_given(
    fake: FakeProvider, key: str, attrs: UploadAttrs | None, expected: str
) -> None:
    async with bucket().upload(key, attrs=attrs) as w:
        await w.write(b"x")
    opts: PutOptions = fake.calls[0][3]
    assert opts.content_type == expected


async def test_put_options_carry_attrs_and_preconditions_on_both_paths(fake: FakeProvider) -> None:
    attrs = UploadAttrs(cache_control="no-store", content_disposition="inline", metadata={"a": "1"})
    pre = aiobucket.Preconditions(not_exists=True)
    async with bucket().upload("small.txt", attrs=attrs, preconditions=pre) as w:
        await w.write(b"x")
    async with bucket().upload("big.txt", attrs=attrs, preconditions=pre, part_size=10) as w:
        await w.write(payload(20 + 1))
    single: PutOptions = fake.calls[0][3]
    multi: PutOptions = next(c[2] for c in fake.calls if c[0] == "start_multipart")
    for opts in (single, multi):
        assert opts.content_type == "text/plain"
        assert (opts.cache_control, opts.content_disposition) == ("no-store", "inline")
        assert dict(opts.metadata) == {"a": "1"}
        assert opts.preconditions == pre


async def test_bad_attrs_and_preconditions_types_are_rejected(fake: FakeProvider) -> None:
    with pytest.raises(InvalidArgument, match="attrs must be UploadAttrs"):
        bucket().upload("k", attrs={"content_type": "x"})  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="preconditions must be Preconditions"):
        bucket().upload("k", preconditions=True)  # type: ignore[arg-type]


# -- resource warnings -------------------------------------------------------------------------


async def test_writer_dropped_after_io_without_close_warns(fake: FakeProvider) -> None:
    w = bucket().upload("forgotten.txt")
    await w.write(b"abc")
    with pytest.warns(ResourceWarning, match="'forgotten.txt' was never closed or aborted"):
        del w
        gc.collect()


@pytest.mark.parametrize("how", ["unused", "closed", "aborted"])
async def test_writer_dropped_unused_or_finished_does_not_warn(fake: FakeProvider, how: str) -> None:
    w = bucket().upload("k")
    if how == "closed":
        await w.write(b"abc")
        await w.close()
    elif how == "aborted":
        await w.write(b"abc")
        await w.abort()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        del w
        gc.collect()


def test_two_parts_failing_together_leave_no_unretrieved_task_exception(fake: FakeProvider) -> None:
    parallel(fake)
    fake.fail_part[1] = BackendError("part 1 failed")
    fake.fail_part[2] = BackendError("part 2 failed")
    unhandled: list[str] = []

    async def scenario() -> None:
        gate = asyncio.Event()
        fake.hold_all_parts = gate
        w = bucket().upload("k", part_size=10, concurrency=2)
        task = asyncio.create_task(_write_all(w, payload(100), 10))
        await settle(lambda: fake.in_flight == 2)
        gate.set()  # both parts fail in the same loop iteration
        with pytest.raises(BackendError):
            await task
        assert fake.names().count("abort") == 1

    # A private loop, so every task is collected (and reported) before we look.
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(lambda _loop, ctx: unhandled.append(str(ctx.get("message"))))
    try:
        loop.run_until_complete(scenario())
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    fake.fail_part.clear()
    gc.collect()
    assert unhandled == []
