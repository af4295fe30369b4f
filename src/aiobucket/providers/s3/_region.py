"""Which region an S3 bucket is in, learned from what S3 answers (one ``Regions`` per provider).

A bucket lives in one region, and S3 refuses requests signed for (or sent to) another
one. boto3 users never see this: botocore follows the answer (``S3RegionRedirectorv2``).
So do we:

* **What is a region redirect.** An answer that says the bucket is elsewhere
  (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html):
  301 PermanentRedirect (a regional endpoint of another region), 302/307
  TemporaryRedirect (a new bucket reached through the global endpoint),
  400 AuthorizationHeaderMalformed naming the ``<Region>`` it expected,
  400 IllegalLocationConstraintException (an opt-in region), and a HEAD answered 301
  or 400 with no body at all (HEAD answers carry none). An answer whose
  ``x-amz-bucket-region`` names the region we signed for is not one, nor is a body-less
  400 once S3 has named that region (a HEAD of a malformed version id, say).
* **Where the region comes from**, in order: the ``x-amz-bucket-region`` header, the
  error body's ``<Region>``, else a HeadBucket, whose answer carries the header
  whatever its status (https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadBucket.html).
* **What happens then.** The provider re-signs the request for that region (and, on
  AWS's own endpoints, sends it to that region's endpoint) and sends it again at once:
  no backoff, and at most one re-route per request, so two answers naming each other's
  region cannot loop. The re-route is not a failed attempt: it happens around the retry
  loop (``S3Provider.send`` around ``RetryPolicy.call``), whose attempts start afresh for
  the re-sent request, but whose retry deadline does not: it runs from the start of the
  API call, and the re-sent request and the HeadBucket a re-route may need spend what
  is left of it. The region is kept for the provider's life; every request after
  that is signed for it from the start. Concurrent requests that all meet the redirect
  learn it once (a lock), and a request that was sent before the move follows the
  region already learned.
* **No region configured** (neither in the bucket's URL nor in the AWS environment):
  the region is discovered once, lazily, before the first request, by a HeadBucket.
  A server that names no region (most S3-compatible stores) leaves ``us-east-1``.
* **A configured region that is wrong** is followed too, and logged once per provider
  (``logging.warning`` on the ``aiobucket`` logger) so that the configuration gets fixed.
* **Signed URLs and upload forms** are signed for the bucket's region. Nothing tells
  their holder to re-sign, so before the first one a configured region that no answer
  has confirmed yet is checked by one HeadBucket (failures leave the configured one).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from .._http.transport import Response
from ._errors import error_detail

__all__ = ["DEFAULT_REGION", "Regions", "bucket_region", "is_region_redirect"]

DEFAULT_REGION = "us-east-1"
"""Where requests are signed for when nothing says otherwise (botocore does the same)."""

_log = logging.getLogger("aiobucket")

_REDIRECT_STATUS = frozenset({301, 302, 307})
_REDIRECT_CODES = frozenset({"PermanentRedirect", "TemporaryRedirect", "IllegalLocationConstraintException"})


def bucket_region(resp: Response) -> str | None:
    """The region an answer names: its ``x-amz-bucket-region`` header, else the body's ``<Region>``."""
    return resp.headers.get("x-amz-bucket-region") or error_detail(resp.body, "Region") or None


def is_region_redirect(resp: Response, method: str, signed_for: str) -> bool:
    """Whether this error answer says the bucket is in another region than ``signed_for``."""
    named = resp.headers.get("x-amz-bucket-region")
    if named is not None and named == signed_for:
        return False  # the right region: a 400 or 301 for another reason
    if resp.status in _REDIRECT_STATUS or resp.code in _REDIRECT_CODES:
        return True
    if resp.code == "AuthorizationHeaderMalformed":
        return named is not None or bool(error_detail(resp.body, "Region"))
    # A HEAD answer has no body, hence no code: a 400 or 301 is all S3 says.
    return method == "HEAD" and not resp.body and resp.status in (301, 400)


class Regions:
    """The bucket's region as this provider knows it, and the one-time warning."""

    __slots__ = ("_lock", "_warned", "checked", "configured", "learned")

    def __init__(self, configured: str | None) -> None:
        self.configured = configured
        """The region given by configuration (the URL or the AWS environment), if any."""
        self.learned: str | None = None
        """The region S3 named for the bucket (a redirect or a HeadBucket), once known."""
        self.checked = False
        """A HeadBucket was asked to confirm the configured region (before signing a URL)."""
        self._lock: asyncio.Lock | None = None
        self._warned = False

    @property
    def lock(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def discover(self, head_bucket: Callable[[], Awaitable[Response]]) -> str:
        """The region to sign the first request for when none is configured: S3's answer
        to a HeadBucket, else ``us-east-1``."""
        resp = await head_bucket()
        named = resp.headers.get("x-amz-bucket-region")
        if named:
            self.learned = named
        return named or DEFAULT_REGION

    async def follow(
        self, resp: Response, signed_for: str, head_bucket: Callable[[], Awaitable[Response]]
    ) -> str | None:
        """The region to re-sign for after the redirect ``resp``; None if S3 names none
        other than ``signed_for``. Call under ``lock``."""
        region = bucket_region(resp)
        if region is None:
            if self.learned == signed_for:
                return None  # S3 named this very region before: the answer is about something else
            region = (await head_bucket()).headers.get("x-amz-bucket-region")
        if not region:
            return None
        self.learned = region
        return None if region == signed_for else region

    def warn_once(self, bucket: str, region: str) -> None:
        """Say once that the configured region is not the bucket's."""
        if self._warned or self.configured is None or self.configured == region:
            return
        self._warned = True
        _log.warning(
            "S3 bucket %r is in region %r, but %r is configured; requests now go to %r. "
            "Set region=%s in the bucket's configuration to save a round trip.",
            bucket,
            region,
            self.configured,
            region,
            region,
        )
