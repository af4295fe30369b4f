"""The AWS S3 persona: answers that only AWS gives, as its documentation describes them.

Install a persona's rules on a ``FaultProxy`` in front of a real S3 server (SeaweedFS or
moto); what the rules do not answer passes through to that server. Each rule cites the
page it follows.

Personas here:

- ``BucketInAnotherRegion(region, answer, region_header)``: the bucket lives in
  ``region``. A request signed for another region (read from the SigV4 credential scope,
  in the ``Authorization`` header or a presigned URL's ``X-Amz-Credential``) is refused
  the way AWS refuses it, by ``answer``: ``"301"`` PermanentRedirect, ``"307"``
  TemporaryRedirect, ``"400"`` AuthorizationHeaderMalformed naming the ``<Region>``, or
  ``"illegal-location"`` IllegalLocationConstraintException. HEAD answers have no body.
  On loopback there is one endpoint for every region, so "sent to the wrong regional
  endpoint" and "signed for the wrong region" are the same thing here; the answers are
  the ones each case gets on AWS. The servers behind accept a signature for any region
  (SeaweedFS and moto check no scope region: tests/test_s3_sigv4_server.py), so the
  persona alone decides which region the bucket is in.

Also ``aws_error(...)``: an error answer with AWS's request ids (headers and body).

As a pytest plugin (``tests/conftest.py`` lists it as the backend ``aws-region``), it runs
the conformance suite against SeaweedFS behind ``BucketInAnotherRegion``, with the
buckets configured for ``us-east-1`` and living in ``eu-west-1``: the plain bucket is
refused with 301 PermanentRedirect, the versioned one with AuthorizationHeaderMalformed
(and body-less 400s to HEAD, which then need a HeadBucket).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote

import pytest
from faultproxy import Answer, FaultProxy, Request, Respond, Rewrite
from servers.seaweedfs import QUIRKS as SEAWEEDFS_QUIRKS
from servers.seaweedfs import S3Server

__all__ = ["PERSONAS", "QUIRKS", "BucketInAnotherRegion", "aws_error", "conformance_target", "signing_region"]

# https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-auth-using-authorization-header.html
# Credential=<key id>/<date>/<region>/s3/aws4_request
_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/([^/,\s]+)/s3/aws4_request")
# https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html (X-Amz-Credential)
_QUERY_SCOPE = re.compile(r"(?:^|&)X-Amz-Credential=[^&]*?(?:%2F|/)\d{8}(?:%2F|/)([^&%/]+)(?:%2F|/)s3", re.I)
_ids = itertools.count(1)


def signing_region(req: Request) -> str | None:
    """The region a request is signed for (SigV4 header or presigned query); None if unsigned."""
    found = _SCOPE.search(req.header("authorization") or "")
    if found is None:
        found = _QUERY_SCOPE.search(req.query)
    return unquote(found.group(1)) if found else None


def _request_ids() -> tuple[str, str]:
    n = next(_ids)
    return f"PERSONA{n:012d}", f"persona-host-id-{n}/aGVsbG8="


def aws_error(
    status: int, code: str, message: str, *, extra: str = "", headers: dict[str, str] | None = None
) -> Respond:
    """An S3 error answer as AWS sends it, request ids included.

    https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html (the body: Code,
    Message, RequestId, HostId, plus per-code elements) and
    https://docs.aws.amazon.com/AmazonS3/latest/API/RESTCommonResponseHeaders.html
    (``x-amz-request-id``, ``x-amz-id-2`` on every answer).
    """
    rid, hid = _request_ids()
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>{extra}"
        f"<RequestId>{rid}</RequestId><HostId>{hid}</HostId></Error>"
    ).encode()
    return Respond(
        status,
        body,
        {"Content-Type": "application/xml", "x-amz-request-id": rid, "x-amz-id-2": hid, **(headers or {})},
    )


Refusal = Literal["301", "307", "400", "illegal-location"]


@dataclass(frozen=True)
class BucketInAnotherRegion:
    """The bucket is in ``region``; requests signed for any other region are refused as on AWS."""

    region: str = "eu-west-1"
    answer: Refusal = "301"
    region_header: bool = True
    """Whether refusals carry ``x-amz-bucket-region`` (AWS's usually do; a client must cope without)."""

    def elsewhere(self, req: Request) -> bool:
        signed = signing_region(req)
        return signed is not None and signed != self.region

    @staticmethod
    def is_head_bucket(req: Request) -> bool:
        return req.method == "HEAD" and "/" not in req.path.strip("/")  # path-style: /<bucket>

    def _header(self) -> dict[str, str]:
        return {"x-amz-bucket-region": self.region} if self.region_header else {}

    def refusal_to(self, req: Request) -> Respond:
        """The answer with a body, for every method but HEAD."""
        bucket = req.path.strip("/").split("/", 1)[0]  # path-style: /<bucket>/<key>
        host = f"{bucket}.s3.{self.region}.amazonaws.com"
        if self.answer == "301":
            # https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html (PermanentRedirect:
            # "The bucket that you are attempting to access must be addressed using the specified
            # endpoint. Send all future requests to this endpoint.", 301) and
            # https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingBucket.html#access-bucket-intro
            # (a request to the wrong Region's endpoint gets a redirect naming the right one).
            return aws_error(
                301,
                "PermanentRedirect",
                "The bucket you are attempting to access must be addressed using the specified "
                "endpoint. Please send all future requests to this endpoint.",
                extra=f"<Endpoint>{host}</Endpoint><Bucket>{bucket}</Bucket>",
                headers=self._header(),
            )
        if self.answer == "307":
            # https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html (TemporaryRedirect:
            # "You are being redirected to the bucket while DNS updates.", 307) and
            # https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingRouting.html ("Temporary
            # request redirection": most likely just after a bucket is created; the answer names the
            # right facility, whose endpoint a client must not keep reusing).
            return aws_error(
                307,
                "TemporaryRedirect",
                "Please re-send this request to the specified temporary endpoint. "
                "Continue to use the original request endpoint for future requests.",
                extra=f"<Endpoint>{host}</Endpoint><Bucket>{bucket}</Bucket>",
                headers={"Location": f"https://{host}/", **self._header()},
            )
        if self.answer == "400":
            # https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html
            # (AuthorizationHeaderMalformed, 400: "The authorization header that you provided is not
            # valid."; AWS names the expected region in <Region>, the element botocore reads).
            return aws_error(
                400,
                "AuthorizationHeaderMalformed",
                f"The authorization header is malformed; the region is wrong; expecting '{self.region}'",
                extra=f"<Region>{self.region}</Region>",
                headers=self._header(),
            )
        # https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html
        # (IllegalLocationConstraintException, 400) and
        # https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingRouting.html ("For all Regions
        # that launched after March 20, 2019, if a request arrives at the wrong Amazon S3 location,
        # Amazon S3 returns an HTTP 400 Bad Request error"); the body names no region.
        return aws_error(
            400,
            "IllegalLocationConstraintException",
            f"The {self.region} location constraint is incompatible for the region specific "
            "endpoint this request was sent to.",
            headers=self._header(),
        )

    def install(self, proxy: FaultProxy) -> None:
        # HeadBucket in the wrong region: 301 with no body and x-amz-bucket-region, always:
        # https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadBucket.html ("x-amz-bucket-region:
        # The Region that the bucket is located"; no body on any answer of HEAD).
        proxy.add_rule(
            Respond(301, b"", {"x-amz-bucket-region": self.region}),
            when=lambda r: self.elsewhere(r) and self.is_head_bucket(r),
            times=None,
        )
        # HeadObject in the wrong region: the status alone (HEAD answers carry no body:
        # https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html, "Errors").
        head_status = {"301": 301, "307": 307}.get(self.answer, 400)
        proxy.add_rule(
            Respond(head_status, b"", self._header()),
            when=lambda r: self.elsewhere(r) and r.method == "HEAD",
            times=None,
        )
        proxy.add_rule(Answer(self.refusal_to), when=self.elsewhere, times=None)
        # HeadBucket in the right region names it too (the HeadBucket page, as above).
        proxy.add_rule(
            Rewrite("response", {"x-amz-bucket-region": self.region}),
            when=self.is_head_bucket,
            times=None,
        )


PERSONAS = {
    "bucket-in-another-region": BucketInAnotherRegion("eu-west-1", "301"),
    "bucket-in-another-region-307": BucketInAnotherRegion("eu-west-1", "307", region_header=False),
    "bucket-in-another-region-400": BucketInAnotherRegion("eu-west-1", "400", region_header=False),
    "bucket-in-another-region-opt-in": BucketInAnotherRegion(
        "af-south-1", "illegal-location", region_header=False
    ),
}
"""Ready-made personas by name (``personas.persona("aws:<name>")``)."""


# -- the conformance backend "aws-region": SeaweedFS in eu-west-1, configured as us-east-1 ------

QUIRKS: dict[str, str] = dict(SEAWEEDFS_QUIRKS)
"""The server behind the persona is SeaweedFS: its quirks apply."""


@pytest.fixture(scope="session")
def aws_region_proxies(s3_server: S3Server) -> Iterator[dict[bool, FaultProxy]]:
    """One proxy per bucket (plain, versioned), each with another way of saying "elsewhere":
    301 PermanentRedirect naming the region in a header, and AuthorizationHeaderMalformed
    naming it only in the body."""
    with FaultProxy(s3_server.endpoint) as plain, FaultProxy(s3_server.endpoint) as versioned:
        PERSONAS["bucket-in-another-region"].install(plain)
        PERSONAS["bucket-in-another-region-400"].install(versioned)
        yield {False: plain, True: versioned}


def conformance_target(request: pytest.FixtureRequest, versioned: bool) -> dict[str, object]:
    """SeaweedFS behind the persona; the configuration says us-east-1, the bucket is in eu-west-1."""
    from dataclasses import replace

    server: S3Server = request.getfixturevalue("s3_server")
    proxy: FaultProxy = request.getfixturevalue("aws_region_proxies")[versioned]
    return replace(server, endpoint=proxy.url, region="us-east-1").settings(versioned)
