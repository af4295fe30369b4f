"""The per-operation shortcuts give the same answers as the slow paths they skip."""

from __future__ import annotations

import mimetypes
from types import SimpleNamespace

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from aiobucket import tracing
from aiobucket.keys import validate_key
from aiobucket.writer import _guess_type

KEYS = [
    "a.txt",
    "dir/photo-17.JPG",
    "dir/archive.tar.gz",
    "x.tgz",
    "a.b.c.json",
    ".bashrc",
    "dir/..hidden.txt",
    "dir/.txt",
    "noext",
    "dir.d/noext",
    "data:text/plain,hello",
    "http://example.com/a.png",
    "a:.txt",
    "weird..html",
    "trailing.",
    "dir/file.svgz",
    "ünï/cödé.pdf",
]


@pytest.mark.parametrize("key", KEYS)
def test_content_type_guess_matches_mimetypes(key: str) -> None:
    expected = mimetypes.guess_type(key)[0] or "application/octet-stream"
    assert _guess_type(key) == expected
    assert _guess_type(key) == expected  # cached answer too


@pytest.mark.parametrize(
    "key", ["a/./b", "./a", "a/..", "..", ".", "a/../b", "a/.b/..", "/a", "a\x7fb", "a\tb", "x" * 1025]
)
def test_ascii_fast_path_still_rejects(key: str) -> None:
    with pytest.raises(Exception, match=r"segment|start with|control|limit"):
        validate_key(key)


@pytest.mark.parametrize("key", ["a/.b", "a/..b/c", ".a", "..a", "a/b.", "x" * 1024, "a b"])
def test_ascii_fast_path_accepts(key: str) -> None:
    assert validate_key(key) == key


def _fake_api(provider: object) -> SimpleNamespace:
    return SimpleNamespace(
        ProxyTracer=trace.ProxyTracer,
        ProxyTracerProvider=trace.ProxyTracerProvider,
        NoOpTracerProvider=trace.NoOpTracerProvider,
        get_tracer_provider=lambda: provider,
    )


def test_no_otel_span_while_no_sdk_is_set_up(monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = trace.ProxyTracer("aiobucket")
    monkeypatch.setattr(tracing, "_otel_checked", True)
    monkeypatch.setattr(tracing, "_otel_tracer", proxy)
    monkeypatch.setattr(tracing, "_otel_api", _fake_api(trace.ProxyTracerProvider()))
    span = tracing.start_span("upload", "b", "k")
    assert span._otel is None  # the proxy would only have made a no-op span
    span.end()
    # Once an SDK provider is set (OTel allows it once), spans are made and it is not asked again.
    monkeypatch.setattr(tracing, "_otel_api", _fake_api(TracerProvider()))
    assert tracing._tracer() is proxy
    assert tracing._otel_api is None
