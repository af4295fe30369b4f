"""OpenTelemetry metrics, recorded once per operation where its span ends (tracing.py).

Instruments follow OTel's naming conventions (dotted lower-case names, UCUM units,
no ``_total`` suffix), on the meter ``aiobucket``, created on first use and only
when ``opentelemetry-api`` is installed (else every call here is a cheap no-op):

=====================================  =========  =========  =====================================
name                                   kind       unit       what
=====================================  =========  =========  =====================================
aiobucket.client.operation.duration    histogram  s          every operation, start to real end
aiobucket.client.operation.errors      counter    {error}    operations that failed (by error.type)
aiobucket.client.io                    counter    By         payload bytes moved, by
                                                             ``network.io.direction`` (transmit,
                                                             receive)
aiobucket.client.retries               counter    {retry}    retries a provider made (record_retry)
=====================================  =========  =========  =====================================

Attributes on all of them: ``aiobucket.bucket`` (the name in code), ``aiobucket.operation``
(upload, download, remove_many, ...), ``aiobucket.backend`` (memory, local, s3, gcs, or the
URL scheme of a registered provider); ``error.type`` (the exception's class name) on a
failure. A conditional download answered "not modified" is a success with
``aiobucket.not_modified`` = true, not an error, as a 304 is in HTTP's conventions.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from . import config
from .errors import NotModified

__all__ = ["backend_of", "record_operation", "record_retry"]

# HTTP client duration buckets from OTel's semantic conventions, in seconds.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
_BACKENDS = {"file": "local", "gs": "gcs", "memory": "memory", "s3": "s3", "az": "azure"}
# Which way an operation's payload moves; the span's "bytes" attribute counts it.
_DIRECTION = {"download": "receive", "download_to": "receive", "upload": "transmit"}


class _Instruments:
    def __init__(self, meter: Any) -> None:
        self.duration = meter.create_histogram(
            "aiobucket.client.operation.duration",
            unit="s",
            description="Duration of aiobucket operations, from start to their real end",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.errors = meter.create_counter(
            "aiobucket.client.operation.errors", unit="{error}", description="Failed aiobucket operations"
        )
        self.io = meter.create_counter(
            "aiobucket.client.io", unit="By", description="Object payload bytes sent and received"
        )
        self.retries = meter.create_counter(
            "aiobucket.client.retries", unit="{retry}", description="Requests a provider retried"
        )


_instruments: _Instruments | None = None
_checked = False
_backends: dict[tuple[str, int], str] = {}
_otel_global: Any = None
"""OTel's module holding the global meter provider, while none was seen set (else None)."""
_env_provider = False
_UNKNOWN = object()


def _get() -> _Instruments | None:
    """The instruments; None without opentelemetry-api, or while no meter provider is set."""
    global _instruments, _checked, _otel_global, _env_provider
    if (
        _otel_global is not None
        and not _env_provider
        and getattr(_otel_global, "_METER_PROVIDER", _UNKNOWN) is None
    ):
        return None  # _idle's first answer, without its call (on every operation while OTel is idle)
    if not _checked:
        _checked = True
        try:
            from opentelemetry import metrics
        except ImportError:
            return None
        from . import __version__

        _instruments = _Instruments(metrics.get_meter("aiobucket", __version__))
        _otel_global = getattr(metrics, "_internal", None)
        _env_provider = "OTEL_PYTHON_METER_PROVIDER" in os.environ
    if _otel_global is not None and _idle():
        return None
    return _instruments


def _idle() -> bool:
    """No meter provider is set yet: the instruments are OTel's proxies, which drop every
    measurement, so none is built (attributes, backend lookup: a noticeable share of a small
    read). As in ``tracing._otel_idle``, OTel's global is read directly (guarded: if it is
    gone, the instruments are used as before), because ``get_meter_provider()`` looks its
    environment variable up on every call while none is set."""
    global _otel_global
    if not _env_provider and getattr(_otel_global, "_METER_PROVIDER", _UNKNOWN) is None:
        return True
    _otel_global = None  # OTel lets the global provider be set only once: no need to look again
    return False


def reset() -> None:
    """Forget the instruments, so the next operation looks up the meter again (for tests)."""
    global _instruments, _checked, _otel_global
    _instruments, _checked, _otel_global = None, False, None
    _backends.clear()


def backend_of(bucket: str) -> str:
    """The backend bucket ``bucket`` is configured on now: memory, local, s3, gcs or a scheme."""
    cache_key = (bucket, config.generation())
    found = _backends.get(cache_key)
    if found is None:
        try:
            scheme = config.resolve(bucket).scheme
        except Exception:  # a misconfigured bucket: its operation fails on its own
            scheme = "unknown"
        found = _backends[cache_key] = _BACKENDS.get(scheme, scheme)
        if len(_backends) > 1024:  # generations move on; keep only the fresh entry
            _backends.clear()
            _backends[cache_key] = found
    return found


def record_operation(
    operation: str,
    bucket: str,
    attributes: Mapping[str, object],
    error: BaseException | None,
    duration: float,
) -> None:
    inst = _get()
    if inst is None:
        return
    attrs: dict[str, str | bool] = {
        "aiobucket.bucket": bucket,
        "aiobucket.operation": operation,
        "aiobucket.backend": backend_of(bucket),
    }
    if isinstance(error, NotModified):
        attrs["aiobucket.not_modified"] = True
        error = None
    if error is not None:
        attrs["error.type"] = type(error).__name__
        inst.errors.add(1, attrs)
    inst.duration.record(duration, attrs)
    direction = _DIRECTION.get(operation)
    if direction is not None:
        moved = attributes.get("bytes")
        if moved is None and error is None and direction == "transmit":
            moved = attributes.get("size")  # the writer reports what it committed
        if isinstance(moved, int) and moved > 0:
            inst.io.add(moved, {**attrs, "network.io.direction": direction})


def record_retry(bucket: str | None, operation: str, backend: str, *, error_type: str | None = None) -> None:
    inst = _get()
    if inst is None:
        return
    attrs = {"aiobucket.operation": operation, "aiobucket.backend": backend}
    if bucket is not None:  # unknown outside an operation when the provider does not know it
        attrs["aiobucket.bucket"] = bucket
    if error_type is not None:
        attrs["error.type"] = error_type
    inst.retries.add(1, attrs)
