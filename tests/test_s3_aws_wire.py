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


async def test_throttling_is_off_by_default_for_a_custom_endpoint_and_on_for_aws(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AWS_RETRY_MODE", raising=False)
    monkeypatch.delenv("AWS_MAX_ATTEMPTS", raising=False)
    from aiobucket import config
    from aiobucket.providers.s3._settings import S3Settings, parse_settings

    def settings(url: str, **options: object) -> S3Settings:
        return parse_settings(config.settings_from("b", {"url": url, **options}), "b")

    for aws in (
        "s3://b",
        "s3://b?endpoint=https://s3.eu-west-1.amazonaws.com",
        "s3://b?endpoint=https://s3.cn-north-1.amazonaws.com.cn",
    ):
        s = settings(aws)
        assert s.adaptive_retry, aws
    for custom in ("s3://b?endpoint=http://127.0.0.1:9000", "s3://b?endpoint=https://storage.example.com"):
        assert not settings(custom).adaptive_retry, custom
    assert not settings("s3://b", adaptive_retry=False).adaptive_retry
    assert settings("s3://b?endpoint=http://127.0.0.1:9000", adaptive_retry="on").adaptive_retry
    # AWS's guidance, botocore's standard mode: full jitter from 0.1 s, capped at 20 s, 10 attempts.
    d = settings("s3://b")
    assert (d.backoff_base, d.backoff_max, d.max_attempts, d.retry_quota) == (0.1, 20.0, 10, 500)


def test_botocore_retry_environment_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    """AWS_RETRY_MODE and AWS_MAX_ATTEMPTS, as a boto3 user has them set
    (https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html);
    the bucket's own options win."""
    from aiobucket import config
    from aiobucket.providers.s3._settings import S3Settings, parse_settings

    def settings(url: str = "s3://b", **options: object) -> S3Settings:
        return parse_settings(config.settings_from("b", {"url": url, **options}), "b")

    monkeypatch.setenv("AWS_RETRY_MODE", "standard")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "3")
    assert not settings().adaptive_retry and settings().max_attempts == 3
    assert settings(adaptive_retry=True, max_attempts=7).adaptive_retry
    assert settings(max_attempts=7).max_attempts == 7
    monkeypatch.setenv("AWS_RETRY_MODE", "adaptive")
    assert settings("s3://b?endpoint=http://127.0.0.1:9000").adaptive_retry
    monkeypatch.setenv("AWS_RETRY_MODE", "fast")
    with pytest.raises(aiobucket.InvalidArgument, match="AWS_RETRY_MODE must be one of 'legacy', 'standard'"):
        settings()
    monkeypatch.delenv("AWS_RETRY_MODE")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "many")
    with pytest.raises(aiobucket.InvalidArgument, match="AWS_MAX_ATTEMPTS must be a positive number"):
        settings()


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


# -- listings that survive any key (encoding-type=url) -----------------------------------------
# https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html (EncodingType: "Object
# key names might contain any Unicode character; however, the XML 1.0 parser can't parse certain
# characters ... you can add this parameter to request that Amazon S3 encode the keys")
# and https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-keys.html (XML-related
# constraints: a carriage return is normalised to a line feed in XML text).

FOREIGN = [
    "cr\rkey", "ctl\x01key", "tab\tkey", "plus+key", "pct%2Fkey", "sp ace", "nc\ufffekey", "é/ü",
]  # fmt: skip
"""Keys another client wrote raw: aiobucket refuses the control characters and U+FFFE in its
own keys, but must list (and work around) them when they are there. (No "\n": moto's HTTP
server cannot route a path holding one.)"""


@pytest.fixture(params=["moto"])
def backend(request: pytest.FixtureRequest) -> S3Server:
    """moto, which lists raw control-character keys as AWS does (SeaweedFS 3.x neither encodes
    nor keeps them: it lists a control character as U+FFFD); named ``backend`` so
    @pytest.mark.quirk applies."""
    import os

    names = [n.strip() for n in os.environ.get("AIOBUCKET_BACKENDS", "").split(",") if n.strip()]
    if names and request.param not in names:
        pytest.skip(f"{request.param} not in AIOBUCKET_BACKENDS")
    server: S3Server = request.getfixturevalue("moto_server" if request.param == "moto" else "s3_server")
    return server


async def write_foreign_keys(server: S3Server, bucket: aiobucket.Bucket) -> str:
    from test_s3 import prefix_of, raw_client

    prefix = prefix_of(bucket)
    async with raw_client(server) as raw:
        for key in FOREIGN:
            await raw.put_object(Bucket=server.versioned_bucket, Key=prefix + key, Body=b"raw")
    for key in MINE:
        await put(bucket, key, b"ours")
    return prefix


MINE = [f"mine/{i:04d}" for i in range(3)]


