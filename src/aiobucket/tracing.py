"""Tracing of every operation: OpenTelemetry spans and metrics when installed, plus plain listeners.

A span ends when the operation really ends: a download when its reader is
closed or exhausted, a list when its iterator stops. OpenTelemetry is imported
on the first span, never by ``import aiobucket``.

Metrics are recorded in one place, :meth:`Span.end`, so every operation is
covered exactly once (instrument names and attributes: see ``_metrics.py``).
Retries happen below the span, inside a provider: providers report each one
with :func:`record_retry`, which counts it in the retries metric and puts it on
the span of the operation it belongs to: the innermost live span of that bucket
started in the calling task (a context variable; tasks an operation starts
inherit it). Two operations on one bucket interleaved in one task share it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal

from . import _metrics
from .errors import NotModified

__all__ = [
    "Span",
    "TraceEvent",
    "add_listener",
    "annotate",
    "record_retry",
    "remove_listener",
    "start_span",
]

Phase = Literal["start", "end"]


@dataclass(frozen=True, slots=True)
class TraceEvent:
    operation: str
    """upload, download, download_to, list, list_versions, remove, remove_many, attrs, exists,
    copy, signed_url ..."""
    bucket: str
    key: str | None
    phase: Phase
    attributes: Mapping[str, object] = field(default_factory=dict)
    error: BaseException | None = None
    duration: float | None = None
    """Seconds from start to end (end events only)."""


Listener = Callable[[TraceEvent], None]
_listeners: list[Listener] = []
_otel_tracer: Any = None
_otel_checked = False
_otel_api: Any = None  # the opentelemetry.trace module, once imported
_current: ContextVar[Span | None] = ContextVar("aiobucket_span", default=None)
"""The span most recently started in this context; its ``_outer`` links lead to the
spans that were live when it started."""


def add_listener(listener: Listener) -> Callable[[], None]:
    """Call ``listener`` with every start and end event; returns a function that removes it."""
    _listeners.append(listener)
    return lambda: remove_listener(listener)


def remove_listener(listener: Listener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def _tracer() -> Any:
    global _otel_tracer, _otel_checked, _otel_api, _otel_env_provider
    api = _otel_api
    if (
        api is not None
        and not _otel_env_provider
        and getattr(api, "_TRACER_PROVIDER", _UNKNOWN) is None
        and isinstance(_otel_tracer, api.ProxyTracer)
    ):
        return None  # _otel_idle's first answer, without its call (on every span while OTel is idle)
    if not _otel_checked:
        _otel_checked = True
        try:
            from opentelemetry import trace
        except ImportError:
            _otel_tracer = None
        else:
            _otel_api = trace
            _otel_env_provider = "OTEL_PYTHON_TRACER_PROVIDER" in os.environ
            _otel_tracer = trace.get_tracer("aiobucket")
    if _otel_tracer is None or _otel_idle(_otel_tracer):
        return None
    return _otel_tracer


_otel_env_provider = False
_UNKNOWN = object()


def _otel_idle(tracer: Any) -> bool:
    """True while ``tracer`` is OTel's proxy and no SDK tracer provider is set up yet:
    it would hand out do-nothing spans, so the span makes none (a noticeable cost).

    While none is set, ``get_tracer_provider()`` looks its environment variable up on
    every call (an exception inside ``os.environ``), which costs more than the rest of
    a span: OTel's global is read directly then (``_TRACER_PROVIDER``, guarded: if it
    is gone, the public call answers), and the variable was looked up once, with OTel."""
    global _otel_api
    api = _otel_api
    if api is None:
        return False
    if isinstance(tracer, api.ProxyTracer):
        if not _otel_env_provider and getattr(api, "_TRACER_PROVIDER", _UNKNOWN) is None:
            return True
        if isinstance(api.get_tracer_provider(), (api.ProxyTracerProvider, api.NoOpTracerProvider)):
            return True
    _otel_api = None  # OTel lets the global provider be set only once: no need to look again
    return False


def _emit(event: TraceEvent) -> None:
    for listener in _listeners:
        try:
            listener(event)
        except Exception:  # a broken listener must not break storage operations
            import logging

            logging.getLogger("aiobucket").exception("trace listener failed")


class Span:
    """One operation in flight. ``end()`` is idempotent; only the first call counts."""

    __slots__ = ("_otel", "_outer", "_start", "attributes", "bucket", "ended", "key", "operation")
    _outer: Span | None

    def __init__(self, operation: str, bucket: str, key: str | None, attributes: dict[str, object]) -> None:
        self.operation = operation
        self.bucket = bucket
        self.key = key
        self.attributes = attributes
        self.ended = False
        self._start = time.perf_counter()
        outer = _current.get()
        while outer is not None and outer.ended:  # keep only live spans in the chain
            outer = outer._outer
        self._outer = outer
        _current.set(self)
        tracer = _tracer()
        self._otel: Any = None
        if tracer is not None:
            attrs = {"aiobucket.bucket": bucket, **_otel_attrs(attributes)}
            if key is not None:
                attrs["aiobucket.key"] = key
            self._otel = tracer.start_span(f"aiobucket.{operation}", attributes=attrs)
        if _listeners:
            _emit(TraceEvent(operation, bucket, key, "start", dict(attributes)))

    def set(self, **attributes: object) -> None:
        self.attributes.update(attributes)

    def add(self, name: str, amount: int) -> None:
        """Add to a counter attribute such as bytes or items."""
        current = self.attributes.get(name, 0)
        self.attributes[name] = (current if isinstance(current, int) else 0) + amount

    def retried(self, request: str, attempt: int | None, reason: str | None, delay: float | None) -> None:
        """One retry below this operation: counted in ``retries``, and an OTel span event."""
        self.add("retries", 1)
        if self._otel is not None:
            event = {"request": request, "attempt": attempt, "reason": reason, "delay_s": delay}
            attrs = {f"aiobucket.retry.{k}": v for k, v in event.items() if v is not None}
            self._otel.add_event("aiobucket.retry", attributes=attrs)

    def end(self, error: BaseException | None = None) -> None:
        if self.ended:
            return
        self.ended = True
        duration = time.perf_counter() - self._start
        if self._otel is not None:
            # A non-recording span (opentelemetry-api without an SDK, or sampled out)
            # drops attributes anyway: skip building them.
            if self._otel.is_recording():
                from opentelemetry.trace import Status, StatusCode

                self._otel.set_attributes(_otel_attrs(self.attributes))
                self._otel.set_attribute("aiobucket.backend", _metrics.backend_of(self.bucket))
                if isinstance(error, NotModified):  # the caller's copy is current: an answer, not a failure
                    self._otel.set_attribute("aiobucket.not_modified", True)
                elif error is not None:
                    self._otel.set_attribute("error.type", type(error).__name__)
                    self._otel.record_exception(error)
                    self._otel.set_status(Status(StatusCode.ERROR, str(error)))
            self._otel.end()
        _metrics.record_operation(self.operation, self.bucket, self.attributes, error, duration)
        if _listeners:
            _emit(
                TraceEvent(
                    self.operation, self.bucket, self.key, "end", dict(self.attributes), error, duration
                )
            )


def _otel_attrs(attributes: Mapping[str, object]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in attributes.items():
        if v is None:
            continue
        out[f"aiobucket.{k}"] = v if isinstance(v, str | bool | int | float) else str(v)
    return out


def start_span(operation: str, bucket: str, key: str | None = None, **attributes: object) -> Span:
    """A span with the attributes that are not None (the keyword dict is the caller's own copy)."""
    if None in attributes.values():
        attributes = {k: v for k, v in attributes.items() if v is not None}
    return Span(operation, bucket, key, attributes)


def _live_span(bucket: str | None) -> Span | None:
    """The innermost live span of ``bucket`` (any bucket: None) started in this context."""
    span = _current.get()
    while span is not None and (span.ended or (bucket is not None and span.bucket != bucket)):
        span = span._outer
    return span


def annotate(**attributes: object) -> None:
    """Set attributes (None values skipped) on the operation in progress in the calling task,
    if any: a provider's diagnostics, such as the cloud's request id of a failed request."""
    span = _live_span(None)
    if span is not None:
        span.set(**{k: v for k, v in attributes.items() if v is not None})


def record_retry(
    bucket: str | None,
    operation: str,
    backend: str,
    *,
    error_type: str | None = None,
    attempt: int | None = None,
    delay: float | None = None,
) -> None:
    """Report one retry a provider is about to make; providers call this before each backoff.

    ``bucket`` is the bucket's name in code (the ``name`` a provider factory is given),
    or None where the provider does not know it: the operation in progress says.
    ``operation`` is the request being retried (such as ``download`` or ``PutObject``),
    ``backend`` the provider's backend (``s3``, ``gcs``), ``error_type`` what made the
    attempt fail (an HTTP status or an exception class name), ``attempt`` the number of
    the attempt about to be made (2 for the first retry), ``delay`` the backoff in seconds.

    The retry is put on the span of the operation in progress in the calling task (its
    ``retries`` attribute and an ``aiobucket.retry`` OTel event with the request, attempt,
    reason and delay), and counted in the ``aiobucket.client.retries`` metric, labelled
    with that operation (else ``operation``) and bucket. The metric needs opentelemetry-api.
    """
    span = _live_span(bucket)
    if span is not None:
        span.retried(operation, attempt, error_type, delay)
        bucket, operation = span.bucket, span.operation
        # The bucket's configuration names its backend: one rule for every provider (Azure
        # shares the S3 request path and its retry loop, which says "s3").
        backend = _metrics.backend_of(bucket)
    _metrics.record_retry(bucket, operation, backend, error_type=error_type)
