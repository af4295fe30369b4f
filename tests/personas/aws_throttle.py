"""AWS S3 throttling: a request-rate limit in front of any S3 server, answering 503 SlowDown above it.

S3 scales to "at least 3,500 PUT/COPY/POST/DELETE or 5,500 GET/HEAD requests per second
per partitioned prefix", and answers a client above what a prefix currently admits with
``503 Slow Down`` ("Please reduce your request rate"):

* https://docs.aws.amazon.com/AmazonS3/latest/userguide/optimizing-performance.html
* https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html (SlowDown, 503)

The persona admits ``rate`` requests a second with a small burst (a token bucket: S3's
partitions do not queue), forwards those to the real server behind the FaultProxy, and
answers every other request itself with S3's SlowDown error document. It is thread-safe:
the proxy calls it from its own thread.

    with FaultProxy(server.endpoint) as proxy:
        limit = throttle(proxy, rate=100)
        ...
        print(limit.admitted, limit.refused)
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from faultproxy import FaultProxy, Request, s3_error

__all__ = ["PERSONAS", "RateLimit", "Throttled", "throttle"]


@dataclass
class RateLimit:
    """Admit ``rate`` requests a second, ``burst`` at once at most; count what was refused."""

    rate: float
    burst: float = 0.0
    """Default: a twentieth of a second's worth (at least one request)."""
    admitted: int = 0
    refused: int = 0
    _tokens: float = field(default=0.0, init=False)
    _at: float = field(default_factory=time.monotonic, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        self.burst = self.burst or max(1.0, self.rate / 20)
        self._tokens = self.burst

    def refuse(self, _req: Request | None = None) -> bool:
        """True (answer SlowDown) when the request is over the rate; takes a token otherwise."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                self.admitted += 1
                return False
            self.refused += 1
            return True


def throttle(proxy: FaultProxy, rate: float, *, burst: float = 0.0, method: str | None = None) -> RateLimit:
    """Put a SlowDown rate limit on every request through ``proxy`` (or one method's)."""
    limit = RateLimit(rate, burst)
    proxy.add_rule(
        s3_error(503, "SlowDown", "Please reduce your request rate."),
        method=method,
        when=limit.refuse,
        times=None,
    )
    return limit


@dataclass(frozen=True)
class Throttled:
    """A ready-made persona: SlowDown above ``rate`` requests a second (``persona("aws_throttle:...")``)."""

    rate: float

    def install(self, proxy: FaultProxy) -> RateLimit:
        return throttle(proxy, self.rate)


PERSONAS = {"slowdown-above-100-rps": Throttled(100.0), "slowdown-above-20-rps": Throttled(20.0)}
