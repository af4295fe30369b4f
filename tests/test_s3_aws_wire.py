"""S3 on AWS's terms, through personas (tests/personas/): throttling, corruption in transit,
and 200 OK answers that fail in their body.

Each case names the AWS documentation page it imitates (in the persona module and here).
The server behind the persona is SeaweedFS; the persona decides only what AWS would
answer differently.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from personas.aws_errors import bad_digest, late_error, truncated_200
from personas.aws_throttle import throttle
from servers.seaweedfs import S3Server
from test_s3 import s3_provider
from test_s3_faults import PART, open_uploads, payload, proxied, put

import aiobucket

pytestmark = pytest.mark.anyio

COMPLETE = {"method": "POST", "query": "uploadId="}


@pytest.fixture(autouse=True)
async def _close_clients(anyio_backend: str) -> AsyncIterator[None]:
    yield
    await aiobucket.aclose()


def is_copy(req: Any) -> bool:
    return req.header("x-amz-copy-source") is not None and req.header("x-amz-copy-source-range") is None


def is_part_copy(req: Any) -> bool:
    return req.header("x-amz-copy-source-range") is not None


# -- throttling: 503 SlowDown above a request rate ---------------------------------------------


async def test_many_puts_against_a_rate_limit_adapt_and_none_fails(s3_server: S3Server) -> None:
    # https://docs.aws.amazon.com/AmazonS3/latest/userguide/optimizing-performance.html:
    # above what a prefix admits, S3 answers 503 Slow Down (personas/aws_throttle.py).
    count, concurrency, rate = 240, 32, 80.0
    with proxied(s3_server, adaptive_retry=True, max_attempts=10, backoff_base=0.1, backoff_max=20) as (
        bucket,
        proxy,
    ):
        limit = throttle(proxy, rate)
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with gate:
                await put(bucket, f"k{i:04d}", b"x" * 512)

        started = time.monotonic()
        async with asyncio.TaskGroup() as tg:  # any failure fails the test
            for i in range(count):
                tg.create_task(one(i))
        took = time.monotonic() - started
        sender = s3_provider(bucket).policy.rate
        assert sender is not None and sender.enabled  # the throttles reached the send rate
        print(
            f"{count} PUTs at concurrency {concurrency} against {rate:g} req/s: {took:.1f} s "
            f"(ideal {count / rate:.1f} s), {limit.refused} SlowDown answers drawn, "
            f"rate now {sender.rate:.0f}/s"
        )
        assert limit.refused > 0  # the persona did throttle
        assert limit.admitted >= count


async def test_throttling_is_off_by_default_for_a_custom_endpoint_and_on_for_aws() -> None:
    from aiobucket.providers.s3._settings import S3Settings, is_aws

    assert is_aws(None) and is_aws("https://s3.eu-west-1.amazonaws.com")
    assert not is_aws("http://127.0.0.1:9000") and not is_aws("https://storage.example.com")
    assert S3Settings(bucket="b").max_attempts == 10


# -- corruption in transit: BadDigest is resent once ------------------------------------------


async def test_bad_digest_once_is_resent_from_the_buffer(s3_server: S3Server) -> None:
    # https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html: BadDigest (400).
    with proxied(s3_server) as (bucket, proxy):
        proxy.add_rule(bad_digest(), method="PUT")
        data = payload(1000, seed=3)
        await put(bucket, "k", data)
        await proxy.settled()
        assert len(proxy.matching(method="PUT")) == 2
        assert await bucket.download("k").read() == data


async def test_bad_digest_twice_is_an_integrity_error(s3_server: S3Server) -> None:
    with proxied(s3_server) as (bucket, proxy):
        proxy.add_rule(bad_digest(), method="PUT", times=2)
        with pytest.raises(aiobucket.IntegrityError, match="BadDigest"):
            await put(bucket, "k", payload(1000))
        assert not await bucket.exists("k")
        assert len(proxy.matching(method="PUT")) == 2  # resent once, not retried further


# -- 200 OK with an error body ----------------------------------------------------------------
# https://docs.aws.amazon.com/AmazonS3/latest/API/API_CompleteMultipartUpload.html and
# https://docs.aws.amazon.com/AmazonS3/latest/API/API_CopyObject.html: "a 200 OK response can
# contain either a success or an error"; white space may come first, for as long as it takes.


@pytest.mark.parametrize(
    "fault",
    [
        late_error("InternalError"),
        late_error("SlowDown", "Reduce your request rate."),
        truncated_200(60),
        truncated_200(0),
    ],
    ids=["late-internal-error", "late-slowdown", "truncated", "empty"],
)
async def test_complete_answered_200_then_failing_is_retried(s3_server: S3Server, fault: Any) -> None:
    with proxied(s3_server) as (bucket, proxy):
        proxy.add_rule(fault, **COMPLETE)
        data = payload(PART + 10, seed=4)
        attrs = await put(bucket, "k", data, part_size=PART)
        await proxy.settled()
        assert len(proxy.matching(**COMPLETE)) == 2
        assert attrs.etag == (await bucket.attrs("k")).etag  # not an earlier object's attributes
        assert await bucket.download("k").read() == data


async def test_complete_with_a_late_final_error_is_mapped_and_the_upload_aborted(s3_server: S3Server) -> None:
    with proxied(s3_server) as (bucket, proxy):
        proxy.add_rule(late_error("AccessDenied", "Access Denied", whitespace=1500), times=None, **COMPLETE)
        with pytest.raises(aiobucket.PermissionDenied, match="AccessDenied"):
            await put(bucket, "k", payload(PART + 10), part_size=PART)
        await proxy.settled()
        assert len(proxy.matching(**COMPLETE)) == 1  # not retried: it is final
        assert not await bucket.exists("k")
        assert await open_uploads(bucket) == []


async def test_complete_steadily_truncated_fails_and_the_upload_is_aborted(s3_server: S3Server) -> None:
    with proxied(s3_server) as (bucket, proxy):  # FAST: 4 attempts
        proxy.add_rule(truncated_200(80), times=None, **COMPLETE)
        with pytest.raises(aiobucket.BackendError, match="truncated or unreadable"):
            await put(bucket, "k", payload(PART + 10), part_size=PART)
        await proxy.settled()
        assert len(proxy.matching(**COMPLETE)) == 4
        assert not await bucket.exists("k")
        assert await open_uploads(bucket) == []


@pytest.mark.parametrize(
    "fault",
    [late_error("InternalError"), truncated_200(70, "CopyObjectResult"), truncated_200(0)],
    ids=["late-internal-error", "truncated", "empty"],
)
async def test_copy_answered_200_then_failing_is_retried(s3_server: S3Server, fault: Any) -> None:
    with proxied(s3_server) as (bucket, proxy):
        await put(bucket, "src", b"copy me")
        proxy.add_rule(fault, method="PUT", when=is_copy)
        attrs = await bucket.copy("src", "dst")
        await proxy.settled()
        assert len([r for r in proxy.matching(method="PUT") if is_copy(r)]) == 2
        assert attrs.etag and attrs.etag == (await bucket.attrs("dst")).etag
        assert await bucket.download("dst").read() == b"copy me"


async def test_copy_with_a_late_final_error_is_mapped(s3_server: S3Server) -> None:
    with proxied(s3_server) as (bucket, proxy):
        await put(bucket, "src", b"copy me")
        proxy.add_rule(
            late_error("AccessDenied", "Access Denied", whitespace=900), method="PUT", when=is_copy
        )
        with pytest.raises(aiobucket.PermissionDenied):
            await bucket.copy("src", "dst")
        assert not await bucket.exists("dst")


async def test_upload_part_copy_answered_200_then_failing_is_retried_or_aborts(s3_server: S3Server) -> None:
    # https://docs.aws.amazon.com/AmazonS3/latest/API/API_UploadPartCopy.html: the same 200 + <Error>.
    with proxied(s3_server) as (bucket, proxy):
        data = payload(PART + 1000, seed=5)
        await put(bucket, "src", data, part_size=PART)
        provider = s3_provider(bucket)
        provider.copy_threshold, provider.copy_part_size = PART // 2, PART
        proxy.add_rule(late_error("InternalError"), method="PUT", when=is_part_copy)
        await bucket.copy("src", "dst")
        assert await bucket.download("dst").read() == data
        proxy.add_rule(truncated_200(50, "CopyPartResult"), method="PUT", when=is_part_copy, times=None)
        with pytest.raises(aiobucket.BackendError, match="truncated or unreadable"):
            await bucket.copy("src", "dst2")
        assert not await bucket.exists("dst2")
        assert await open_uploads(bucket) == []
