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


def test_a_tracer_that_is_not_otels_proxy_is_used_while_the_global_provider_is_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The idle shortcut holds only for OTel's proxy tracer: a real SDK tracer given directly
    # (as tests and embedders do) makes spans even while OTel's global provider is unset.
    api = _fake_api(trace.ProxyTracerProvider())
    api._TRACER_PROVIDER = None  # type: ignore[attr-defined]
    sdk = TracerProvider().get_tracer("aiobucket")
    monkeypatch.setattr(tracing, "_otel_checked", True)
    monkeypatch.setattr(tracing, "_otel_env_provider", False)
    monkeypatch.setattr(tracing, "_otel_api", api)
    monkeypatch.setattr(tracing, "_otel_tracer", trace.ProxyTracer("aiobucket"))
    assert tracing._tracer() is None
    monkeypatch.setattr(tracing, "_otel_tracer", sdk)
    assert tracing._tracer() is sdk


def test_otel_idle_through_the_public_call_when_the_environment_names_a_provider(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # With OTEL_PYTHON_TRACER_PROVIDER set (seen once, with OTel), OTel's global is not read
    # directly: get_tracer_provider() answers (it would load the named provider).
    api = _fake_api(trace.ProxyTracerProvider())
    api._TRACER_PROVIDER = None  # type: ignore[attr-defined]
    monkeypatch.setattr(tracing, "_otel_env_provider", True)
    monkeypatch.setattr(tracing, "_otel_api", api)
    assert tracing._otel_idle(trace.ProxyTracer("aiobucket")) is True
    api.get_tracer_provider = lambda: TracerProvider()
    assert tracing._otel_idle(trace.ProxyTracer("aiobucket")) is False
    assert tracing._otel_api is None


def test_metrics_are_built_only_once_a_meter_provider_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    from aiobucket import _metrics

    instruments = object()
    module = SimpleNamespace(_METER_PROVIDER=None)  # OTel's global, as opentelemetry.metrics._internal
    monkeypatch.setattr(_metrics, "_checked", True)
    monkeypatch.setattr(_metrics, "_instruments", instruments)
    monkeypatch.setattr(_metrics, "_env_provider", False)
    monkeypatch.setattr(_metrics, "_otel_global", module)
    assert _metrics._get() is None  # OTel's proxy instruments would drop the measurements
    module._METER_PROVIDER = object()
    assert _metrics._get() is instruments
    assert _metrics._otel_global is None  # set once: not looked at again
    monkeypatch.setattr(_metrics, "_otel_global", SimpleNamespace())  # OTel without the global
    assert _metrics._get() is instruments


@pytest.mark.anyio
async def test_a_fresh_token_is_one_cached_header_until_revoked() -> None:
    from aiobucket.providers.gcs._gcloud import TokenSource

    fetches = []

    async def fetch(limit: float) -> tuple[str, float]:
        fetches.append(limit)
        return f"t{len(fetches)}", 3600.0

    source = TokenSource(fetch, "test")
    assert source.cached() is None  # nothing fetched yet: the request awaits the fetch
    assert await source.get(5.0) == "t1"
    header = source.cached()
    assert header == {"Authorization": "Bearer t1"}
    assert source.cached() is header and len(fetches) == 1  # no string built, nothing fetched
    source.invalidate("t1")  # a 401
    assert source.cached() is None
    assert await source.get(5.0) == "t2"
    assert source.cached() == {"Authorization": "Bearer t2"}


@pytest.mark.parametrize(
    "key", ["a", "dir/sub/file.txt", "a b", "ü/é", "a%2Fb", "x?y#z", "~tilde_-.", "a+b=c&d", "", "//"]
)
def test_gcs_key_quoting_matches_quote(key: str) -> None:
    from urllib.parse import quote

    from aiobucket.providers.gcs._http import quote_key

    assert quote_key(key) == quote(key, safe="")


@pytest.mark.anyio
async def test_reraise_maps_as_the_async_with_block_does() -> None:
    import asyncio

    from aiobucket import _runtime
    from aiobucket.errors import BackendError, ObjectNotFound

    seen: list[BaseException] = []

    async def on_error(err: BaseException) -> None:
        seen.append(err)

    for exc in (ObjectNotFound("gone"), ValueError("odd"), asyncio.CancelledError()):
        with pytest.raises(BaseException) as via_with:
            async with _runtime.mapped_errors("b", "k", on_error):
                raise exc
        with pytest.raises(BaseException) as via_reraise:
            try:
                raise exc
            except BaseException as caught:
                await _runtime.mapped_errors("b", "k", on_error).reraise(caught)
        assert type(via_with.value) is type(via_reraise.value)
        assert str(via_with.value) == str(via_reraise.value)
        assert via_with.value.__cause__ is via_reraise.value.__cause__  # exc, or None: raised as itself
        assert type(seen[-1]) is type(seen[-2])  # on_error saw the same mapped error
    assert isinstance(seen[2], BackendError) and seen[2].__cause__ is not None  # a ValueError, wrapped
    assert [type(e) for e in seen[4:]] == [asyncio.CancelledError] * 2  # control flow, as itself


def test_the_remembered_provider_follows_the_loop_and_aclose() -> None:
    """provider_for remembers each loop's providers: the same provider on one loop, a new
    one after aclose() and on another loop, and nothing kept once a loop is gone."""
    import asyncio
    import gc
    import weakref

    import aiobucket
    from aiobucket import Bucket

    aiobucket.configure({"remembered": "memory://"})
    handle = Bucket("remembered")._handle
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def on_one_loop() -> object:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        first, _ = handle.provider()
        assert handle.provider()[0] is first
        await aiobucket.aclose()
        again, _ = handle.provider()
        assert again is not first  # aclose() closed the first one: never handed out again
        return again

    one, other = asyncio.run(on_one_loop()), asyncio.run(on_one_loop())
    assert one is not other
    del one, other
    gc.collect()  # both loops are gone: asyncio.run closed their providers
    assert [r() for r in loops] == [None, None]
