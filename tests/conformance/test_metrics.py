"""OpenTelemetry metrics on every backend, read back with the SDK's InMemoryMetricReader.

Every test uses a fresh bucket, and the bucket's name is an attribute of every data
point, so each test reads only its own points from the process-wide meter provider.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import aiobucket
from aiobucket import _metrics, tracing
from conformance.conftest import get, put

pytestmark = pytest.mark.anyio

_READER: InMemoryMetricReader | None = None
BACKEND_NAMES = {
    "moto": "s3",
    "memory": "memory",
    "local": "local",
    "s3": "s3",
    "rgw": "s3",
    "gcs": "gcs",
    "aws-region": "s3",
    "azure": "azure",
    "aws-kms": "s3",  # moto behind the SSE-KMS persona
    "ministack": "s3",
    "b2": "s3",  # SeaweedFS behind the B2 persona
    "garage": "s3",  # moto behind the persona of a store that ignores conditional headers
}


@pytest.fixture
def reader() -> Iterator[InMemoryMetricReader]:
    """The process's one SDK meter provider (OTel allows setting it once), made on first use."""
    global _READER
    if _READER is None:
        _READER = InMemoryMetricReader()
        metrics.set_meter_provider(MeterProvider(metric_readers=[_READER]))
    _metrics.reset()
    yield _READER
    _metrics.reset()


def points(reader: InMemoryMetricReader, name: str, bucket: str) -> list[Any]:
    data = reader.get_metrics_data()
    found = []
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name == name:
                    found += [p for p in m.data.data_points if p.attributes.get("aiobucket.bucket") == bucket]
    return found


def unit_of(reader: InMemoryMetricReader, name: str) -> str:
    data = reader.get_metrics_data()
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            assert sm.scope.name == "aiobucket"
            for m in sm.metrics:
                if m.name == name:
                    return str(m.unit)
    raise AssertionError(f"no metric {name}")


async def test_durations_bytes_and_errors_per_operation(backend, reader):
    b = backend.bucket()
    data = b"m" * 100_000
    await put(b, "a", data)
    assert await get(b, "a") == data
    with pytest.raises(aiobucket.ObjectNotFound):
        await get(b, "missing")
    stored = await b.attrs("a")
    with pytest.raises(aiobucket.NotModified):
        await get(b, "a", if_none_match=stored.etag)
    assert [e async for e, _ in b.remove_many(["a", "gone"])][1] is not None

    backend_name = BACKEND_NAMES[backend.name]
    durations = points(reader, "aiobucket.client.operation.duration", b.name)
    by_op: dict[tuple[str, str | None], int] = {}
    for p in durations:
        assert p.attributes["aiobucket.backend"] == backend_name
        key = (p.attributes["aiobucket.operation"], p.attributes.get("error.type"))
        by_op[key] = by_op.get(key, 0) + p.count
        assert p.sum >= 0
    assert by_op[("upload", None)] == 1
    assert by_op[("download", None)] == 2  # the full read and the not-modified one
    assert by_op[("download", "ObjectNotFound")] == 1
    assert by_op[("attrs", None)] == 1
    assert by_op[("remove_many", None)] == 1
    [nm] = [p for p in durations if p.attributes.get("aiobucket.not_modified")]
    assert nm.attributes["aiobucket.operation"] == "download" and "error.type" not in nm.attributes
    assert unit_of(reader, "aiobucket.client.operation.duration") == "s"

    io_points = points(reader, "aiobucket.client.io", b.name)
    io = {p.attributes["network.io.direction"]: p.value for p in io_points}
    assert io == {"transmit": len(data), "receive": len(data)}
    assert unit_of(reader, "aiobucket.client.io") == "By"

    errors = points(reader, "aiobucket.client.operation.errors", b.name)
    assert [(p.attributes["error.type"], p.attributes["aiobucket.operation"], p.value) for p in errors] == [
        ("ObjectNotFound", "download", 1)
    ]


async def test_parallel_downloads_count_their_bytes(backend, reader, tmp_path):
    b = backend.bucket()
    data = bytes(range(256)) * 1000
    await put(b, "big", data)
    assert await b.download("big", concurrency=3, part_size=50_000).read() == data
    await b.download_to("big", tmp_path / "f", concurrency=3, part_size=50_000)
    received = {
        p.attributes["aiobucket.operation"]: p.value
        for p in points(reader, "aiobucket.client.io", b.name)
        if p.attributes["network.io.direction"] == "receive"
    }
    assert received == {"download": len(data), "download_to": len(data)}


async def test_record_retry_is_the_providers_hook(backend, reader):
    b = backend.bucket()
    tracing.record_retry(b.name, "download", BACKEND_NAMES[backend.name], error_type="503")
    tracing.record_retry(b.name, "download", BACKEND_NAMES[backend.name], error_type="503")
    [p] = points(reader, "aiobucket.client.retries", b.name)
    assert p.value == 2
    assert dict(p.attributes) == {
        "aiobucket.bucket": b.name,
        "aiobucket.operation": "download",
        "aiobucket.backend": BACKEND_NAMES[backend.name],
        "error.type": "503",
    }
