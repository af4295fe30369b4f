"""What S3's error codes mean to the shared retry loop (``_http/retry.py``).

The loop, its bounds (attempts, deadline, quota, adaptive rate) and its status rules
(5xx but 501, 429) are protocol-neutral and live in ``_http/retry.py``; only S3's codes
are here, in ``S3_RULES``:

* **Busy** (throttling, overload: SlowDown, Throttling, ...): retried, and a throttle
  for the adaptive send rate and the retry quota.
* **Transient** besides: RequestTimeout ("your socket was not read from or written to
  in time": resend), InternalError, and 409 ConditionalRequestConflict (a concurrent
  conditional write; AWS says retry).
* **Corrupted** (BadDigest and the checksum mismatches: S3 computed another digest of
  the body than the one we sent): resent once at once, from the same buffered body.
"""

from __future__ import annotations

from .._http.retry import RetryRules

__all__ = ["BUSY", "CONFLICT", "CORRUPTED", "S3_RULES", "THROTTLED"]

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


CORRUPTED = frozenset({"BadDigest", "XAmzContentChecksumMismatch", "XAmzContentSHA256Mismatch"})
"""The body S3 received is not the one we hashed: resent once from our buffer."""


CONFLICT = "ConditionalRequestConflict"
"""409 to a conditional PUT, completion or copy: "a conflicting operation occurred; retry"
(https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-requests.html). Nothing
was written, so a later 412 is not our own write unless an earlier attempt may have been."""

S3_RULES = RetryRules("S3", "s3", busy=BUSY, transient=THROTTLED | {CONFLICT}, corrupted=CORRUPTED)
