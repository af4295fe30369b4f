"""Retry decisions for the S3 and Azure request paths: the one place they are made.

Every request goes through :meth:`RetryPolicy.call`, which decides attempt by attempt.
What an error *code* means is the protocol's (its :class:`RetryRules`: ``S3_RULES`` in
``s3/_retry.py``, ``AZURE_RULES`` in ``azure/_errors.py``); everything else is here:

* **Transient** failures are retried: a 5xx answer (but 501), a 429, a code the rules
  name transient or busy (S3's SlowDown, RequestTimeout, ...), and connection errors
  (refused, reset, closed early, timed out). Anything else is final at once and goes
  back to the caller as the response it is.
* **Corruption in transit** (a code in ``rules.corrupted``: the server computed another
  digest of the body than the one we sent) is resent once at once, from the same
  buffered body; a second mismatch is final (IntegrityError above).
* Every data-plane request is retried on those, writes included: an unconditional
  PUT, UploadPart, DeleteObject(s) or copy is idempotent (the same bytes land
  again). What a retry *means* for a conditional write or a completion is the
  caller's business: ``Response.maybe_applied`` says an earlier attempt may have
  reached the server, so a 412 or NoSuchUpload may be our own success, which the
  provider then checks against the stored object (see ``s3/_provider.py``).
* **Bounds**: at most ``max_attempts`` attempts, with full-jitter backoff between them
  (uniform in ``[0, min(cap, base * 2**(n-1))]``, AWS's guidance), and no retry whose
  backoff would end more than ``deadline`` seconds after the API call started
  (``started``: the caller passes the time its call began, so that a region re-route
  or a fallback resend, which run the loop again, spend the same budget and never
  reset it; by default, the loop's own first attempt). The deadline decides whether
  a retry is made; it never cuts an attempt on the wire (the connect and read timeouts
  do) or a wait for a send slot (a cancel does).
* **Retry quota** (per provider, after botocore's standard mode): a retry costs
  tokens (5; 10 after a connection failure or timeout), an answer that needed no
  retry gives one back, a retried request that finally succeeds gives its last cost
  back. An empty quota means no more retries: a dead or overloaded endpoint fails
  fast instead of multiplying the load. With adaptive rate on, a throttle costs
  nothing: the send rate (below) is the brake there, and it cannot storm.
* **Adaptive rate** (``SendRate``, ``ratelimit.py``), optional: every attempt waits
  for a provider-wide send slot once the server has throttled us, and every answer
  is reported to it.
* Every sleep (backoff or send slot) is a plain ``asyncio.sleep``: a cancel ends it
  at once. Only the request on the wire is ever shielded (by the transport, for
  writes), never a wait. Each retry is reported (``tracing.record_retry``: the
  operation's span and the retries metric, labelled ``rules.label``) before it sleeps.
* Connection refused by a loopback endpoint is final at once: nothing listens
  there, and waiting will not change that. Elsewhere refusals are retried
  (a restarting server, a load balancer).
* A steady transient failure ends in a typed error whose message says how many
  attempts were made over how long, and why retrying stopped; no layer below
  retries on its own.
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
from .ratelimit import SendRate
from .transport import Response

__all__ = ["RetryPolicy", "RetryQuota", "RetryRules", "transport_failure"]


@dataclass(frozen=True, slots=True)
class RetryRules:
    """What one protocol's error codes mean to the retry loop; the status rules are HTTP's."""

    service: str
    """The service as an error message names it ("cannot reach S3")."""
    label: str
    """The provider label of the retries metric and span events ("s3")."""
    busy: frozenset[str] = frozenset()
    """Codes of "not now" answers (throttling, overload), whatever the status."""
    transient: frozenset[str] = frozenset()
    """Codes worth a retry, whatever the status (the busy ones are named here too)."""
    corrupted: frozenset[str] = frozenset()
    """The body the server received is not the one we hashed: resent once from our buffer."""

    def is_throttle(self, status: int, code: str) -> bool:
        return status == 429 or code in self.busy

    def is_transient(self, status: int, code: str) -> bool:
        # 501 NotImplemented is the store saying it does not do this: final, never retried.
        return (status >= 500 and status != 501) or status == 429 or code in self.transient


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


_MAX_ATTEMPTS = "the attempts ran out"


class RetryQuota:
    """Tokens a provider spends on retries (botocore's standard-mode quota, same numbers)."""

    __slots__ = ("capacity", "tokens")

    RETRY_COST = 5
    TIMEOUT_COST = 10
    """A connection failure or timeout: the costliest kind to retry blindly."""
    NO_RETRY_REFILL = 1

    def __init__(self, capacity: int = 500) -> None:
        self.capacity = capacity
        self.tokens = capacity

    def acquire(self, cost: int) -> bool:
        if cost > self.tokens:
            return False
        self.tokens -= cost
        return True

    def release(self, amount: int) -> None:
        self.tokens = min(self.capacity, self.tokens + amount)


class RetryPolicy:
    """One provider's retry decisions (its quota and send rate are shared by all its requests)."""

    __slots__ = ("base", "cap", "deadline", "max_attempts", "quota", "rate", "rules")

    def __init__(
        self,
        max_attempts: int = 10,
        base: float = 0.1,
        cap: float = 20.0,
        *,
        rules: RetryRules,
        deadline: float = 30.0,
        quota: RetryQuota | None = None,
        rate: SendRate | None = None,
    ) -> None:
        self.rules = rules
        """What the protocol's error codes mean (transient, busy, corrupted)."""
        self.max_attempts = max_attempts
        self.base = base
        """Backoff scale in seconds: the n-th retry sleeps up to base * 2**(n-1)."""
        self.cap = cap
        """No single backoff sleeps longer than this."""
        self.deadline = deadline
        """Seconds from the start of the API call past which no retry's backoff may end."""
        self.quota = quota if quota is not None else RetryQuota()
        self.rate = rate
        """The adaptive send rate, or None (adaptive retry off)."""

    def delay(self, retry: int) -> float:
        return random.uniform(0.0, min(self.cap, self.base * (1 << min(retry - 1, 30))))

    async def call(
        self, attempt: Callable[[], Awaitable[Response]], what: str, started: float | None = None
    ) -> Response:
        """Run ``attempt`` until it gives a final answer or retrying must stop.

        ``started`` (``time.monotonic()``): when the API call that this loop serves
        began, the origin of the retry deadline; None: now. The first attempt is always
        made.

        Returns the last response: a success, a non-transient error, or a transient
        error after the last attempt (its ``attempts`` says how many were made, its
        ``message`` why no more were). Raises BackendError for a connection failure
        that is final or steady.
        """
        if started is None:
            started = time.monotonic()
        maybe_applied = False
        resent_corrupted = False
        held = 0  # the quota the last retry took, given back if the request succeeds
        rate, quota, rules = self.rate, self.quota, self.rules
        last: Response | Exception
        n = 0
        while True:
            n += 1
            sent_at = await rate.acquire() if rate is not None else 0.0
            try:
                resp = await attempt()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                kind = transport_failure(exc)
                if kind is None:
                    raise
                if rate is not None:
                    rate.record(sent_at, throttled=False)
                retryable, sent = kind
                if not retryable:
                    raise self._gave_up(what, exc, n, started, "", rules.service) from exc
                maybe_applied = maybe_applied or sent
                reason, cost, last = type(exc).__name__, RetryQuota.TIMEOUT_COST, exc
            else:
                status, code = resp.status, resp.code
                failed = status >= 300  # a 2xx needs no classifying (the common case)
                throttled = failed and rules.is_throttle(status, code)
                if rate is not None:
                    rate.record(sent_at, throttled=throttled)
                resp.attempts = n
                resp.maybe_applied = maybe_applied
                if failed and code in rules.corrupted and not resent_corrupted:
                    resent_corrupted = True  # the server stored nothing: resend at once, once
                    record_retry(None, what, rules.label, error_type=code, attempt=n + 1, delay=0.0)
                    continue
                if not failed or not rules.is_transient(status, code):
                    quota.release(held or RetryQuota.NO_RETRY_REFILL)  # a healthy answer
                    return resp
                # Any 5xx, even a 503, may come after the request was applied (a
                # gateway or load balancer in front of the server gave up waiting), so
                # a later 412 must be checked; a 429 is the server's own refusal.
                maybe_applied = maybe_applied or status >= 500
                cost = 0 if throttled and rate is not None else RetryQuota.RETRY_COST
                reason, last = str(status), resp
            delay = self.delay(n)
            stop = self._stop(n, started, delay, cost)
            if stop:
                if isinstance(last, Response):
                    if stop is not _MAX_ATTEMPTS:  # error_for says how many attempts
                        last.message = f"{last.message or last.code or last.status}; {stop}"
                    return last
                raise self._gave_up(what, last, n, started, stop, rules.service) from last
            held = cost
            record_retry(None, what, rules.label, error_type=reason, attempt=n + 1, delay=delay)
            await asyncio.sleep(delay)

    def _stop(self, n: int, started: float, delay: float, cost: int) -> str:
        """Why there is no retry after attempt ``n`` ("" if there is one: its cost is taken)."""
        if n >= self.max_attempts:
            return _MAX_ATTEMPTS
        if time.monotonic() + delay - started > self.deadline:
            return f"no retry: the retry deadline of {self.deadline:g} s would pass"
        if cost and not self.quota.acquire(cost):
            return "no retry: this provider's retry quota is spent (too many failed requests lately)"
        return ""

    @staticmethod
    def _gave_up(
        what: str, exc: BaseException, attempts: int, started: float, why: str, service: str
    ) -> BackendError:
        took = time.monotonic() - started
        tries = "1 attempt" if attempts == 1 else f"{attempts} attempts over {took:.1f} s"
        detail = str(exc) or type(exc).__name__
        why = f"; {why}" if why and why is not _MAX_ATTEMPTS else ""
        return BackendError(f"{what}: cannot reach {service}: {type(exc).__name__}: {detail} ({tries}){why}")
