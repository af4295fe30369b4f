"""Which S3 answers are region redirects (providers/s3/_region.py); the wire behaviour is proven
against SeaweedFS behind the AWS persona in tests/test_s3_region.py."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from aiobucket.providers._http.transport import Response, parse_error
from aiobucket.providers.s3._region import bucket_region, is_region_redirect


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


@pytest.mark.parametrize(
    ("dst", "src", "server_side"),
    [
        # AWS copies between regions of one partition when the request goes to the
        # destination's region (API_CopyObject.html), as boto3's copy_object does.
        ({"region": "eu-west-1"}, {"region": "us-east-1"}, True),
        ({"region": "cn-north-1"}, {"region": "us-east-1"}, False),  # another partition
        (
            {"region": "eu-west-1"},
            {"region": "eu-west-1", "access_key_id": "AKIA2"},
            False,
        ),  # another account
        # An endpoint of another store: one region, one server.
        (
            {"region": "a", "endpoint": "http://127.0.0.1:9"},
            {"region": "b", "endpoint": "http://127.0.0.1:9"},
            False,
        ),
        (
            {"region": "a", "endpoint": "http://127.0.0.1:9"},
            {"region": "a", "endpoint": "http://127.0.0.1:9"},
            True,
        ),
    ],
)
def test_server_side_copies_cross_regions_on_aws_only(
    dst: dict[str, str], src: dict[str, str], server_side: bool
) -> None:
    from aiobucket.providers.s3._provider import S3Provider
    from aiobucket.providers.s3._settings import S3Settings

    def provider(bucket: str, given: dict[str, str]) -> S3Provider:
        keys = {"access_key_id": "AKIA1", "secret_access_key": "s"}
        return S3Provider(S3Settings(bucket=bucket, **{**keys, **given}))  # type: ignore[arg-type]

    assert provider("dst", dst).can_copy_from(provider("src", src)) is server_side
