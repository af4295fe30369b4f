"""Tracing: plain listeners and OpenTelemetry spans end when the operation really ends."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import aiobucket
from aiobucket import Bucket, BucketConfig, ObjectNotFound, Query, tracing
from aiobucket.testing import memory_buckets
from aiobucket.tracing import TraceEvent

pytestmark = pytest.mark.anyio


@pytest.fixture
def events() -> Iterator[list[TraceEvent]]:
    seen: list[TraceEvent] = []
    remove = tracing.add_listener(seen.append)
    with memory_buckets():
        yield seen
    remove()
    assert seen.append not in tracing._listeners


def of(events: list[TraceEvent], op: str, phase: str | None = None) -> list[TraceEvent]:
    return [e for e in events if e.operation == op and (phase is None or e.phase == phase)]


async def put(b: Bucket, key: str, data: bytes) -> None:
    async with b.upload(key) as w:
        await w.write(data)


# -- plain listeners --------------------------------------------------------------------------------


async def test_upload_start_and_end(events: list[TraceEvent]) -> None:
    await put(Bucket("tb"), "a.txt", b"hello")
    start, end = of(events, "upload")
    assert (start.phase, end.phase) == ("start", "end")
    assert (start.bucket, start.key) == ("tb", "a.txt")
    assert end.error is None
    assert end.attributes["size"] == 5
    assert end.attributes["parts"] == 1
    assert end.duration is not None and end.duration >= 0
    assert start.duration is None


async def test_failed_upload_records_the_error(events: list[TraceEvent]) -> None:
    b = Bucket("tb")
    await put(b, "a.txt", b"1")
    with pytest.raises(aiobucket.PreconditionFailed):
        async with b.upload("a.txt", preconditions=aiobucket.Preconditions(not_exists=True)) as w:
            await w.write(b"2")
    end = of(events, "upload", "end")[-1]
    assert isinstance(end.error, aiobucket.PreconditionFailed)


async def test_download_ends_only_when_exhausted(events: list[TraceEvent]) -> None:
    b = Bucket("tb")
    await put(b, "a.txt", b"hello world")
    r = b.download("a.txt")
    assert await r.read(3) == b"hel"
    assert [e.phase for e in of(events, "download")] == ["start"]
    assert await r.read() == b"lo world"
    _, end = of(events, "download")
    assert end.phase == "end" and end.error is None
    assert end.attributes["bytes"] == 11
    assert end.attributes["size"] == 11
    assert end.attributes["complete"] is True
    await r.aclose()
    assert len(of(events, "download")) == 2


async def test_download_ends_when_closed_early(events: list[TraceEvent]) -> None:
    b = Bucket("tb")
    await put(b, "a.txt", b"hello world")
    async with b.download("a.txt") as r:
        await r.read(2)
        assert [e.phase for e in of(events, "download")] == ["start"]
    end = of(events, "download", "end")[0]
    assert end.attributes["complete"] is False
    assert end.attributes["bytes"] == 11  # received from the backend, not handed out


async def test_download_of_missing_key_ends_with_error(events: list[TraceEvent]) -> None:
    with pytest.raises(ObjectNotFound):
        async with Bucket("tb").download("missing"):
            pass
    end = of(events, "download", "end")[0]
    assert isinstance(end.error, ObjectNotFound)


async def test_list_ends_when_iterator_stops_with_items(events: list[TraceEvent]) -> None:
    b = Bucket("tb")
    for k in ("a", "b", "c"):
        await put(b, k, b"x")
    names = []
    async for err, entry in b.list():
        assert err is None and entry is not None
        names.append(entry.name)
        assert of(events, "list", "end") == []
    assert names == ["a", "b", "c"]
    (end,) = of(events, "list", "end")
    assert end.attributes["items"] == 3
    assert end.error is None
    assert end.key is None


async def test_list_limit_ends_span_with_items(events: list[TraceEvent]) -> None:
    b = Bucket("tb")
    for k in ("a", "b", "c"):
        await put(b, k, b"x")
    assert [e.name async for _, e in b.list(Query(limit=2))] == ["a", "b"]
    (end,) = of(events, "list", "end")
    assert end.attributes["items"] == 2
    assert end.attributes["limit"] == 2


async def test_list_ends_when_consumer_breaks_and_closes(events: list[TraceEvent]) -> None:
    b = Bucket("tb")
    for k in ("a", "b", "c"):
        await put(b, k, b"x")
    it = b.list()
    async for _ in it:
        break
    assert of(events, "list", "end") == []
    await it.aclose()  # type: ignore[attr-defined]
    (end,) = of(events, "list", "end")
    assert end.attributes["items"] == 1
    assert end.error is None


async def test_list_ends_when_consumer_breaks_and_drops_the_iterator(events: list[TraceEvent]) -> None:
    b = Bucket("tb")
    for k in ("a", "b", "c"):
        await put(b, k, b"x")
    async for _ in b.list():
        break
    gc.collect()  # the loop's async-generator hook schedules aclose()
    for _ in range(10):
        await asyncio.sleep(0)
    (end,) = of(events, "list", "end")
    assert end.attributes["items"] == 1
    assert end.error is None


async def test_single_operations_emit_start_and_end(events: list[TraceEvent]) -> None:
    b = Bucket("tb")
    await put(b, "a.txt", b"x")
    await b.attrs("a.txt")
    assert await b.exists("a.txt")
    assert not await b.exists("nope")
    await b.remove("a.txt")
    for op in ("attrs", "exists", "remove"):
        phases = [(e.phase, e.key) for e in of(events, op)]
        assert phases[:2] == [("start", "a.txt"), ("end", "a.txt")]
        assert all(e.error is None for e in of(events, op))
    assert len(of(events, "exists")) == 4


async def test_attrs_of_missing_key_records_object_not_found(events: list[TraceEvent]) -> None:
    with pytest.raises(ObjectNotFound):
        await Bucket("tb").attrs("missing")
    start, end = of(events, "attrs")
    assert start.error is None
    assert isinstance(end.error, ObjectNotFound)
    assert (end.error.bucket, end.error.key) == ("tb", "missing")


async def test_remove_of_missing_key_records_error(events: list[TraceEvent]) -> None:
    with pytest.raises(ObjectNotFound):
        await Bucket("tb").remove("missing")
    assert isinstance(of(events, "remove", "end")[0].error, ObjectNotFound)


async def test_versioned_operations_carry_the_version(events: list[TraceEvent]) -> None:
    b = Bucket("tbv", BucketConfig(versioned=True))
    async with b.upload("k") as w:
        await w.write(b"x")
    version = (await b.attrs("k")).version
    assert version is not None
    await b.attrs("k", version=version)
    start = of(events, "attrs", "start")[-1]
    assert start.attributes["version"] == version


async def test_broken_listener_does_not_break_operations(events: list[TraceEvent]) -> None:
    def broken(event: TraceEvent) -> None:
        raise RuntimeError("listener bug")

    remove = tracing.add_listener(broken)
    try:
        await put(Bucket("tb"), "a", b"x")
    finally:
        remove()
    assert len(of(events, "upload")) == 2


# -- OpenTelemetry ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def otel_exporter() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter


@pytest.fixture
def spans(
    otel_exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> Iterator[InMemorySpanExporter]:
    monkeypatch.setattr(tracing, "_otel_checked", False)
    monkeypatch.setattr(tracing, "_otel_tracer", None)
    otel_exporter.clear()
    with memory_buckets():
        yield otel_exporter
    otel_exporter.clear()


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


async def test_otel_upload_download_list_spans(spans: InMemorySpanExporter) -> None:
    b = Bucket("ob")
    await put(b, "a.txt", b"hello")
    await put(b, "b.txt", b"xy")
    (up, _) = named(spans, "aiobucket.upload")
    assert up.attributes is not None
    assert up.attributes["aiobucket.bucket"] == "ob"
    assert up.attributes["aiobucket.key"] == "a.txt"
    assert up.attributes["aiobucket.size"] == 5
    assert up.status.status_code is not StatusCode.ERROR

    r = b.download("a.txt")
    await r.read(1)
    assert named(spans, "aiobucket.download") == []  # not ended yet
    await r.read()
    (down,) = named(spans, "aiobucket.download")
    assert down.attributes is not None
    assert down.attributes["aiobucket.bytes"] == 5
    assert down.attributes["aiobucket.key"] == "a.txt"

    assert len([e async for e in b.list()]) == 2
    (ls,) = named(spans, "aiobucket.list")
    assert ls.attributes is not None
    assert ls.attributes["aiobucket.items"] == 2
    assert ls.attributes["aiobucket.bucket"] == "ob"
    assert "aiobucket.key" not in ls.attributes


async def test_otel_failure_sets_error_status_and_type(spans: InMemorySpanExporter) -> None:
    with pytest.raises(ObjectNotFound):
        await Bucket("ob").attrs("missing")
    (span,) = named(spans, "aiobucket.attrs")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["error.type"] == "ObjectNotFound"
    assert span.attributes["aiobucket.key"] == "missing"
    assert any(e.name == "exception" for e in span.events)


async def test_otel_single_operation_spans(spans: InMemorySpanExporter) -> None:
    b = Bucket("ob")
    await put(b, "k", b"x")
    assert await b.exists("k")
    await b.attrs("k")
    await b.remove("k")
    for op in ("exists", "attrs", "remove"):
        (span,) = named(spans, f"aiobucket.{op}")
        assert span.status.status_code is not StatusCode.ERROR
        assert span.attributes is not None
        assert span.attributes["aiobucket.key"] == "k"


async def test_otel_aborted_upload_is_an_error_span(spans: InMemorySpanExporter) -> None:
    with pytest.raises(KeyError):
        async with Bucket("ob").upload("k") as w:
            await w.write(b"x")
            raise KeyError("boom")
    (span,) = named(spans, "aiobucket.upload")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["error.type"] == "KeyError"


async def test_a_retry_lands_on_the_live_operation_of_its_bucket(spans: InMemorySpanExporter) -> None:
    """record_retry finds the operation in progress in the task: past operations that
    ended since, and live ones of other buckets, are skipped."""
    b, other = Bucket("ob"), Bucket("other")
    await put(b, "k", b"x" * 100)
    await put(other, "k", b"y" * 100)
    reader = b.download("k")
    assert await reader.read(10) == b"x" * 10  # open: its span is live until it is read out
    elsewhere = other.download("k")
    assert await elsewhere.read(10) == b"y" * 10  # live too, started later, another bucket
    await b.attrs("k")  # started and ended after both
    tracing.record_retry("ob", "GET k", "memory", error_type="503", attempt=2, delay=0.25)
    tracing.record_retry(None, "GET k", "memory", error_type="ConnectionResetError", attempt=3)
    assert await reader.read() == b"x" * 90
    assert await elsewhere.read() == b"y" * 90
    tracing.record_retry("ob", "GET k", "memory", error_type="503")  # nothing live: metric only

    [mine] = [s for s in named(spans, "aiobucket.download") if s.attributes["aiobucket.bucket"] == "ob"]
    [theirs] = [s for s in named(spans, "aiobucket.download") if s is not mine]
    events = [dict(e.attributes or {}) for e in mine.events if e.name == "aiobucket.retry"]
    assert events == [
        {
            "aiobucket.retry.request": "GET k",
            "aiobucket.retry.attempt": 2,
            "aiobucket.retry.reason": "503",
            "aiobucket.retry.delay_s": 0.25,
        }
    ]
    assert mine.attributes is not None and mine.attributes["aiobucket.retries"] == 1
    # bucket None (a provider that does not know its name): the innermost live operation
    assert [dict(e.attributes or {})["aiobucket.retry.attempt"] for e in theirs.events] == [3]
    assert [s.events for s in named(spans, "aiobucket.attrs")] == [()]
