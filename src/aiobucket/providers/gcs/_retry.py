"""The one place that decides whether a GCS request is tried again.

Every request names its :class:`Kind`; :meth:`RetryPolicy.retryable` answers
for a failed attempt, and :meth:`RetryPolicy.backoff` sleeps between attempts.

* ``READ`` (metadata, media, list, starting a resumable session, the session's
  offset query): safe to repeat; retried on 408, 429, 5xx and connection errors.
* ``OVERWRITE`` (an unconditional small upload, rewrite or delete): repeating it
  has the same effect as sending it once, as on S3, so it is retried like a
  read. A delete whose retry finds nothing (404) after an attempt that may have
  been applied has succeeded: the caller resolves that.
* ``CONDITIONAL`` (a write with ``ifGenerationMatch``): retried like a read; a
  412 (or 404) on a retry that follows an attempt which may have been applied
  is not taken as a lost race: the caller reads the object back and compares it
  with what it wrote (``_outcome.py``).
* ``ONCE`` (a resumable chunk PUT): never repeated blindly, because part of it
  may be committed. When :meth:`RetryPolicy.resumable` says so, the upload asks
  the session for its offset and resends the rest (``_upload.py``).

A request that certainly never reached the server (the connection was refused)
is retried whatever its kind. Attempts are bounded by ``attempts`` in total.
The backoff sleep is never shielded, so a cancel ends it at once: only an
attempt that may be on the wire is ever waited for. Every backoff reports its
retry first (``tracing.record_retry``: the operation's span and the retries metric).
"""

from __future__ import annotations

import asyncio
import enum
import random
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp

from ...tracing import record_retry

__all__ = ["RETRYABLE_STATUS", "Kind", "RetryPolicy", "never_sent", "transient_error"]

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 30.0


class Kind(enum.Enum):
    READ = "read"
    OVERWRITE = "overwrite"
    CONDITIONAL = "conditional"
    ONCE = "once"


def never_sent(exc: BaseException) -> bool:
    """The request cannot have reached the server (no connection was made)."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return True
    return isinstance(exc, aiohttp.ClientConnectorError) and not isinstance(
        exc, aiohttp.ClientConnectorCertificateError
    )


def transient_error(exc: BaseException) -> bool:
    """A network failure worth another attempt (dropped connection, cut body, timeout)."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return False
    transient = aiohttp.ClientConnectionError | aiohttp.ClientPayloadError | TimeoutError | OSError
    return isinstance(exc, transient)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 6
    """Total tries of one request, including the first."""
    base: float = 0.1
    cap: float = 8.0
    bucket: str | None = None
    """The bucket's name in code, for the retries metric (None: the operation's)."""

    def retryable(
        self, kind: Kind, attempt: int, *, status: int | None = None, exc: BaseException | None = None
    ) -> bool:
        """Whether attempt number ``attempt`` (0-based) that failed this way is tried again."""
        if attempt + 1 >= self.attempts:
            return False
        if exc is not None and never_sent(exc):
            return True
        if kind is Kind.ONCE:
            return False
        if exc is not None:
            return transient_error(exc)
        return status in RETRYABLE_STATUS

    def resumable(self, attempt: int, *, status: int | None = None, exc: BaseException | None = None) -> bool:
        """Whether a failed chunk PUT (kind ONCE) is resumed: ask the session, resend the rest."""
        if attempt + 1 >= self.attempts:
            return False
        if exc is not None:
            return transient_error(exc)
        return status in RETRYABLE_STATUS

    def delay(self, attempt: int, headers: Mapping[str, str] | None = None) -> float:
        """Full jitter, uniform in [0, min(cap, base * 2**attempt)]; a Retry-After wins."""
        after = _retry_after(headers) if headers is not None else None
        if after is not None:
            return after
        return random.uniform(0, min(self.cap, self.base * (2**attempt)))

    async def backoff(
        self, attempt: int, headers: Mapping[str, str] | None = None, *, what: str, reason: str
    ) -> None:
        """Report the retry of ``what`` after attempt number ``attempt`` (0-based) failed with
        ``reason`` (an HTTP status or exception class), then sleep before the next attempt.
        Not shielded: a cancel ends it at once."""
        delay = self.delay(attempt, headers)
        record_retry(self.bucket, what, "gcs", error_type=reason, attempt=attempt + 2, delay=delay)
        await asyncio.sleep(delay)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, min(float(value), MAX_RETRY_AFTER))
    except ValueError:
        return None
