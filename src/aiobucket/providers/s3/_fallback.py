"""Fallbacks where a store refuses a request loudly: learnt once per provider, resent once.

Invariants:

* Only a refusal that stored nothing leads to a resend: a 400 or 501 that names one
  of our optional header groups (the ``x-amz-checksum-*`` family), or a 403
  SecondLevelDomainForbidden (the store refuses path-style requests). A checksum
  *mismatch* (BadDigest, XAmzContentChecksumMismatch, InvalidDigest) is never one:
  that is corruption and stays an IntegrityError.
* What is learnt updates the provider's own copy of its store profile
  (``S3Provider.store``) and its capabilities, never the shared table, and is logged
  once per provider. Later requests are built from the updated record.
* Never learnt from the absence of errors: that a store honours a precondition.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from .._http.transport import Response

if TYPE_CHECKING:
    from ._profiles import StoreProfile
    from ._provider import S3Provider

__all__ = ["FALLBACK_STATUSES", "after_resend", "fall_back", "learn"]

log = logging.getLogger("aiobucket.s3")

FALLBACK_STATUSES = frozenset({400, 403, 501})
"""Statuses whose answers may name something a store does not do (checked cheaply first)."""

MISMATCH = frozenset({"BadDigest", "XAmzContentChecksumMismatch", "InvalidDigest", "InvalidChecksum"})
"""Codes that mean the bytes and their checksum disagree: corruption, never a fallback."""
_UNSUPPORTED = frozenset({"InvalidArgument", "InvalidRequest", "NotImplemented", "UnsupportedHeader"})


def learn(p: S3Provider, why: str, **changes: object) -> None:
    """Update the provider's copy of its store profile (and capabilities); log it once."""
    from ._provider import capabilities_of

    new: StoreProfile = replace(p.store, **changes)  # type: ignore[arg-type]
    if new == p.store:
        return
    p.store = new
    p.capabilities = capabilities_of(new)
    log.warning(
        "S3 bucket %r (provider=%s): %s; from now on %s for this provider",
        p.bucket,
        new.name,
        why,
        ", ".join(f"{k}={v}" for k, v in changes.items()),
    )


def _in_group(header: str) -> bool:
    """The optional checksum header group: x-amz-checksum-* and x-amz-sdk-checksum-algorithm."""
    return header.startswith("x-amz-checksum") or header == "x-amz-sdk-checksum-algorithm"


def _names_checksum_header(resp: Response) -> bool:
    if resp.code in MISMATCH or resp.status not in (400, 501):
        return False
    text = f"{resp.code} {resp.message}".lower()
    return "checksum" in text and ("x-amz-" in text or resp.code in _UNSUPPORTED)


def _bodyless_mode_refusal(resp: Response, headers: dict[str, str]) -> bool:
    return (
        resp.status == 400
        and not resp.code
        and "x-amz-checksum-mode" in headers
        and "x-amz-bucket-region" not in resp.headers  # a region redirect, not ours
    )


def after_resend(p: S3Provider, first: Response, headers: dict[str, str], second: Response) -> None:
    """Learn from a tentative resend: a HEAD that succeeded without x-amz-checksum-mode."""
    if _bodyless_mode_refusal(first, headers) and second.status != 400:
        learn(p, "the store answered 400 to x-amz-checksum-mode on HEAD", checksum_mode=False)


def fall_back(
    p: S3Provider, resp: Response, headers: dict[str, str], body: memoryview | bytes | None
) -> dict[str, str] | None:
    """The headers to resend with after a refusal a store is known to make; None: no resend."""
    if resp.status == 403 and resp.code == "SecondLevelDomainForbidden" and p.store.addressing == "path":
        # Alibaba OSS refuses path-style requests (its error-code reference).
        learn(p, "the store refuses path-style requests (SecondLevelDomainForbidden)", addressing="virtual")
        p._ep = None  # rebuilt with the bucket in the host
        return headers
    if _bodyless_mode_refusal(resp, headers):
        # A HEAD answer has no body to name the header (B2 answered 400 to
        # x-amz-checksum-mode: github.com/vatesfr/xen-orchestra/issues/8358): resend once
        # without it; a read changes nothing. Learnt only if that answer is no 400.
        return {k: v for k, v in headers.items() if k != "x-amz-checksum-mode"}
    if not any(_in_group(h) for h in headers) or not _names_checksum_header(resp):
        return None
    learn(
        p,
        f"the store refused the x-amz-checksum-* headers ({resp.status} {resp.code}: {resp.message})",
        checksum_headers=False,
        checksum_mode=False,
        multipart_checksum="none",
    )
    kept = {k: v for k, v in headers.items() if not _in_group(k)}
    if body is not None and "content-md5" not in kept:
        # The body still needs a digest the store checks: Content-MD5 is the one they all do.
        kept["content-md5"] = base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()
    return kept
