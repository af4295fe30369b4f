"""Retries below an operation reach its trace: S3 and GCS behind the fault proxy.

One injected 503, then success: the operation's OpenTelemetry span carries an
``aiobucket.retry`` event (the request, the attempt about to be made, the reason,
the backoff) and ``aiobucket.retries`` = 1, and a plain listener's end event says
``retries`` = 1. A parallel download's range requests run in tasks of their own;
their retries land on the download's span too.

The spans go to a TracerProvider of this module's own (installed on aiobucket's
tracing module only), so the process-wide provider other tests set is untouched.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from faultproxy import FaultProxy, Request, Respond, gcs_error, s3_error
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import aiobucket
from aiobucket import config, tracing
from aiobucket.tracing import TraceEvent

pytestmark = pytest.mark.anyio

KiB = 1024
FAST_S3 = {"backoff_base": 0.01, "backoff_max": 0.05, "max_attempts": 4}


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "_otel_checked", True)
    monkeypatch.setattr(tracing, "_otel_tracer", provider.get_tracer("aiobucket"))
    yield exporter
    provider.shutdown()


@pytest.fixture
def ends() -> Iterator[list[TraceEvent]]:
    seen: list[TraceEvent] = []
    remove = tracing.add_listener(lambda e: seen.append(e) if e.phase == "end" else None)
    yield seen
    remove()


Match = Callable[[Request], bool]


class Target:
    """A bucket on one server behind a fault proxy, and how to tell its requests apart."""

    def __init__(self, kind: str, proxy: FaultProxy, settings: dict[str, object]) -> None:
        self.kind = kind
        self.proxy = proxy
        self.name = f"t-{uuid.uuid4().hex[:12]}"
        self.settings = {**settings, "key_prefix": f"{self.name}/"}

    def error(self) -> Respond:
        return s3_error(503, "SlowDown") if self.kind == "s3" else gcs_error(503)

    def upload(self, r: Request) -> bool:
        if self.kind == "s3":
            return r.method == "PUT"
        return r.method == "POST" and "uploadType=multipart" in r.query

    def data_get(self, r: Request) -> bool:
        return r.method == "GET" and (self.kind == "s3" or "alt=media" in r.query)


@pytest.fixture(params=["s3", "gcs"])
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """Sync: the session's servers start outside the test's event loop."""
    server: Any = request.getfixturevalue("s3_server" if request.param == "s3" else "gcs_server")
    with FaultProxy(server.endpoint) as proxy:
        if request.param == "s3":
            t = Target("s3", proxy, replace(server, endpoint=proxy.url).settings(**FAST_S3))
        else:
            t = Target("gcs", proxy, server.settings(retries=4, retry_initial=0.1, retry_cap=8.0))
            t.settings["url"] = str(t.settings["url"]).replace(server.endpoint, proxy.url)
        with config.override({t.name: t.settings}):
            yield t


@pytest.fixture(autouse=True)
async def _close_clients(anyio_backend: str) -> AsyncIterator[None]:
    yield
    await aiobucket.aclose()


def retry_events(span: ReadableSpan) -> list[dict[str, Any]]:
    return [dict(e.attributes or {}) for e in span.events if e.name == "aiobucket.retry"]


def only(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    [span] = [s for s in exporter.get_finished_spans() if s.name == name]
    return span


async def test_one_503_then_success_is_on_the_span(
    target: Target, spans: InMemorySpanExporter, ends: list[TraceEvent]
) -> None:
    b = aiobucket.Bucket(target.name)
    data = b"retried payload " * 1000
    target.proxy.add_rule(target.error(), when=target.upload)
    async with b.upload("k") as w:
        await w.write(data)
    target.proxy.add_rule(target.error(), when=target.data_get)
    assert await b.download("k").read() == data
    await target.proxy.settled()
    assert [r.status for r in target.proxy.requests if target.upload(r)] == [503, 200]

    for op in ("upload", "download"):
        span = only(spans, f"aiobucket.{op}")
        [event] = retry_events(span)
        assert event["aiobucket.retry.attempt"] == 2
        assert event["aiobucket.retry.reason"] == "503"
        assert 0 <= event["aiobucket.retry.delay_s"] <= 1.0
        assert op in str(event["aiobucket.retry.request"])
        assert span.attributes is not None and span.attributes["aiobucket.retries"] == 1
        [end] = [e for e in ends if e.operation == op]
        assert end.attributes["retries"] == 1 and end.error is None


async def test_retries_in_range_tasks_land_on_the_download_span(
    target: Target, spans: InMemorySpanExporter
) -> None:
    b = aiobucket.Bucket(target.name)
    data = bytes(range(256)) * 1024  # 256 KiB: four ranges of 64 KiB
    async with b.upload("k") as w:
        await w.write(data)
    # Two of the ranges after the first (which runs in the caller's task) get a 503 each.
    target.proxy.add_rule(target.error(), when=target.data_get, after=1, times=2)
    assert await b.download("k", concurrency=3, part_size=64 * KiB).read() == data
    await target.proxy.settled()
    statuses = [r.status for r in target.proxy.requests if target.data_get(r)]
    assert statuses.count(503) == 2
    span = only(spans, "aiobucket.download")
    assert [e["aiobucket.retry.reason"] for e in retry_events(span)] == ["503", "503"]
    assert span.attributes is not None and span.attributes["aiobucket.retries"] == 2
    assert retry_events(only(spans, "aiobucket.upload")) == []
