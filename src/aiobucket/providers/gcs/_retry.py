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
is retried whatever its kind.

The schedule is Google's (https://cloud.google.com/storage/docs/retry-strategy,
and python-storage's ``DEFAULT_RETRY``): a first delay of 1 s, doubling, each
delay capped at 60 s, drawn with full jitter, and a total deadline of 120 s
from the request's first attempt: a retry whose sleep would end past the
deadline is not made, and the last error is the answer. A ``Retry-After``
header sets the next delay (capped at ``cap``). ``attempts`` optionally bounds
the tries as well. The backoff sleep is never shielded, so a cancel ends it at
once: only an attempt that may be on the wire is ever waited for. Every backoff
reports its retry first (``tracing.record_retry``: the operation's span and the
retries metric).
"""

from __future__ import annotations

import asyncio
import enum
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp

from ...tracing import record_retry

__all__ = ["RETRYABLE_STATUS", "Kind", "RetryPolicy", "never_sent", "transient_error"]

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


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
    initial: float = 1.0
    """The first backoff's upper bound (seconds); each next one doubles."""
    cap: float = 60.0
    """The largest backoff (seconds)."""
    deadline: float = 120.0
    """Seconds from a request's first attempt after which it is not tried again."""
    attempts: int | None = None
    """Total tries of one request, including the first (None: only the deadline bounds them)."""
    bucket: str | None = None
    """The bucket's name in code, for the retries metric (None: the operation's)."""
    multiplier: float = 2.0

    @staticmethod
    def start() -> float:
        """The clock reading a request's budget counts from (pass it to :meth:`wait`)."""
        return time.monotonic()

    def remaining(self, started: float) -> float:
        """Seconds left of the budget of a request that started at ``started``."""
        return started + self.deadline - time.monotonic()

    def _more(self, attempt: int) -> bool:
        return self.attempts is None or attempt + 1 < self.attempts

    def retryable(
        self, kind: Kind, attempt: int, *, status: int | None = None, exc: BaseException | None = None
    ) -> bool:
        """Whether attempt number ``attempt`` (0-based) that failed this way may be tried again
        (the deadline is checked by :meth:`wait`)."""
        if not self._more(attempt):
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
        if not self._more(attempt):
            return False
        if exc is not None:
            return transient_error(exc)
        return status in RETRYABLE_STATUS

    def delay(self, attempt: int, headers: Mapping[str, str] | None = None) -> float:
        """Full jitter, uniform in [0, min(cap, initial * multiplier**attempt)]; a Retry-After wins."""
        after = _retry_after(headers) if headers is not None else None
        if after is not None:
            return min(after, self.cap)
        return random.uniform(0, min(self.cap, self.initial * (self.multiplier ** min(attempt, 64))))

    async def wait(
        self,
        attempt: int,
        started: float,
        headers: Mapping[str, str] | None = None,
        *,
        what: str,
        reason: str,
    ) -> bool:
        """Sleep before the retry of ``what`` after attempt number ``attempt`` (0-based) failed
        with ``reason`` (an HTTP status or exception class), and answer True; or answer False
        at once when that sleep would end past the deadline (the caller reports its error).
        Not shielded: a cancel ends it at once."""
        delay = self.delay(attempt, headers)
        if delay >= self.remaining(started):
            return False
        record_retry(self.bucket, what, "gcs", error_type=reason, attempt=attempt + 2, delay=delay)
        await asyncio.sleep(delay)
        return True


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
