"""Buckets in another region (issue 18, item 1), against SeaweedFS behind the AWS persona.

The persona (tests/personas/aws.py) refuses every request signed for another region than
the bucket's, as the AWS documentation describes (each answer cites its page there):
301 PermanentRedirect, 307 TemporaryRedirect, 400 AuthorizationHeaderMalformed with
``<Region>``, 400 IllegalLocationConstraintException, and body-less HEAD answers. What it
does not refuse reaches the real server. The proxy counts every request, so each test
checks both the outcome and how many round trips it took.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from faultproxy import FaultProxy, Request, Respond, Stall
from personas import persona
from personas.aws import BucketInAnotherRegion, aws_error, signing_region
from servers.seaweedfs import S3Server

import aiobucket
from aiobucket import config, tracing

pytestmark = pytest.mark.anyio

FAST = {"backoff_base": 0.01, "backoff_max": 0.05, "max_attempts": 3}
ANSWERS = [
    "bucket-in-another-region",  # 301 + x-amz-bucket-region
    "bucket-in-another-region-307",  # 307, no header: HeadBucket
    "bucket-in-another-region-400",  # AuthorizationHeaderMalformed <Region>
    "bucket-in-another-region-opt-in",  # IllegalLocationConstraintException, no header: HeadBucket
]


@pytest.fixture(autouse=True)
async def _close_clients(anyio_backend: str) -> AsyncIterator[None]:
    yield
    await aiobucket.aclose()


@pytest.fixture
def no_aws_region(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """No region anywhere in the AWS environment (env, config file, profile)."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))


@contextmanager
def through(
    server: S3Server,
    proxy: FaultProxy,
    *,
    region: str | None = "us-east-1",
    versioned: bool = False,
    **extra: object,
) -> Iterator[aiobucket.Bucket]:
    name = f"t-{uuid.uuid4().hex[:12]}"
    settings = replace(server, endpoint=proxy.url).settings(
        versioned, key_prefix=f"{name}/", **{**FAST, **extra}
    )
    if region is None:
        settings["url"] = str(settings["url"]).replace(f"&region={server.region}", "")
    else:
        settings["url"] = str(settings["url"]).replace(f"region={server.region}", f"region={region}")
    with config.override({name: settings}):
        yield aiobucket.Bucket(name, aiobucket.BucketConfig(versioned=versioned))


def refused(proxy: FaultProxy) -> list[Request]:
    proxy.wait_idle()
    return [r for r in proxy.requests if r.fault is not None and r.status in (301, 307, 400)]


def head_buckets(proxy: FaultProxy) -> list[Request]:
    return [r for r in proxy.requests if BucketInAnotherRegion.is_head_bucket(r)]


