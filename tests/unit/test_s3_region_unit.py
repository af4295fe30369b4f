"""Which S3 answers are region redirects (providers/s3/_region.py); the wire behaviour is proven
against SeaweedFS behind the AWS persona in tests/test_s3_region.py."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from aiobucket.providers.s3._region import bucket_region, is_region_redirect
from aiobucket.providers.s3._transport import Response
from aiobucket.providers.s3._xml import parse_error


def answer(status: int, body: bytes = b"", **headers: str) -> Response:
    resp = Response(
        status, CIMultiDictProxy(CIMultiDict({k.replace("_", "-"): v for k, v in headers.items()})), body
    )
    resp.code, resp.message = parse_error(body)
    return resp


def error(code: str, extra: str = "") -> bytes:
    return f"<Error><Code>{code}</Code><Message>m</Message>{extra}</Error>".encode()


@pytest.mark.parametrize(
    ("resp", "method", "expected"),
    [
        (answer(301, error("PermanentRedirect")), "GET", True),
        (answer(307, error("TemporaryRedirect")), "PUT", True),
        (answer(400, error("AuthorizationHeaderMalformed", "<Region>eu-west-1</Region>")), "GET", True),
        (answer(400, error("AuthorizationHeaderMalformed")), "GET", False),  # names no region
        (answer(400, error("IllegalLocationConstraintException")), "POST", True),
        (answer(400), "HEAD", True),  # a HEAD answer has no body
        (answer(301), "HEAD", True),
        (answer(400, x_amz_bucket_region="us-east-1"), "HEAD", False),  # the region we signed for
        (answer(301, error("PermanentRedirect"), x_amz_bucket_region="us-east-1"), "GET", False),
        (answer(400, error("InvalidArgument")), "GET", False),
        (answer(403), "HEAD", False),
        (answer(404), "HEAD", False),
    ],
)
def test_what_is_a_region_redirect(resp: Response, method: str, expected: bool) -> None:
    assert is_region_redirect(resp, method, "us-east-1") is expected


def test_the_header_wins_over_the_body() -> None:
    body = error("AuthorizationHeaderMalformed", "<Region>eu-west-1</Region>")
    assert bucket_region(answer(400, body)) == "eu-west-1"
    assert bucket_region(answer(400, body, x_amz_bucket_region="ap-south-1")) == "ap-south-1"
    assert bucket_region(answer(400)) is None