async def test_foreign_keys_with_control_characters_list_exactly_and_remove_many_works(
    backend: S3Server,
) -> None:
    from test_s3 import bucket_on

    with bucket_on(backend, versioned=True) as bucket:
        prefix = await write_foreign_keys(backend, bucket)
        names = []
        async for err, entry in bucket.list():
            assert err is None and entry is not None
            names.append(entry.name)
        assert sorted(names) == sorted(FOREIGN + MINE)  # "\r" is "\r", not "\n"; "+" is "+"
        provider = s3_provider(bucket)  # two keys a page: continuation across odd keys
        paged = [e.name[len(prefix) :] async for e in provider.list(prefix, limit=2)]
        assert sorted(paged) == sorted(FOREIGN + MINE)

        # remove_many: aiobucket's own key rule refuses the control characters (never sent);
        # every other key under the same prefix is removed (the listing no longer breaks).
        results = {key: err async for err, key in bucket.remove_many(names)}
        refused = {k for k, e in results.items() if isinstance(e, aiobucket.InvalidArgument)}
        assert refused == {"cr\rkey", "ctl\x01key", "tab\tkey", "nc\ufffekey"}
        assert all(results[k] is None for k in set(names) - refused)
        left = [entry.name async for err, entry in bucket.list() if entry is not None]
        assert sorted(left) == sorted(refused)


@pytest.mark.quirk("versions_not_url_encoded")
async def test_foreign_keys_with_control_characters_list_exactly_in_versions(backend: S3Server) -> None:
    from test_s3 import bucket_on

    with bucket_on(backend, versioned=True) as bucket:
        prefix = await write_foreign_keys(backend, bucket)
        versions = []
        async for err, entry in bucket.list_versions():
            assert err is None, err
            assert entry is not None
            versions.append(entry.name)
        assert sorted(versions) == sorted(FOREIGN + MINE)
        # Two keys a page: the next-page marker of a versions listing is a key, decoded too.
        paged = [
            e.name[len(prefix) :] async for e in s3_provider(bucket).list(prefix, versions=True, limit=2)
        ]
        assert sorted(paged) == sorted(FOREIGN + MINE)


def test_an_encoded_versions_page_is_decoded_as_aws_documents() -> None:
    # https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectVersions.html: with
    # encoding-type=url, "KeyMarker, NextKeyMarker, Prefix, Key, and Delimiter" are encoded.
    from aiobucket.providers.s3._xml import next_page, parse_list

    page = (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b'<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name>'
        b"<Prefix>p%2F</Prefix><KeyMarker></KeyMarker><VersionIdMarker></VersionIdMarker>"
        b"<NextKeyMarker>p%2Fcr%0Dkey</NextKeyMarker><NextVersionIdMarker>v+1</NextVersionIdMarker>"
        b"<MaxKeys>2</MaxKeys><EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>"
        b"<Version><Key>p%2Fa+b%2Bc%25</Key><VersionId>v+0</VersionId><IsLatest>true</IsLatest>"
        b"<LastModified>2024-01-01T00:00:00.000Z</LastModified><ETag>&quot;e&quot;</ETag><Size>1</Size></Version>"
        b"<Version><Key>p%2Fcr%0Dkey</Key><VersionId>v+1</VersionId><IsLatest>true</IsLatest>"
        b"<LastModified>2024-01-01T00:00:00.000Z</LastModified><ETag>&quot;e&quot;</ETag><Size>1</Size></Version>"
        b"<CommonPrefixes><Prefix>p%2Fd%01ir%2F</Prefix></CommonPrefixes>"
        b"</ListVersionsResult>"
    )
    parsed = parse_list(page, versions=True)
    assert [e.name for e in parsed.entries] == ["p/a b+c%", "p/cr\rkey", "p/d\x01ir/"]
    assert [e.version for e in parsed.entries[:2]] == ["v+0", "v+1"]  # version ids are not encoded
    assert parsed.key_marker == "p/cr\rkey"
    assert next_page(page, versions=True) == {"key-marker": "p/cr\rkey", "version-id-marker": "v+1"}
    # A server that ignored encoding-type sends names raw: a "%" or "+" stays as it is.
    raw = page.replace(b"<EncodingType>url</EncodingType>", b"")
    assert parse_list(raw, versions=True).entries[0].name == "p%2Fa+b%2Bc%25"


async def test_the_ready_made_personas_install_by_name(s3_server: S3Server) -> None:
    from personas import persona

    with proxied(s3_server) as (bucket, proxy):
        for name in ("late-error-on-complete", "truncated-complete", "late-error-on-copy", "bad-digest-once"):
            persona(f"aws_errors:{name}").install(proxy)
        persona("aws_throttle:slowdown-above-100-rps").install(proxy)
        data = payload(PART + 10, seed=6)
        await put(bucket, "k", data, part_size=PART)  # one BadDigest, one late error, one truncation
        await bucket.copy("k", "k2")  # one late error
        assert await bucket.download("k2").read() == data
        await proxy.settled()
        assert len(proxy.matching(**COMPLETE)) == 3
        assert len([r for r in proxy.matching(method="PUT") if is_copy(r)]) == 2
