"""The S3 request path under injected faults: each finding of issue 11, through the public API.

A FaultProxy (tests/faultproxy.py) sits between the provider and a real SeaweedFS:
it answers chosen requests with errors, resets connections, applies a request and
loses its response, flips bytes and lies about lengths, and counts every request.
Backoff is configured small (``FAST``) so retries are quick; the cancellation test
configures it large instead, so a cancel is sure to land in a backoff.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import pytest
from faultproxy import (
    FaultProxy,
    FlipByte,
    LieLength,
    ResetRequest,
    ResetResponse,
    Respond,
    lose_response,
    s3_error,
)
from servers.seaweedfs import S3Server

import aiobucket
from aiobucket import Preconditions, config

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024
PART = 5 * MiB
FAST = {"backoff_base": 0.01, "backoff_max": 0.05, "max_attempts": 4}

OBJECT_PATH = re.compile(r"/[^/]+/t-[0-9a-f]{12}/")  # /<cloud bucket>/<test prefix>/<key>


@pytest.fixture(params=["s3", "moto"])
def backend(request: pytest.FixtureRequest) -> S3Server:
    """SeaweedFS, and moto (AWS's own conditional-write semantics); named ``backend`` so
    @pytest.mark.quirk applies."""
    raw = os.environ.get("AIOBUCKET_BACKENDS", "")
    names = [n.strip() for n in raw.split(",") if n.strip()]
    if names and request.param not in names:
        pytest.skip(f"{request.param} not in AIOBUCKET_BACKENDS")
    server: S3Server = request.getfixturevalue("s3_server" if request.param == "s3" else "moto_server")
    return server


@pytest.fixture(autouse=True)
async def _close_clients(anyio_backend: str) -> AsyncIterator[None]:
    yield
    await aiobucket.aclose()


def payload(n: int, seed: int = 0) -> bytes:
    import random

    block = random.Random(seed).randbytes(64 * 1024)
    return (block * (n // len(block) + 1))[:n]


@contextmanager
def proxied(
    server: S3Server, *, versioned: bool = False, **extra: object
) -> Iterator[tuple[aiobucket.Bucket, FaultProxy]]:
    """A fresh bucket (isolated by a key prefix) whose requests all go through a FaultProxy."""
    name = f"t-{uuid.uuid4().hex[:12]}"
    with FaultProxy(server.endpoint) as proxy:
        settings = replace(server, endpoint=proxy.url).settings(
            versioned, key_prefix=f"{name}/", **{**FAST, **extra}
        )
        with config.override({name: settings}):
            yield aiobucket.Bucket(name, aiobucket.BucketConfig(versioned=versioned)), proxy


async def put(bucket: aiobucket.Bucket, key: str, data: bytes, **kw: Any) -> aiobucket.ObjectAttrs:
    async with bucket.upload(key, **kw) as w:
        for i in range(0, len(data), MiB):
            await w.write(data[i : i + MiB])
    return await w.close()


async def open_uploads(bucket: aiobucket.Bucket) -> list[Any]:
    from aiobucket import _runtime

    provider: Any = _runtime.provider_for(bucket.name, bucket.config)[0]
    inner = provider.inner
    resp = await inner.send("list uploads", "GET", None, query=[("uploads", ""), ("prefix", provider.prefix)])
    return re.findall(rb"<UploadId>([^<]+)</UploadId>", resp.body)


def is_copy(req: Any) -> bool:
    return req.header("x-amz-copy-source") is not None


# -- 1. a steady 500 ends in a typed error within max_attempts --------------------------------


async def test_steady_500_on_put_ends_after_max_attempts(backend: S3Server) -> None:
    with proxied(backend) as (bucket, proxy):
        proxy.add_rule(s3_error(500, "InternalError"), method="PUT", times=None)
        with pytest.raises(aiobucket.BackendError, match="after 4 attempts") as info:
            await put(bucket, "k", b"x" * 1000)
        assert not isinstance(info.value, aiobucket.ConnectionLost)
        await proxy.settled()
        assert len(proxy.matching(method="PUT")) == FAST["max_attempts"]


async def test_steady_500_on_complete_ends_after_max_attempts_and_aborts(backend: S3Server) -> None:
    with proxied(backend) as (bucket, proxy):
        proxy.add_rule(s3_error(500, "InternalError"), method="POST", query="uploadId=", times=None)
        with pytest.raises(aiobucket.BackendError, match="after 4 attempts"):
            await put(bucket, "k", payload(PART + 10), part_size=PART)
        await proxy.settled()
        assert len(proxy.matching(method="POST", query="uploadId=")) == FAST["max_attempts"]
        assert len(proxy.matching(method="DELETE", query="uploadId=")) == 1  # aborted
        assert await open_uploads(bucket) == []
        assert not await bucket.exists("k")


async def test_steady_500_on_copy_ends_after_max_attempts(backend: S3Server) -> None:
    with proxied(backend) as (bucket, proxy):
        await put(bucket, "src", b"source bytes")
        proxy.add_rule(s3_error(500, "InternalError"), method="PUT", when=is_copy, times=None)
        with pytest.raises(aiobucket.BackendError, match="after 4 attempts"):
            await bucket.copy("src", "dst")
        await proxy.settled()
        assert len([r for r in proxy.matching(method="PUT") if is_copy(r)]) == FAST["max_attempts"]


async def test_unconditional_put_and_remove_retry_on_503(backend: S3Server) -> None:
    with proxied(backend) as (bucket, proxy):
        proxy.add_rule(s3_error(503, "SlowDown"), method="PUT", times=2)
        proxy.add_rule(s3_error(503, "SlowDown"), method="DELETE", times=2)
        await put(bucket, "k", b"retried")
        assert await bucket.download("k").read() == b"retried"
        await bucket.remove("k")
        assert not await bucket.exists("k")
        await proxy.settled()
        assert [r.status for r in proxy.matching(method="PUT")] == [503, 503, 200]
        assert [r.status for r in proxy.matching(method="DELETE")] == [503, 503, 204]


async def test_dead_loopback_endpoint_fails_fast_and_says_so(
    backend: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    from servers._proc import free_ports

    from aiobucket.providers._http.retry import RetryPolicy

    backoffs: list[int] = []  # every retry asks for its backoff first
    delay = RetryPolicy.delay
    monkeypatch.setattr(RetryPolicy, "delay", lambda self, n: backoffs.append(n) or delay(self, n))
    (port,) = free_ports(1)
    dead = replace(backend, endpoint=f"http://127.0.0.1:{port}")
    name = f"t-{uuid.uuid4().hex[:12]}"
    with config.override({name: dead.settings(False, backoff_base=5.0)}):
        bucket = aiobucket.Bucket(name)
        with pytest.raises(aiobucket.BackendError, match=r"\(1 attempt\)") as info:
            await bucket.attrs("x")
        assert backoffs == []  # one attempt and no backoff (which would sleep up to 5 s)
        assert "cannot reach S3" in str(info.value)


# -- 2. a cancel during a backoff ends it at once ---------------------------------------------


@pytest.mark.parametrize("size", [1000, PART + 10], ids=["single-put", "multipart"])
async def test_cancel_during_503_backoff_returns_at_once(backend: S3Server, size: int) -> None:
    backoff = 30.0  # every backoff sleeps up to 30 s: a cancel that waited for one would show
    with proxied(
        backend, backoff_base=backoff, backoff_max=backoff, max_attempts=10, retry_deadline=1000
    ) as (bucket, proxy):
        commit = {"method": "PUT"} if size < PART else {"method": "POST", "query": "uploadId="}
        proxy.add_rule(s3_error(503, "SlowDown"), times=None, **commit)  # type: ignore[arg-type]
        loop = asyncio.get_running_loop()
        task = asyncio.create_task(put(bucket, "k", payload(size), part_size=PART))
        while not proxy.matching(**commit):  # type: ignore[arg-type]  # noqa: ASYNC110 - another thread
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # the 503 came back at once: now in a backoff (or a retry)
        cancelled_at = loop.time()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        took = loop.time() - cancelled_at
        print(f"cancel during a backoff of up to {backoff:.0f} s returned in {took * 1000:.1f} ms")
        assert took < backoff / 30  # generous: the cancel did not wait out the backoff
        await proxy.settled()
        assert len(proxy.matching(**commit)) <= 3  # type: ignore[arg-type]
        assert not await bucket.exists("k")
        assert await open_uploads(bucket) == []


# -- 3. a retried body is resent whole -----------------------------------------------------------


@pytest.mark.parametrize("size", [300 * 1024, 3 * MiB], ids=["300KiB", "3MiB"])
async def test_dropped_connection_resends_the_whole_body(backend: S3Server, size: int) -> None:
    data = payload(size, seed=3)
    with proxied(backend, read_timeout=5) as (bucket, proxy):
        proxy.add_rule(ResetRequest(after=size // 3), method="PUT")
        attrs = await put(bucket, "k", data)
        assert attrs.size == size
        assert await bucket.download("k").read() == data
        await proxy.settled()
        puts = proxy.matching(method="PUT")
        assert len(puts) == 2
        assert puts[1].body_length == size and puts[1].status == 200


async def test_dropped_connection_resends_a_whole_part(backend: S3Server) -> None:
    data = payload(2 * PART + 7, seed=4)
    with proxied(backend, read_timeout=5) as (bucket, proxy):
        proxy.add_rule(ResetRequest(after=MiB), method="PUT", query="partNumber=2")
        await put(bucket, "k", data, part_size=PART)
        assert await bucket.download("k").read() == data
        await proxy.settled()
        part2 = proxy.matching(method="PUT", query="partNumber=2")
        assert [r.body_length for r in part2][-1] == PART and len(part2) == 2


# -- 4. a lost response to a conditional write is our own success -----------------------------


@pytest.mark.parametrize("pre", ["not_exists", "if_match"])
async def test_lost_response_conditional_put_reports_success(backend: S3Server, pre: str) -> None:
    with proxied(backend) as (bucket, proxy):
        preconditions = Preconditions(not_exists=True)
        if pre == "if_match":
            old = await put(bucket, "k", b"old")
            preconditions = Preconditions(if_match=old.etag)
        proxy.clear()
        proxy.add_rule(lose_response(), method="PUT")
        attrs = await put(bucket, "k", b"ours", preconditions=preconditions)
        assert await bucket.download("k").read() == b"ours"
        assert attrs.etag == (await bucket.attrs("k")).etag
        await proxy.settled()
        assert [r.status for r in proxy.matching(method="PUT")] == [200, 412]


async def test_lost_response_conditional_complete_reports_success(backend: S3Server) -> None:
    data = payload(2 * PART + 3, seed=5)
    with proxied(backend) as (bucket, proxy):
        proxy.add_rule(lose_response(), method="POST", query="uploadId=")
        attrs = await put(bucket, "k", data, part_size=PART, preconditions=Preconditions(not_exists=True))
        assert await bucket.download("k").read() == data
        assert attrs.size == len(data) and attrs.etag == (await bucket.attrs("k")).etag
        await proxy.settled()
        completes = proxy.matching(method="POST", query="uploadId=")
        assert len(completes) == 2 and completes[0].status == 200
        assert proxy.matching(method="DELETE") == []  # the completed upload was not "aborted"


async def test_lost_response_unconditional_complete_reports_success(backend: S3Server) -> None:
    data = payload(PART + 3, seed=6)
    with proxied(backend) as (bucket, proxy):
        proxy.add_rule(lose_response(), method="POST", query="uploadId=")
        await put(bucket, "k", data, part_size=PART)
        assert await bucket.download("k").read() == data


async def test_lost_response_conditional_copy_reports_success(backend: S3Server) -> None:
    with proxied(backend) as (bucket, proxy):
        await put(bucket, "src", b"copied bytes")
        proxy.add_rule(lose_response(), method="PUT", when=is_copy)
        await bucket.copy("src", "dst", preconditions=Preconditions(not_exists=True))
        assert await bucket.download("dst").read() == b"copied bytes"
        await proxy.settled()
        statuses = [r.status for r in proxy.matching(method="PUT") if is_copy(r)]
        # SeaweedFS refuses the retry (412, resolved as ours); moto 5.2 ignores If-None-Match
        # on CopyObject and applies it again (200): either way the copy is reported stored.
        assert statuses in ([200, 412], [200, 200])


async def test_a_real_winner_still_gives_precondition_failed(backend: S3Server) -> None:
    with proxied(backend) as (bucket, proxy):
        await put(bucket, "k", b"the winner's bytes")
        # Our attempt is refused (412) and that answer is lost: the retry gets 412 again,
        # and the stored object is not ours.
        proxy.add_rule(lose_response(), method="PUT")
        with pytest.raises(aiobucket.PreconditionFailed, match="not ours"):
            await put(bucket, "k", b"ours", preconditions=Preconditions(not_exists=True))
        assert await bucket.download("k").read() == b"the winner's bytes"


async def test_unknowable_outcome_is_outcome_unknown(backend: S3Server) -> None:
    with proxied(backend) as (bucket, proxy):
        proxy.add_rule(lose_response(), method="PUT")
        # The retry is refused, and the object cannot be read back to compare.
        proxy.add_rule(s3_error(412, "PreconditionFailed"), method="PUT")
        proxy.add_rule(Respond(404), method="HEAD")
        with pytest.raises(aiobucket.OutcomeUnknown, match="may or may not"):
            await put(bucket, "k", b"ours", preconditions=Preconditions(not_exists=True))


# -- 5. a resumed download trusts nothing --------------------------------------------------------


async def _resume_answered(backend: S3Server, answer: Any) -> None:
    data = payload(3 * MiB, seed=7)
    with proxied(backend) as (bucket, proxy):
        stored = await put(bucket, "k", data)
        proxy.add_rule(ResetResponse(after=MiB), method="GET", path="/k")
        proxy.add_rule(answer(data, stored.etag), method="GET", header="range")
        got = bytearray()
        reader = bucket.download("k")
        with pytest.raises((aiobucket.ObjectChanged, aiobucket.ConnectionLost)) as info:
            async for chunk in reader:
                got += chunk
        await reader.aclose()
        assert bytes(got) == data[: len(got)]  # nothing spliced in
        return info.value  # type: ignore[return-value]


async def test_resume_answered_200_with_the_whole_object_is_refused(backend: S3Server) -> None:
    def whole(data: bytes, etag: str) -> Respond:
        return Respond(200, data, {"ETag": f'"{etag}"', "Content-Type": "application/octet-stream"})

    err = await _resume_answered(backend, whole)
    assert isinstance(err, aiobucket.ConnectionLost) and "ignored the range" in str(err)


async def test_resume_answered_with_another_etag_is_refused(backend: S3Server) -> None:
    def other(data: bytes, etag: str) -> Respond:
        rest = data[MiB:]
        return Respond(
            206,
            rest,
            {
                "ETag": '"0123456789abcdef0123456789abcdef"',
                "Content-Range": f"bytes {MiB}-{len(data) - 1}/{len(data)}",
            },
        )

    err = await _resume_answered(backend, other)
    assert isinstance(err, aiobucket.ObjectChanged)


async def test_resume_answered_at_another_offset_is_refused(backend: S3Server) -> None:
    def shifted(data: bytes, etag: str) -> Respond:
        return Respond(
            206, data[10:], {"ETag": f'"{etag}"', "Content-Range": f"bytes 10-{len(data) - 1}/{len(data)}"}
        )

    err = await _resume_answered(backend, shifted)
    assert isinstance(err, aiobucket.ConnectionLost)


# -- 6. bytes are verified both ways ---------------------------------------------------------------


@pytest.mark.quirk("checksums_unverified")
async def test_flipped_byte_on_upload_is_refused_and_nothing_stored(backend: S3Server) -> None:
    with proxied(backend) as (bucket, proxy):
        # Corruption in transit is resent once (from the buffer); corrupted again, it is final.
        proxy.add_rule(FlipByte(offset=100, where="request"), method="PUT", times=2)
        with pytest.raises(aiobucket.IntegrityError, match="nothing was stored"):
            await put(bucket, "k", payload(1000))
        assert not await bucket.exists("k")


@pytest.mark.quirk("checksums_unverified")
async def test_flipped_byte_in_a_part_is_refused_and_the_upload_aborted(backend: S3Server) -> None:
    with proxied(backend) as (bucket, proxy):
        flip = FlipByte(offset=PART - 1, where="request")
        proxy.add_rule(flip, method="PUT", query="partNumber=1", times=2)
        with pytest.raises(aiobucket.IntegrityError):
            await put(bucket, "k", payload(PART + 5), part_size=PART)
        assert not await bucket.exists("k")
        assert await open_uploads(bucket) == []


@pytest.mark.parametrize("size", [1000, 2 * MiB])
async def test_flipped_byte_on_download_is_refused(backend: S3Server, size: int) -> None:
    with proxied(backend) as (bucket, proxy):
        data = payload(size, seed=8)
        await put(bucket, "k", data)
        proxy.add_rule(FlipByte(offset=size // 2), method="GET")
        with pytest.raises(aiobucket.IntegrityError):
            await bucket.download("k").read()
        assert await bucket.download("k").read() == data  # the stored object is fine


@pytest.mark.quirk("checksums_unverified")
async def test_short_content_length_on_upload_is_refused(backend: S3Server) -> None:
    with proxied(backend) as (bucket, proxy):
        proxy.add_rule(LieLength(declared=900, where="request"), method="PUT", times=2)
        with pytest.raises(aiobucket.IntegrityError):
            await put(bucket, "k", payload(1000))
        assert not await bucket.exists("k")


async def test_short_content_length_on_download_is_never_a_short_object(backend: S3Server) -> None:
    with proxied(backend) as (bucket, proxy):
        data = payload(100_000, seed=9)
        await put(bucket, "k", data)
        proxy.add_rule(LieLength(declared=90_000), method="GET")
        with pytest.raises(aiobucket.IntegrityError):
            await bucket.download("k").read()
        # A ranged read is checked against its Content-Range: refused, never short.
        proxy.add_rule(LieLength(declared=50_000), method="GET")
        with pytest.raises(aiobucket.ConnectionLost, match="Content-Range"):
            await bucket.download("k", offset=1000, length=90_000).read()
        assert await bucket.download("k", offset=1000, length=90_000).read() == data[1000:91_000]


async def test_long_content_length_on_download_is_connection_lost(backend: S3Server) -> None:
    with proxied(backend) as (bucket, proxy):
        data = payload(100_000, seed=10)
        await put(bucket, "k", data)
        proxy.add_rule(LieLength(declared=120_000), method="GET", times=2)
        with pytest.raises(aiobucket.ConnectionLost):
            await bucket.download("k").read()