@pytest.mark.parametrize("name", ANSWERS)
async def test_every_operation_follows_the_bucket_to_its_region(
    s3_server: S3Server, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    who = persona(f"aws:{name}")
    assert isinstance(who, BucketInAnotherRegion)
    with FaultProxy(s3_server.endpoint) as proxy, through(s3_server, proxy) as b:
        who.install(proxy)
        with caplog.at_level(logging.WARNING, logger="aiobucket"):
            # A body-less HEAD first (exists), then every other kind of request.
            assert await b.exists("a.txt") is False
            async with b.upload("a.txt") as w:
                await w.write(b"hello")
            assert await b.download("a.txt").read() == b"hello"
            assert (await b.attrs("a.txt")).size == 5
            await b.copy("a.txt", "b.txt")
            assert [e.name async for _, e in b.list() if e is not None] == ["a.txt", "b.txt"]
            await b.remove("b.txt")
            assert await b.exists("b.txt") is False
        proxy.wait_idle()
        # One refusal in the whole provider's life (then every request is signed right) ...
        assert len([r for r in refused(proxy) if r not in head_buckets(proxy)]) == 1
        assert {signing_region(r) for r in proxy.requests if r.fault is None} == {who.region}
        # ... a HeadBucket only where the refusal named no region ...
        assert len(head_buckets(proxy)) == (0 if who.region_header else 1)
        # ... and the wrong configuration said once.
        warnings = [r for r in caplog.records if "is in region" in r.getMessage()]
        assert len(warnings) == 1 and who.region in warnings[0].getMessage()


async def test_a_large_upload_and_its_parts_follow_too(s3_server: S3Server) -> None:
    data = bytes(range(256)) * (24 * 1024)  # 6 MiB: multipart with 5 MiB parts
    with FaultProxy(s3_server.endpoint) as proxy, through(s3_server, proxy) as b:
        BucketInAnotherRegion("ap-southeast-2", "400").install(proxy)
        async with b.upload("big.bin", part_size=5 * 1024 * 1024) as w:
            await w.write(data)
        assert await b.download("big.bin").read() == data
        assert len(refused(proxy)) == 1


async def test_concurrent_first_requests_learn_the_region_once(
    s3_server: S3Server, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncio

    with FaultProxy(s3_server.endpoint) as proxy, through(s3_server, proxy) as b:
        BucketInAnotherRegion("eu-central-1", "307", region_header=False).install(proxy)

        async def one(i: int) -> None:
            async with b.upload(f"k{i}") as w:
                await w.write(b"x" * i)

        with caplog.at_level(logging.WARNING, logger="aiobucket"):
            await asyncio.gather(*(one(i) for i in range(16)))
        proxy.wait_idle()
        # Requests sent before the move are each refused once, then follow what was learned:
        # one HeadBucket, one warning.
        assert len(head_buckets(proxy)) == 1
        assert len([r for r in caplog.records if "is in region" in r.getMessage()]) == 1
        assert sorted([e.name async for _, e in b.list() if e is not None]) == sorted(
            f"k{i}" for i in range(16)
        )


async def test_no_region_configured_is_discovered_once_before_the_first_request(
    s3_server: S3Server, no_aws_region: None, caplog: pytest.LogCaptureFixture
) -> None:
    with FaultProxy(s3_server.endpoint) as proxy, through(s3_server, proxy, region=None) as b:
        BucketInAnotherRegion("eu-west-3", "301").install(proxy)
        with caplog.at_level(logging.WARNING, logger="aiobucket"):
            async with b.upload("a") as w:
                await w.write(b"1")
            assert await b.download("a").read() == b"1"
        proxy.wait_idle()
        assert [r.method for r in head_buckets(proxy)] == ["HEAD"]  # the discovery
        assert len(refused(proxy)) == 1  # that HeadBucket, signed for us-east-1: 301 naming eu-west-3
        assert head_buckets(proxy)[0] is refused(proxy)[0]
        assert {signing_region(r) for r in proxy.requests[1:]} == {"eu-west-3"}
        assert not [r for r in caplog.records if "is in region" in r.getMessage()]  # nothing was wrong


async def test_the_right_region_costs_nothing(s3_server: S3Server) -> None:
    with FaultProxy(s3_server.endpoint) as proxy, through(s3_server, proxy, region="eu-west-1") as b:
        BucketInAnotherRegion("eu-west-1", "301").install(proxy)
        async with b.upload("a") as w:
            await w.write(b"1")
        assert await b.exists("a")
        proxy.wait_idle()
        assert [r.method for r in proxy.requests] == ["PUT", "HEAD"]
        assert not refused(proxy)


async def test_a_second_redirect_is_not_followed(s3_server: S3Server) -> None:
    """Answers that keep naming another region end after one re-route, in a typed error."""
    with FaultProxy(s3_server.endpoint) as proxy, through(s3_server, proxy) as b:
        # Whatever region the request is signed for, the answer names another one.
        def moving(req: Request) -> Respond:
            other = "eu-north-1" if signing_region(req) != "eu-north-1" else "sa-east-1"
            return aws_error(301, "PermanentRedirect", "moved", headers={"x-amz-bucket-region": other})

        from faultproxy import Answer

        proxy.add_rule(Answer(moving), method="GET", times=None)
        with pytest.raises(aiobucket.BackendError, match="is in") as info:
            await b.download("a").read()
        proxy.wait_idle()
        assert len(proxy.matching(method="GET")) == 2
        assert "request id PERSONA" in str(info.value)


@pytest.mark.parametrize("deadline", [0.2, 30.0])
async def test_a_re_route_spends_what_is_left_of_the_calls_retry_deadline(
    s3_server: S3Server, deadline: float
) -> None:
    """``retry_deadline`` runs from the start of the API call: a re-route does not reset it.

    The first PUT is held 0.5 s on its way (an outer proxy stalls it), then refused with 301
    (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html, PermanentRedirect);
    the PUT re-sent to the bucket's region meets one 503 SlowDown (same page: "Reduce your
    request rate"). The re-route is made at once either way; with a 0.2 s deadline, already
    spent, the 503 is not retried; with 30 s it is, and the object is stored.
    """
    with (
        FaultProxy(s3_server.endpoint) as inner,
        FaultProxy(inner.url) as outer,
        through(s3_server, outer, retry_deadline=deadline, backoff_base=0.001, backoff_max=0.001) as b,
    ):
        who = BucketInAnotherRegion("eu-west-1", "301")
        who.install(inner)
        inner.add_rule(
            aws_error(503, "SlowDown", "Please reduce your request rate."),
            method="PUT",
            when=lambda r: signing_region(r) == who.region,
        )
        outer.add_rule(Stall(0.5), method="PUT")
        if deadline < 0.5:
            with pytest.raises(aiobucket.BackendError, match=r"retry deadline of 0\.2 s would pass"):
                async with b.upload("a") as w:
                    await w.write(b"1")
        else:
            async with b.upload("a") as w:
                await w.write(b"1")
        inner.wait_idle()
        statuses = [r.status for r in inner.matching(method="PUT")]
        assert statuses == ([301, 503] if deadline < 0.5 else [301, 503, 200])
        assert await b.exists("a") is (deadline >= 0.5)


async def test_signed_url_and_upload_form_use_the_bucket_region(s3_server: S3Server) -> None:
    with FaultProxy(s3_server.endpoint) as proxy, through(s3_server, proxy) as b:
        BucketInAnotherRegion("eu-west-1", "400", region_header=False).install(proxy)
        async with b.upload("a.txt") as w:
            await w.write(b"signed")
        url = await b.signed_download_url("a.txt", ttl=timedelta(minutes=5))
        assert "eu-west-1" in url
        put_url = await b.signed_upload_url("p.txt", ttl=timedelta(minutes=5))
        form = await b.signed_upload_form("f.txt", max_size=100)
        assert "/eu-west-1/s3/" in form.fields["x-amz-credential"]  # the persona cannot see a form's
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as resp:
                assert resp.status == 200 and await resp.read() == b"signed"
            async with http.put(put_url, data=b"put") as resp:
                assert resp.status == 200, await resp.text()
            body = aiohttp.FormData()
            for k, v in form.fields.items():
                body.add_field(k, v)
            body.add_field("file", b"form", filename="f.txt")
            async with http.post(form.url, data=body) as resp:
                assert resp.status in (200, 204), await resp.text()
        assert await b.download("p.txt").read() == b"put"
        assert await b.download("f.txt").read() == b"form"


async def test_signed_url_discovers_the_region_first(s3_server: S3Server, no_aws_region: None) -> None:
    with FaultProxy(s3_server.endpoint) as proxy, through(s3_server, proxy, region=None) as b:
        BucketInAnotherRegion("ca-central-1", "301").install(proxy)
        url = await b.signed_download_url("x", ttl=timedelta(minutes=1))
        assert "ca-central-1" in url
        proxy.wait_idle()
        assert len(head_buckets(proxy)) == 1


async def test_error_messages_and_spans_carry_the_request_ids(s3_server: S3Server) -> None:
    events: list[tracing.TraceEvent] = []
    with FaultProxy(s3_server.endpoint) as proxy, through(s3_server, proxy) as b:
        proxy.add_rule(aws_error(403, "AccessDenied", "Access Denied"), method="GET")
        remove = tracing.add_listener(events.append)
        try:
            with pytest.raises(aiobucket.PermissionDenied) as info:
                await b.download("a").read()
        finally:
            remove()
        fault = proxy.requests[0].fault
        assert isinstance(fault, Respond)
        rid, hid = fault.headers["x-amz-request-id"], fault.headers["x-amz-id-2"]
        assert f"request id {rid}, host id {hid}" in str(info.value)
        end = [e for e in events if e.phase == "end"][-1]
        assert end.attributes["aws_request_id"] == rid
        assert end.attributes["aws_extended_request_id"] == hid


async def test_a_wrong_configured_region_is_checked_before_the_first_signed_url(s3_server: S3Server) -> None:
    with FaultProxy(s3_server.endpoint) as proxy, through(s3_server, proxy) as b:
        BucketInAnotherRegion("eu-west-2", "400", region_header=False).install(proxy)
        url = await b.signed_upload_url("x", ttl=timedelta(minutes=1))
        again = await b.signed_download_url("x", ttl=timedelta(minutes=1))
        assert "%2Feu-west-2%2Fs3%2F" in url and "%2Feu-west-2%2Fs3%2F" in again
        proxy.wait_idle()
        assert [r.method for r in proxy.requests] == ["HEAD"]  # one HeadBucket, once
        async with aiohttp.ClientSession() as http, http.put(url, data=b"abc") as resp:
            assert resp.status == 200, await resp.text()


async def test_signing_offline_uses_the_configured_region(s3_server: S3Server) -> None:
    dead = replace(s3_server, endpoint="http://127.0.0.1:9")  # nothing listens: refused at once
    name = f"t-{uuid.uuid4().hex[:12]}"
    with config.override({name: dead.settings(False, **FAST)}):
        url = await aiobucket.Bucket(name).signed_download_url("x", ttl=timedelta(minutes=1))
    assert f"%2F{s3_server.region}%2Fs3%2F" in url


async def test_a_large_single_put_sent_to_the_wrong_region_costs_no_body(s3_server: S3Server) -> None:
    data = bytes(range(256)) * (8 * 1024)  # 2 MiB: one PUT with Expect: 100-continue
    with FaultProxy(s3_server.endpoint) as proxy, through(s3_server, proxy) as b:
        BucketInAnotherRegion("eu-west-1", "301").install(proxy)
        async with b.upload("one.bin", part_size=8 * 1024 * 1024) as w:
            await w.write(data)
        assert await b.download("one.bin").read() == data
        puts = proxy.matching(method="PUT")
        assert [(r.status, r.body_length) for r in puts] == [(301, 0), (200, len(data))]


async def test_on_aws_endpoints_a_request_moves_to_the_regional_endpoint() -> None:
    """No request is sent: the endpoints come from aiobotocore's resolver for each region."""
    from aiobucket.config import BucketSettings
    from aiobucket.providers.s3 import S3Provider
    from aiobucket.providers.s3._settings import parse_settings

    options = {"access_key_id": "AKIDEXAMPLE", "secret_access_key": "secret"}
    provider = S3Provider(
        parse_settings(BucketSettings("s3://my-bucket?region=us-east-1", options=options), "b")
    )
    try:
        ep = await provider._endpoint()
        assert ep.base == "https://my-bucket.s3.us-east-1.amazonaws.com"
        moved = await provider._endpoint_for("eu-west-1", ep)
        assert (moved.base, moved.signer.region) == (
            "https://my-bucket.s3.eu-west-1.amazonaws.com",
            "eu-west-1",
        )
        china = await provider._endpoint_for("cn-north-1", ep)
        assert china.base == "https://my-bucket.s3.cn-north-1.amazonaws.com.cn"
    finally:
        await provider.aclose()


async def test_a_bodyless_400_in_the_right_region_asks_the_bucket_once(s3_server: S3Server) -> None:
    """A HEAD of a malformed version id is a body-less 400 too; once S3 has named the bucket's
    region, such answers are taken for what they are (ObjectNotFound) without asking again."""
    with FaultProxy(s3_server.endpoint) as proxy, through(s3_server, proxy, versioned=True) as b:
        BucketInAnotherRegion("us-east-1", "301").install(proxy)
        proxy.add_rule(Respond(400), method="HEAD", query="versionId=", times=None)
        for _ in range(3):
            with pytest.raises(aiobucket.ObjectNotFound):
                await b.attrs("k", version="not-a-version")
        proxy.wait_idle()
        assert len(head_buckets(proxy)) == 1
        assert len(proxy.matching(method="HEAD", query="versionId=")) == 3


async def test_a_cancel_during_discovery_leaves_nothing_behind(
    s3_server: S3Server, no_aws_region: None
) -> None:
    import asyncio

    from conformance.conftest import leaked_tasks
    from faultproxy import Stall

    with FaultProxy(s3_server.endpoint) as proxy, through(s3_server, proxy, region=None) as b:
        arrived = threading.Event()

        def head_bucket_arrives(req: Request) -> bool:
            if BucketInAnotherRegion.is_head_bucket(req):
                arrived.set()
                return True
            return False

        proxy.add_rule(Stall(None, "request"), when=head_bucket_arrives)  # first: rules are tried in order
        BucketInAnotherRegion("eu-west-1", "301").install(proxy)
        first = asyncio.ensure_future(b.exists("k"))
        assert await asyncio.to_thread(arrived.wait, 30)  # the discovery HeadBucket is on the wire
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert leaked_tasks() == []
        # The lock was released and nothing was learned: the next call discovers the region.
        assert await b.exists("k") is False
        assert len(head_buckets(proxy)) == 2
