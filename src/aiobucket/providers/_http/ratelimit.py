"""Client-side send-rate adaptation on throttling: one per provider, shared by every request.

The anchor is botocore's adaptive retry mode (``botocore/retries/adaptive.py``): nothing
is paced until the first throttling answer; from then on every attempt waits for a send
slot, and the rate follows a CUBIC curve (``throttling.py``): cut on a throttle, then grown
back towards the rate at which the throttle came (W_max), slowly near it, faster past it.

Where this differs from botocore, and why (with 64 concurrent requests, botocore's
limiter cuts its rate once per throttled answer, so one burst of 503s drives it to its
floor of 0.5 req/s and it crawls back up for seconds):

* **One cut per round trip.** A throttle only cuts the rate if its request was sent
  after the last cut: answers to requests sent at the old rate say nothing new (TCP's
  one reduction per window).
* **The cut lands on what the server accepted.** The new rate is the rate of
  non-throttled answers over the last second (what the server demonstrably admits),
  bounded by ``[0.5 req/s, 0.9 * W_max]``, instead of ``0.7 * W_max`` (which stays the
  cut while less than a second of answers has been measured). From there the
  cubic curve grows back to W_max over ``K = cbrt((W_max - rate) / C)`` seconds.
* Send slots are handed out in order (waiters queue on a FIFO lock; the one at the
  head sleeps until its slot), so waiters never spin or race for tokens and a cut
  applies to the next slot; the sleep is a plain ``asyncio.sleep`` and the lock an
  ``asyncio.Lock``, so a cancel ends either wait at once.

Invariants: the rate never drops below ``MIN_RATE`` and never grows past twice the rate
actually measured (a client that sends little cannot bank a huge allowance), as in
botocore. Until the first throttle, ``acquire`` costs one clock read.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

__all__ = ["SendRate"]

MIN_RATE = 0.5
"""Requests per second: the floor (botocore's too)."""
SCALE = 0.4
"""CUBIC's C: how fast the rate grows away from W_max (botocore's value)."""
BETA = 0.7
"""CUBIC's multiplicative cut (botocore's): used while too few answers were measured."""
SOFT_CUT = 0.9
"""A throttle cuts to at most this share of W_max, even when the server accepted more."""
WINDOW = 1.0
"""Seconds of answers a measured rate is taken over."""


class _Meter:
    """Events per second over the last WINDOW seconds (the age of the meter, at first)."""

    __slots__ = ("_born", "_times")

    def __init__(self) -> None:
        self._times: deque[float] = deque()
        self._born: float | None = None

    def tick(self, now: float) -> None:
        times = self._times
        times.append(now)
        if self._born is None:
            self._born = now
        while times[0] < now - WINDOW:
            times.popleft()

    def young(self, now: float) -> bool:
        return self._born is None or now - self._born < WINDOW

    def rate(self, now: float) -> float:
        times = self._times
        while times and times[0] < now - WINDOW:
            times.popleft()
        if self._born is None:
            return 0.0
        return len(times) / max(min(WINDOW, now - self._born), 0.1)


class SendRate:
    """The provider's send rate. ``acquire()`` before each attempt, ``record()`` after it."""

    __slots__ = (
        "_accepted",
        "_cut_at",
        "_k",
        "_last",
        "_sent",
        "_turn",
        "_w_max",
        "clock",
        "enabled",
        "rate",
    )

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.enabled = False
        """False until the first throttle: nothing is paced before."""
        self.rate = float("inf")
        """Send slots per second once enabled."""
        self._last = float("-inf")
        self._turn = asyncio.Lock()
        self._cut_at = float("-inf")
        self._w_max = 0.0
        self._k = 0.0
        self._sent = _Meter()
        self._accepted = _Meter()

    async def acquire(self) -> float:
        """Wait for the next send slot (at once while not enabled); returns the send time.

        Waiters queue on a FIFO lock and the one at the head sleeps until its slot, which
        is spaced by the rate *now* (a cut applies to the very next slot, not after a
        backlog of reservations made at the old rate). One wake-up per slot.
        """
        if not self.enabled:
            now = self.clock()
            self.sending(now)
            return now
        async with self._turn:
            while True:
                now = self.clock()
                due = self._last + 1.0 / self.rate
                if now >= due:
                    break
                await asyncio.sleep(due - now)
            # Timer lateness is not lost (the slot counts from when it was due), but an
            # idle spell earns no burst.
            self._last = due if now - due < 1.0 / self.rate else now
            self.sending(now)
            return now

    def sending(self, now: float) -> None:
        """A request leaves now (``acquire`` says so; the send rate is measured here)."""
        self._sent.tick(now)

    def record(self, sent_at: float, *, throttled: bool) -> None:
        """One answer (or a connection failure, as not throttled) to a request sent at ``sent_at``.

        The send rate is measured when requests leave (``acquire``), so the first
        throttle of a burst already knows how fast the burst went.
        """
        now = self.clock()
        if not throttled:
            self._accepted.tick(now)
            if self.enabled:
                grown = SCALE * (now - self._cut_at - self._k) ** 3 + self._w_max
                self.rate = max(MIN_RATE, min(grown, 2.0 * self._sent.rate(now)))
            return
        if sent_at < self._cut_at:
            return  # sent before the last cut: already accounted for
        measured = self._sent.rate(now)
        w_max = min(measured, self.rate) if self.enabled else measured
        w_max = max(w_max, MIN_RATE)
        # Less than a window of answers says little about what the server admits:
        # then cut no deeper than botocore's 0.7 (the next fresh throttle cuts again).
        floor = BETA * w_max if self._sent.young(now) else MIN_RATE
        new = max(floor, MIN_RATE, min(self._accepted.rate(now), SOFT_CUT * w_max))
        self._w_max = w_max
        self._k = ((w_max - new) / SCALE) ** (1.0 / 3.0)
        self._cut_at = now
        self.rate = new
        self.enabled = True
