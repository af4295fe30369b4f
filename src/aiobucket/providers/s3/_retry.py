"""Retry decisions for the S3 data plane: the one place they are made.

Every request goes through :meth:`RetryPolicy.call`, which decides attempt by attempt:

* **Transient** failures are retried: a 5xx answer, a 429, a throttling code
  (SlowDown, Throttling, ...), S3's RequestTimeout, and connection errors (refused,
  reset, closed early, timed out). Anything else is final at once and goes back to
  the caller as the response it is.
* Every data-plane request is retried on those, writes included: an unconditional
  PUT, UploadPart, DeleteObject(s) or copy is idempotent (the same bytes land
  again). What a retry *means* for a conditional write or a completion is the
  caller's business: ``Response.maybe_applied`` says an earlier attempt may have
  reached the server, so a 412 or NoSuchUpload may be our own success, which the
  provider then checks against the stored object (see ``_provider.py``).
* At most ``max_attempts`` attempts, with full-jitter backoff between them
  (uniform in ``[0, min(cap, base * 2**n))``). The sleep is a plain
  ``asyncio.sleep``: a cancel ends it at once. Only the request on the wire is ever
  shielded (by the transport, for writes), never a backoff. Each retry is reported
  (``tracing.record_retry``: the operation's span and the retries metric) before it sleeps.
* Connection refused by a loopback endpoint is final at once: nothing listens
  there, and waiting will not change that. Elsewhere refusals are retried
  (a restarting server, a load balancer).
* A steady transient failure ends in a typed error whose message says how many
  attempts were made and over how long; no layer below retries on its own.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp

from ...errors import BackendError
from ...tracing import record_retry
from ._transport import Response

__all__ = ["BUSY", "THROTTLED", "RetryPolicy", "is_transient_status", "transport_failure"]

BUSY = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequests",
        "RequestThrottled",
        "ServiceUnavailable",
    }
)
"""Codes of "not now" answers (throttling, overload)."""
THROTTLED = BUSY | {
    "RequestTimeout",  # "your socket was not read from or written to in time": resend
    "InternalError",
}
"""Error codes worth a retry, whatever the status."""


CONFLICT = "ConditionalRequestConflict"
"""409 to a conditional PUT, completion or copy: "a conflicting operation occurred; retry"
(https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-requests.html). Nothing
was written, so a later 412 is not our own write unless an earlier attempt may have been."""


def is_transient_status(status: int, code: str) -> bool:
    return status >= 500 or status == 429 or code in THROTTLED or code == CONFLICT


def _loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def transport_failure(exc: BaseException) -> tuple[bool, bool] | None:
    """(retryable, maybe_sent) for a connection-level failure; None if it is not one."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        return False, False
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return True, False
    if isinstance(exc, aiohttp.ClientConnectorError):
        refused = isinstance(exc.os_error, ConnectionRefusedError)
        return not (refused and _loopback(exc.host)), False
    if isinstance(
        exc,
        aiohttp.ClientConnectionError
        | aiohttp.ClientPayloadError
        | aiohttp.ClientResponseError
        | asyncio.TimeoutError
        | ConnectionError
        | OSError,
    ):
        return True, True
    return None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5
    base: float = 0.1
    """Backoff scale in seconds: the n-th retry sleeps up to base * 2**(n-1)."""
    cap: float = 5.0
    """No single backoff sleeps longer than this."""

    def delay(self, retry: int) -> float:
        return random.uniform(0.0, min(self.cap, self.base * (1 << min(retry - 1, 30))))

    async def call(self, attempt: Callable[[], Awaitable[Response]], what: str) -> Response:
        """Run ``attempt`` until it gives a final answer or the attempts run out.

        Returns the last response: a success, a non-transient error, or a transient
        error after ``max_attempts`` (its ``attempts`` says how many were made).
        Raises BackendError for a connection failure that is final or steady.
        """
        started = time.monotonic()
        maybe_applied = False
        n = 0
        while True:
            n += 1
            try:
                resp = await attempt()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                kind = transport_failure(exc)
                if kind is None:
                    raise
                retryable, sent = kind
                if not retryable or n >= self.max_attempts:
                    raise self._gave_up(what, exc, n, started) from exc
                maybe_applied = maybe_applied or sent
                reason = type(exc).__name__
            else:
                resp.attempts = n
                resp.maybe_applied = maybe_applied
                if (
                    resp.status < 300
                    or n >= self.max_attempts
                    or not is_transient_status(resp.status, resp.code)
                ):
                    return resp
                # Any 5xx, even a 503, may come after the request was applied (a
                # gateway or load balancer in front of the server gave up waiting), so
                # a later 412 must be checked; a 429 is the server's own refusal.
                maybe_applied = maybe_applied or resp.status >= 500
                reason = str(resp.status)
            delay = self.delay(n)
            record_retry(None, what, "s3", error_type=reason, attempt=n + 1, delay=delay)
            await asyncio.sleep(delay)

    @staticmethod
    def _gave_up(what: str, exc: BaseException, attempts: int, started: float) -> BackendError:
        took = time.monotonic() - started
        tries = "1 attempt" if attempts == 1 else f"{attempts} attempts over {took:.1f} s"
        detail = str(exc) or type(exc).__name__
        return BackendError(f"{what}: cannot reach S3: {type(exc).__name__}: {detail} ({tries})")
