"""S3 on SSE-KMS buckets, and the bucket options bucket policies require (issue #18, items 2-3).

Against moto's server, behind the SSE-KMS persona (``personas/aws_kms.py``: non-MD5
ETags, 403 without kms:Decrypt on reads that ask for checksums, a policy that
requires the SSE header) and ``faultproxy`` (lost responses, 409 once). Each case
names the AWS page it imitates.
"""

from __future__ import annotations

import base64
import hashlib
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import replace

import pytest
from faultproxy import FaultProxy, FlipByte, Rewrite, lose_response, s3_error
from personas.aws_kms import KmsBucket, kms_etag
from servers.seaweedfs import S3Server

import aiobucket
from aiobucket import config
from aiobucket._checksum import crc32c_b64

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024
PART = 5 * MiB
OWNER = "123456789012"  # moto's default account


@pytest.fixture(autouse=True)
async def _close_clients(anyio_backend: str) -> AsyncIterator[None]:
    yield
    await aiobucket.aclose()


def payload(n: int, seed: int = 0) -> bytes:
    block = random.Random(seed).randbytes(64 * 1024)
    return (block * (n // len(block) + 1))[:n]


@contextmanager
def bucket_at(server: S3Server, endpoint: str, **options: object) -> Iterator[aiobucket.Bucket]:
    name = f"k-{uuid.uuid4().hex[:12]}"
    settings = replace(server, endpoint=endpoint).settings(key_prefix=f"{name}/", **options)
    settings["max_attempts"] = 3
    settings["backoff_base"] = 0.01
    with config.override({name: settings}):
        yield aiobucket.Bucket(name)


async def write(bucket: aiobucket.Bucket, key: str, data: bytes, **kw: object) -> aiobucket.ObjectAttrs:
    async with bucket.upload(key, part_size=PART, **kw) as w:  # type: ignore[arg-type]
        await w.write(data)
    return await w.close()


async def whole_read(bucket: aiobucket.Bucket, key: str) -> tuple[aiobucket.ObjectAttrs, bytes]:
    async with bucket.download(key) as reader:
        attrs = await reader.attrs()
        return attrs, await reader.read()


# -- item 2: checksums only where a whole read is verified -----------------------------


async def test_without_kms_decrypt_everything_but_reading_bytes_works(moto_server: S3Server) -> None:
    """https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html:
    a HEAD with x-amz-checksum-mode of an SSE-KMS object needs kms:Decrypt, which HeadObject
    otherwise does not (boto3 never asks for checksums on a HEAD). So exists, attrs, remove,
    remove_many and precondition checks work for a role with no kms:Decrypt; a download
    (which needs it on AWS anyway) is refused, and the message names kms:Decrypt."""
    with KmsBucket(moto_server.endpoint, kms_decrypt=False) as kms, bucket_at(moto_server, kms.url) as b:
        small = await write(b, "small", b"hello kms")
        await write(
            b, "multi", payload(PART + 10, seed=1), preconditions=aiobucket.Preconditions(not_exists=True)
        )
        assert small.md5 is None  # the persona's ETag is not an MD5: nothing vouches for it
        assert await b.exists("small") and not await b.exists("missing")
        attrs = await b.attrs("multi")
        assert attrs.size == PART + 10 and attrs.verified_by is None  # a HEAD reports no checksum
        current = (await b.attrs("small")).etag.upper()  # ETags compare case-insensitively
        await write(b, "small", b"v2", preconditions=aiobucket.Preconditions(if_match=current))
        with pytest.raises(aiobucket.PermissionDenied, match="kms:Decrypt"):
            await b.download("small").read()
        with pytest.raises(aiobucket.PermissionDenied, match="kms:Decrypt"):
            await b.copy("small", "copy")  # refused by the copy itself, not by its HEAD
        await b.remove("small")
        assert [item async for item in b.remove_many(["multi"])] == [(None, "multi")]
        checked = [r for r in kms.seen("HEAD") if r.headers.get("x-amz-checksum-mode")]
        assert checked == []


async def test_whole_reads_are_verified_against_the_stored_crc32c(moto_server: S3Server) -> None:
    """On SSE-KMS the ETag is no MD5 (API_Object.html), so the stored CRC32C, asked for on
    the whole read only, is what verifies it; a flipped byte is IntegrityError."""
    data = payload(PART + 99, seed=2)
    with (
        KmsBucket(moto_server.endpoint) as kms,
        FaultProxy(kms.url) as proxy,
        bucket_at(moto_server, proxy.url) as b,
    ):
        written = await write(b, "multi", data)
        assert written.md5 is None
        attrs, got = await whole_read(b, "multi")
        assert got == data and attrs.verified_by == "crc32c" and attrs.crc32c == crc32c_b64(data)
        proxy.add_rule(FlipByte(7, in_object=True), method="GET", times=None)
        with pytest.raises(aiobucket.IntegrityError):
            await b.download("multi").read()
        ranged = [r for r in kms.seen("GET") if "range" in r.headers]
        assert all("x-amz-checksum-mode" not in r.headers for r in ranged)


# -- item 2: lost responses to conditional writes on SSE-KMS ---------------------------


async def test_lost_conditional_writes_are_resolved_by_the_stored_crc32c(moto_server: S3Server) -> None:
    """A conditional PUT, completion and copy are applied, their answers lost; the retry
    gets 412. The ETag is no MD5 on SSE-KMS (API_Object.html), so the stored CRC32C that
    aiobucket sent with the write decides: ours, so success, never PreconditionFailed."""
    fresh = aiobucket.Preconditions(not_exists=True)
    data = payload(PART + 5, seed=3)
    with (
        KmsBucket(moto_server.endpoint) as kms,
        FaultProxy(kms.url) as proxy,
        bucket_at(moto_server, proxy.url) as b,
    ):
        proxy.add_rule(lose_response(), method="PUT", header="If-None-Match", times=2)
        proxy.add_rule(lose_response(), method="POST", query="uploadId", header="If-None-Match")
        small = await write(b, "small", b"mine", preconditions=fresh)
        multi = await write(b, "multi", data, preconditions=fresh)
        copied = await b.copy("small", "copied", preconditions=fresh)
        await proxy.settled()
        assert [r.status for r in proxy.matching(method="PUT") if r.header("If-None-Match")][:2] == [
            200,
            412,
        ]
        assert small.etag == (await b.attrs("small")).etag and small.md5 is None
        assert multi.etag == (await b.attrs("multi")).etag
        assert copied.etag == (await b.attrs("copied")).etag
        assert (await whole_read(b, "multi"))[1] == data


async def test_a_lost_race_on_kms_is_still_precondition_failed(moto_server: S3Server) -> None:
    """Another writer's object is there: its CRC32C is not ours, so PreconditionFailed
    (a 503 first makes the 412 of the retry ambiguous, as a lost answer would)."""
    with (
        KmsBucket(moto_server.endpoint) as kms,
        FaultProxy(kms.url) as proxy,
        bucket_at(moto_server, proxy.url) as b,
    ):
        await write(b, "k", b"theirs")
        proxy.add_rule(s3_error(503, "ServiceUnavailable"), method="PUT", header="If-None-Match")
        with pytest.raises(aiobucket.PreconditionFailed, match="not ours"):
            await write(b, "k", b"ours", preconditions=aiobucket.Preconditions(not_exists=True))


async def test_outcome_unknown_only_when_neither_checksum_nor_etag_decides(moto_server: S3Server) -> None:
    """Without kms:Decrypt the stored checksum cannot be read and the ETag is no MD5:
    nothing decides, so OutcomeUnknown (never a false PreconditionFailed)."""
    with (
        KmsBucket(moto_server.endpoint, kms_decrypt=False) as kms,
        FaultProxy(kms.url) as proxy,
        bucket_at(moto_server, proxy.url) as b,
    ):
        await write(b, "k", b"someone")
        proxy.add_rule(s3_error(503, "ServiceUnavailable"), method="PUT", header="If-None-Match")
        with pytest.raises(aiobucket.OutcomeUnknown, match="neither its checksum nor its etag"):
            await write(b, "k", b"ours", preconditions=aiobucket.Preconditions(not_exists=True))


async def test_409_conditional_request_conflict_is_retried(moto_server: S3Server) -> None:
    """https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-requests.html:
    409 ConditionalRequestConflict on a conditional PUT, completion or copy means retry."""
    fresh = aiobucket.Preconditions(not_exists=True)
    with FaultProxy(moto_server.endpoint) as proxy, bucket_at(moto_server, proxy.url) as b:
        conflict = s3_error(409, "ConditionalRequestConflict", "A conflicting operation occurred")
        puts = proxy.add_rule(conflict, method="PUT", header="If-None-Match", times=2)
        completes = proxy.add_rule(conflict, method="POST", query="uploadId")
        await write(b, "single", b"x", preconditions=fresh)
        await write(b, "multi", payload(PART + 1), preconditions=fresh)
        await b.copy("single", "copy", preconditions=fresh)
        assert puts.hits == 2 and completes.hits == 1
        assert await b.exists("copy") and (await b.attrs("multi")).size == PART + 1


async def test_409_that_never_clears_is_a_backend_error_not_a_lost_race(moto_server: S3Server) -> None:
    """A 409 that persists through every attempt wrote nothing and lost no race: a
    BackendError naming the conflict, never PreconditionFailed (conditional-requests.html)."""
    fresh = aiobucket.Preconditions(not_exists=True)
    with FaultProxy(moto_server.endpoint) as proxy, bucket_at(moto_server, proxy.url) as b:
        conflict = s3_error(409, "ConditionalRequestConflict", "A conflicting operation occurred")
        puts = proxy.add_rule(conflict, method="PUT", header="If-None-Match", times=None)
        persisted = r"ConditionalRequestConflict.*after 3 attempts"
        with pytest.raises(aiobucket.BackendError, match=persisted) as err:
            await write(b, "k", b"x", preconditions=fresh)
        assert not isinstance(err.value, aiobucket.PreconditionFailed)
        assert puts.hits == 3 and not await b.exists("k")


# -- item 3: the bucket options ----------------------------------------------------------


async def test_a_policy_requiring_sse_accepts_uploads_once_sse_is_set(moto_server: S3Server) -> None:
    """https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html
    (requiring SSE-KMS): without the option uploads are refused; with sse="aws:kms"
    single PUTs, multipart uploads and copies go through. UploadPart carries no SSE header
    (S3 refuses it there)."""
    with KmsBucket(moto_server.endpoint, require_sse=True) as kms:
        with bucket_at(moto_server, kms.url) as plain, pytest.raises(aiobucket.PermissionDenied):
            await write(plain, "k", b"x")
        with bucket_at(moto_server, kms.url, sse="aws:kms", sse_kms_key_id="alias/app", bucket_key=True) as b:
            await write(b, "single", b"x")
            await write(b, "multi", payload(PART + 3, seed=4))
            await b.copy("single", "copy")
            assert (await whole_read(b, "multi"))[1] == payload(PART + 3, seed=4)
        parts = [r for r in kms.seen("PUT") if "partNumber" in r.query]
        assert parts and all("x-amz-server-side-encryption" not in r.headers for r in parts)
        created = [r for r in kms.seen() if r.headers.get("x-amz-server-side-encryption") == "aws:kms"]
        assert {r.headers["x-amz-server-side-encryption-aws-kms-key-id"] for r in created} == {"alias/app"}
        assert {r.headers["x-amz-server-side-encryption-bucket-key-enabled"] for r in created} == {"true"}


async def test_sse_c_requester_pays_and_expected_owner_reach_every_request(moto_server: S3Server) -> None:
    """SSE-C (https://docs.aws.amazon.com/AmazonS3/latest/userguide/ServerSideEncryptionCustomerKeys.html):
    the key and its MD5 on every read, head, part upload, completion and copy (as source
    and destination); x-amz-request-payer and x-amz-expected-bucket-owner on every request."""
    key = bytes(range(32))
    b64 = base64.b64encode(key).decode()
    md5 = base64.b64encode(hashlib.md5(key).digest()).decode()
    options = {"sse_customer_key": b64, "request_payer": "requester", "expected_owner": OWNER}
    with FaultProxy(moto_server.endpoint) as proxy, bucket_at(moto_server, proxy.url, **options) as b:
        await write(b, "small", b"secret")
        await write(b, "multi", payload(PART + 2, seed=5))
        assert await b.download("small").read() == b"secret"
        assert await b.exists("multi")
        await b.copy("small", "copy")
        assert [e.name async for _, e in b.list()] == ["copy", "multi", "small"]
        await b.remove("copy")
        await proxy.settled()
    for r in proxy.requests:
        assert r.header("x-amz-request-payer") == "requester", r.target
        assert r.header("x-amz-expected-bucket-owner") == OWNER, r.target
        if "list-type" in r.query or r.method == "DELETE":
            continue
        assert r.header("x-amz-server-side-encryption-customer-algorithm") == "AES256", r.target
        assert r.header("x-amz-server-side-encryption-customer-key") == b64
        assert r.header("x-amz-server-side-encryption-customer-key-md5") == md5
        if r.header("x-amz-copy-source"):
            assert r.header("x-amz-copy-source-server-side-encryption-customer-key") == b64
            assert r.header("x-amz-source-expected-bucket-owner") == OWNER


async def test_a_wrong_expected_owner_is_refused(moto_server: S3Server) -> None:
    """x-amz-expected-bucket-owner names another account: S3 answers 403 AccessDenied
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucket-owner-condition.html)."""
    with KmsBucket(moto_server.endpoint) as kms:
        with (
            bucket_at(moto_server, kms.url, expected_owner="111111111111") as b,
            pytest.raises(aiobucket.PermissionDenied),
        ):
            await write(b, "k", b"x")
        with bucket_at(moto_server, kms.url, expected_owner=kms.owner) as b:
            await write(b, "k", b"x")


async def test_signed_urls_and_forms_carry_the_sse_options(moto_server: S3Server) -> None:
    """A presigned PUT signs x-amz-server-side-encryption and x-amz-request-payer as boto3
    does (headers the uploader must send; a policy requiring them is then met); a form
    pins SSE as a field; SSE-C buckets refuse to sign (the browser would need the key)."""
    from datetime import timedelta

    with bucket_at(moto_server, moto_server.endpoint, sse="aws:kms", request_payer="requester") as b:
        url = await b.signed_upload_url("k", ttl=timedelta(minutes=5))
        # As boto3 presigns them: signed headers that the uploader sends along.
        assert "X-Amz-SignedHeaders=host%3Bx-amz-request-payer%3Bx-amz-server-side-encryption" in url
        form = await b.signed_upload_form("k", ttl=timedelta(minutes=5), max_size=1000)
        assert form.fields["x-amz-server-side-encryption"] == "aws:kms"
    with (
        bucket_at(
            moto_server, moto_server.endpoint, sse_customer_key=base64.b64encode(b"k" * 32).decode()
        ) as b,
        pytest.raises(aiobucket.NotSupported, match="SSE-C"),
    ):
        await b.signed_download_url("k", ttl=timedelta(minutes=5))


def test_unknown_option_values_are_refused_naming_the_allowed_ones() -> None:
    from aiobucket.providers.s3._settings import parse_settings

    def parse(**options: object) -> object:
        return parse_settings(config.settings_from("b", {"url": "s3://b", **options}), "b")

    with pytest.raises(aiobucket.InvalidArgument, match="'AES256', 'aws:kms'"):
        parse(sse="aws:kms:dsse2")
    with pytest.raises(aiobucket.InvalidArgument, match="'requester'"):
        parse(request_payer="bucket-owner")
    with pytest.raises(aiobucket.InvalidArgument, match="12-digit"):
        parse(expected_owner="12345")
    with pytest.raises(aiobucket.InvalidArgument, match="base64 of 32 bytes"):
        parse(sse_customer_key="c2hvcnQ=")
    with pytest.raises(aiobucket.InvalidArgument, match="not both"):
        parse(sse="AES256", sse_customer_key=base64.b64encode(b"k" * 32).decode())
    with pytest.raises(aiobucket.InvalidArgument, match="need sse = 'aws:kms'"):
        parse(sse="AES256", bucket_key=True)
    with pytest.raises(aiobucket.InvalidArgument, match="AIOBUCKET_UNSET_SSE_C"):
        parse(sse_customer_key_env="AIOBUCKET_UNSET_SSE_C")
    s = parse(sse_kms_key_id="alias/x")
    assert s.sse == "aws:kms" and "secret" not in repr(s)  # type: ignore[attr-defined]


# -- item 2: objects other clients wrote with CRC32 or CRC64NVME ----------------------------


@pytest.mark.parametrize("algorithm", ["CRC64NVME", "CRC32"])
async def test_objects_with_other_full_object_checksums_are_verified(
    moto_server: S3Server, algorithm: str
) -> None:
    """https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html:
    since 2025 SDKs write CRC64NVME (or CRC32) full-object checksums, and KMS ETags are no
    MD5. aiobucket verifies whole reads against them; a flipped byte is IntegrityError."""
    import boto3

    data = payload(300_000, seed=6)
    with FaultProxy(moto_server.endpoint) as proxy, bucket_at(moto_server, proxy.url) as b:
        client = boto3.client(
            "s3", endpoint_url=moto_server.endpoint, region_name=moto_server.region,
            aws_access_key_id=moto_server.access_key, aws_secret_access_key=moto_server.secret_key,
        )  # fmt: skip
        key = config.resolve(b.name).key_prefix + "other"
        client.put_object(Bucket=moto_server.bucket, Key=key, Body=data, ChecksumAlgorithm=algorithm)
        # The persona's rule: the ETag is no MD5 on KMS, so only the CRC can vouch.
        proxy.add_rule(
            Rewrite("response", {"x-amz-server-side-encryption": "aws:kms"}),
            method="GET", times=None,
        )  # fmt: skip
        attrs, got = await whole_read(b, "other")
        assert got == data and attrs.md5 is None and attrs.verified_by == algorithm.lower()
        proxy.clear()
        proxy.add_rule(FlipByte(1234, in_object=True), method="GET", times=None)
        with pytest.raises(aiobucket.IntegrityError, match=algorithm.lower()):
            await b.download("other").read()


def test_kms_etag_is_its_own_inverse() -> None:
    assert (
        kms_etag(kms_etag('"0123456789abcdef0123456789abcdef-3"')) == '"0123456789abcdef0123456789abcdef-3"'
    )


async def test_sse_c_round_trip_on_a_server_that_enforces_it(s3_server: S3Server) -> None:
    """SeaweedFS enforces SSE-C as AWS does (ServerSideEncryptionCustomerKeys.html): every
    read, HEAD, part, completion and copy must carry the key. With the option set all of
    them work, whole reads stay verified (by the stored CRC32C: the ETag is no MD5), and
    a bucket configured without the key cannot read the object."""
    key = base64.b64encode(random.Random(7).randbytes(32)).decode()
    data = payload(PART + 17, seed=8)
    with bucket_at(s3_server, s3_server.endpoint, sse_customer_key=key) as b:
        await write(b, "single", b"secret")
        await write(b, "multi", data, preconditions=aiobucket.Preconditions(not_exists=True))
        assert await b.exists("multi") and (await b.attrs("single")).size == 6
        attrs, got = await whole_read(b, "multi")
        assert got == data and attrs.md5 is None and attrs.verified_by == "crc32c"
        await b.copy("single", "copy")
        assert await b.download("copy").read() == b"secret"
        prefix = config.resolve(b.name).key_prefix
        with (
            config.override({"nokey": s3_server.settings(key_prefix=prefix)}),
            pytest.raises(aiobucket.InvalidArgument, match="customer key"),
        ):
            await aiobucket.Bucket("nokey").download("single").read()
        await b.remove("copy")
        assert [item async for item in b.remove_many(["single", "multi"])] == [
            (None, "single"),
            (None, "multi"),
        ]


async def test_a_signed_upload_url_works_with_its_signed_sse_header(s3_server: S3Server) -> None:
    """SeaweedFS checks presigned signatures as AWS does
    (https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html): the
    uploader sends the signed x-amz-server-side-encryption header and the PUT is stored
    encrypted; without it the signature does not match and nothing is stored."""
    from datetime import timedelta

    import aiohttp

    with bucket_at(s3_server, s3_server.endpoint, sse="AES256") as b:
        url = await b.signed_upload_url("k", ttl=timedelta(minutes=5))
        async with aiohttp.ClientSession() as http:
            async with http.put(url, data=b"unsigned header left out") as answer:
                assert answer.status == 403
            assert not await b.exists("k")
            headers = {"x-amz-server-side-encryption": "AES256"}
            async with http.put(url, data=b"encrypted at rest", headers=headers) as answer:
                assert answer.status == 200, await answer.text()
                assert answer.headers.get("x-amz-server-side-encryption") == "AES256"
        assert await b.download("k").read() == b"encrypted at rest"
