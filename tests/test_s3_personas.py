"""The S3 store personas (tests/personas/stores.py): through each one aiobucket works, or
refuses before any I/O, and never overwrites silently; what it learns at runtime, and
what ``aiobucket doctor`` sees, match the persona's source.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing, contextmanager
from dataclasses import replace
from typing import Any

import pytest
from faultproxy import FaultProxy
from personas.stores import OSS_HOST, PERSONAS, Persona
from servers.seaweedfs import S3Server

import aiobucket
from aiobucket import NotSupported, PreconditionFailed, Preconditions, _runtime, config
from aiobucket.providers.base import MiB
from aiobucket.providers.s3 import S3Provider
from aiobucket.providers.s3._doctor import diagnose

pytestmark = pytest.mark.anyio

FAST = {"backoff_base": 0.01, "backoff_max": 0.05, "max_attempts": 3}
PART = 5 * MiB


@pytest.fixture(autouse=True)
async def _close_clients(anyio_backend: str) -> AsyncIterator[None]:
    yield
    await aiobucket.aclose()


@pytest.fixture
def case(request: pytest.FixtureRequest) -> tuple[Persona, S3Server]:
    """(persona, the real server behind it), started outside the test's event loop."""
    persona = PERSONAS[request.param]
    raw = os.environ.get("AIOBUCKET_BACKENDS", "")
    names = [n.strip() for n in raw.split(",") if n.strip()]
    if names and persona.upstream not in names:
        pytest.skip(f"{persona.upstream} not in AIOBUCKET_BACKENDS")
    server: S3Server = request.getfixturevalue("s3_server" if persona.upstream == "s3" else "moto_server")
    return persona, server


@contextmanager
def through(
    server: S3Server, persona: Persona, provider: str, **options: object
) -> Iterator[tuple[aiobucket.Bucket, FaultProxy]]:
    name = f"t-{uuid.uuid4().hex[:12]}"
    with FaultProxy(server.endpoint) as proxy:
        persona.rules(proxy)
        settings = replace(server, endpoint=proxy.url).settings(
            key_prefix=f"{name}/", **{**FAST, **persona.options, **options}
        )
        settings["url"] = str(settings["url"]).replace(f"provider={server.provider}", f"provider={provider}")
        with config.override({name: settings}):
            yield aiobucket.Bucket(name), proxy


def s3(bucket: aiobucket.Bucket) -> S3Provider:
    p: Any = _runtime.provider_for(bucket.name, bucket.config)[0]
    inner = getattr(p, "inner", p)
    assert isinstance(inner, S3Provider)
    return inner


def payload(n: int, seed: int = 0) -> bytes:
    import random

    return random.Random(seed).randbytes(n)


async def put(bucket: aiobucket.Bucket, key: str, data: bytes, **kw: Any) -> aiobucket.ObjectAttrs:
    async with bucket.upload(key, part_size=PART, **kw) as w:
        for i in range(0, len(data), MiB):
            await w.write(data[i : i + MiB])
    return await w.close()


async def get(bucket: aiobucket.Bucket, key: str) -> bytes:
    async with bucket.download(key) as r:
        return await r.read()


def writes(proxy: FaultProxy) -> int:
    proxy.wait_idle()
    return len([r for r in proxy.requests if r.method in ("PUT", "POST")])


WHOLE = [name for name, p in PERSONAS.items() if p.whole]
# Every persona: upper_etags too (a not_exists write carries no ETag back); oss has its own
# (test_oss_profile_never_overwrites_and_needs_no_fallback: it needs a resolver).
OVERWRITE = [*WHOLE, "upper_etags"]
CASES = [
    (name, provider)
    for name in OVERWRITE
    for provider in sorted({PERSONAS[name].provider, "other", *PERSONAS[name].also})
]


@pytest.mark.parametrize(("case", "provider"), CASES, indirect=["case"])
async def test_nothing_is_silently_overwritten(case: tuple[Persona, S3Server], provider: str) -> None:
    """Each persona, under its declared profile, ``other`` and the profiles of the stores it
    imitates: a not_exists write
    (single, multipart, copy) onto an existing object is refused, as PreconditionFailed
    by the store or as NotSupported before any write is sent; the object is unchanged."""
    persona, server = case
    with through(server, persona, provider) as (bucket, proxy):
        original = payload(1000, seed=1)
        await put(bucket, "k", original)
        await put(bucket, "src", b"source")
        not_exists = Preconditions(not_exists=True)
        attempts: list[tuple[str, Any]] = [
            ("single", lambda: put(bucket, "k", b"other", preconditions=not_exists)),
            ("multipart", lambda: put(bucket, "k", payload(PART + 10, seed=2), preconditions=not_exists)),
            ("copy", lambda: bucket.copy("src", "k", preconditions=not_exists)),
        ]
        for what, attempt in attempts:
            before = writes(proxy)
            with pytest.raises((PreconditionFailed, NotSupported)) as info:
                await attempt()
            if isinstance(info.value, NotSupported):
                assert writes(proxy) == before, f"{what}: NotSupported after a write was sent"
                assert "provider=" in str(info.value) or "conditional" in str(info.value)
            assert await get(bucket, "k") == original, f"{what} overwrote the object"


@pytest.mark.parametrize("case", ["ignores_conditionals"], indirect=True)
async def test_a_store_that_ignores_conditionals_would_overwrite(case: tuple[Persona, S3Server]) -> None:
    """Why the garage/gcs profiles refuse: told (wrongly) that the store honours them,
    a not_exists write through this persona overwrites. The persona is real."""
    persona, server = case
    with through(server, persona, "garage", conditional_put="native") as (bucket, _):
        await put(bucket, "k", b"first")
        await put(bucket, "k", b"second", preconditions=Preconditions(not_exists=True))
        assert await get(bucket, "k") == b"second"


@pytest.mark.parametrize("case", WHOLE, indirect=True)
async def test_round_trip_and_what_is_learnt(case: tuple[Persona, S3Server]) -> None:
    """Declared as the persona's provider: single and multipart uploads, reads, a bulk
    remove and a multipart copy work, and the provider learns what the source says."""
    persona, server = case
    with through(server, persona, persona.provider) as (bucket, _proxy):
        p = s3(bucket)
        p.copy_threshold, p.copy_part_size = PART, PART  # multipart copies at test sizes
        small, big = payload(1000, seed=3), payload(2 * PART + 7, seed=4)
        await put(bucket, "small", small)
        stored = await put(bucket, "big", big)
        assert await get(bucket, "small") == small
        assert await get(bucket, "big") == big
        if p.store.multipart_checksum != "full_object":
            assert stored.crc32c is None  # not whole-object verified, and it says so
        copied = await bucket.copy("big", "big-copy")
        assert copied.size == len(big) and await get(bucket, "big-copy") == big
        async with aclosing(bucket.remove_many(["small", "big", "big-copy", "missing"])) as results:
            errors = {key: err for err, key in [item async for item in results]}
        assert errors["small"] is None and errors["big"] is None and errors["big-copy"] is None
        assert isinstance(errors["missing"], aiobucket.ObjectNotFound)
        for field_name, value in persona.learns.items():
            assert getattr(p.store, field_name) == value, field_name
        caps = await bucket.capabilities()
        assert caps.store == persona.provider


@pytest.mark.parametrize("case", WHOLE, indirect=True)
async def test_doctor_sees_the_persona(case: tuple[Persona, S3Server]) -> None:
    persona, server = case
    with through(server, persona, persona.provider) as (bucket, _):
        p = s3(bucket)
        d = await diagnose(p, f"{bucket.name}/")
        seen = {k: d.observed[k] for k in persona.observed}
        assert seen == persona.observed, d.notes


@pytest.mark.parametrize("case", ["ignores_conditionals"], indirect=True)
async def test_precheck_refuses_outside_a_race_window(case: tuple[Persona, S3Server]) -> None:
    """conditional_put=precheck on a store that ignores the headers: aiobucket HEADs first,
    so a not_exists write onto an existing object is refused (only a race can slip by)."""
    persona, server = case
    options = {
        "conditional_put": "precheck",
        "conditional_complete": "precheck",
        "conditional_copy": "precheck",
    }
    with through(server, persona, "garage", **options) as (bucket, _):
        await put(bucket, "k", b"first")
        await put(bucket, "src", b"source")
        not_exists = Preconditions(not_exists=True)
        with pytest.raises(PreconditionFailed):
            await put(bucket, "k", b"second", preconditions=not_exists)
        with pytest.raises(PreconditionFailed):
            await put(bucket, "k", payload(PART + 10, seed=5), preconditions=not_exists)
        with pytest.raises(PreconditionFailed):
            await bucket.copy("src", "k", preconditions=not_exists)
        assert await get(bucket, "k") == b"first"
        await put(bucket, "fresh", b"new", preconditions=not_exists)  # and a fresh key is written
        assert await get(bucket, "fresh") == b"new"


@pytest.mark.parametrize("case", ["b2"], indirect=True)
async def test_a_head_refused_for_checksum_mode_is_resent_without_it(case: tuple[Persona, S3Server]) -> None:
    """B2 answers 400, with no body, to a HEAD carrying x-amz-checksum-mode (asked before a
    whole read is verified): aiobucket resends it once without the header and learns."""
    persona, server = case
    with through(server, persona, "seaweedfs") as (bucket, proxy):
        p = s3(bucket)
        with pytest.raises(aiobucket.ObjectNotFound):  # not a BackendError "400"
            await p.head(f"{bucket.name}/nope", checksums=True)  # as before a verified whole read
        assert p.store.checksum_mode is False
        proxy.wait_idle()
        # (A HeadBucket may come between: a body-less 400 may also mean another region.)
        heads = [r for r in proxy.requests if r.method == "HEAD" and r.path.endswith("/nope")]
        assert [r.header("x-amz-checksum-mode") for r in heads] == ["ENABLED", None]


def _versions_page_without_marker(key: str, version: str, etag: str) -> bytes:
    """A truncated ListObjectVersions page with no NextKeyMarker, as GCS's S3 interface gives
    (issue #20's survey; the S3 API reference says the marker comes with IsTruncated)."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        "<IsTruncated>true</IsTruncated>"
        f"<Version><Key>{key}</Key><VersionId>{version}</VersionId><IsLatest>true</IsLatest>"
        f'<LastModified>2026-01-01T00:00:00.000Z</LastModified><ETag>"{etag}"</ETag><Size>1</Size>'
        "<StorageClass>STANDARD</StorageClass></Version></ListVersionsResult>"
    ).encode()


async def test_a_truncated_version_page_without_a_marker_goes_on_from_its_last_version(
    s3_server: S3Server,
) -> None:
    from faultproxy import Respond

    name = f"t-{uuid.uuid4().hex[:12]}"
    with FaultProxy(s3_server.endpoint) as proxy:
        settings = replace(s3_server, endpoint=proxy.url).settings(True, key_prefix=f"{name}/", **FAST)
        with config.override({name: settings}):
            bucket = aiobucket.Bucket(name, aiobucket.BucketConfig(versioned=True))
            a = await put(bucket, "a", b"1")
            await put(bucket, "b", b"2")
            assert a.version is not None
            page = _versions_page_without_marker(f"{name}/a", a.version, a.etag)
            proxy.add_rule(
                Respond(200, page, {"Content-Type": "application/xml"}), method="GET", query="versions"
            )
            listed = [entry async for err, entry in bucket.list_versions() if err is None and entry]
            assert [e.name for e in listed] == ["a", "b"]
            assert s3(bucket).store.version_markers is False
            proxy.wait_idle()
            follow = [r for r in proxy.requests if "versions" in r.query][1]
            assert "key-marker=" in follow.query and "version-id-marker=" in follow.query


async def test_a_conditional_copy_on_r2_goes_in_cloudflares_header(s3_server: S3Server) -> None:
    """R2 takes a copy's not_exists as cf-copy-destination-if-none-match
    (developers.cloudflare.com/r2/api/s3/extensions/; object_store's S3CopyIfNotExists::Header)."""
    name = f"t-{uuid.uuid4().hex[:12]}"
    with FaultProxy(s3_server.endpoint) as proxy:
        settings = replace(s3_server, endpoint=proxy.url).settings(key_prefix=f"{name}/", **FAST)
        settings["url"] = str(settings["url"]).replace("provider=seaweedfs", "provider=r2")
        with config.override({name: settings}):
            bucket = aiobucket.Bucket(name)
            await put(bucket, "src", b"source")
            await bucket.copy("src", "dst", preconditions=Preconditions(not_exists=True))
            proxy.wait_idle()
            (copy,) = [r for r in proxy.requests if r.header("x-amz-copy-source")]
            assert copy.header("cf-copy-destination-if-none-match") == "*"
            assert copy.header("if-none-match") is None


async def test_part_copy_if_match_false_pins_the_source_by_a_head(s3_server: S3Server) -> None:
    """part_copy_if_match=false (a store that refuses or ignores x-amz-copy-source-if-match on
    UploadPartCopy): the parts go without it, and a HEAD after them pins the source."""
    name = f"t-{uuid.uuid4().hex[:12]}"
    with FaultProxy(s3_server.endpoint) as proxy:
        settings = replace(s3_server, endpoint=proxy.url).settings(
            key_prefix=f"{name}/", part_copy_if_match="false", **FAST
        )
        with config.override({name: settings}):
            bucket = aiobucket.Bucket(name)
            p = s3(bucket)
            p.copy_threshold, p.copy_part_size = PART, PART
            data = payload(2 * PART + 7, seed=10)
            await put(bucket, "src", data)
            proxy.clear()
            await bucket.copy("src", "dst")
            assert await get(bucket, "dst") == data
            proxy.wait_idle()
            parts = [r for r in proxy.requests if r.header("x-amz-copy-source") and "partNumber=" in r.query]
            assert len(parts) == 3
            assert all(r.header("x-amz-copy-source-if-match") is None for r in parts)
            last_part = max(proxy.requests.index(r) for r in parts)
            heads = [r for r in proxy.requests[last_part:] if r.method == "HEAD" and r.path.endswith("/src")]
            assert heads, "the source was not pinned by a HEAD after the parts"


async def test_a_multipart_copy_stays_within_the_stores_max_parts(s3_server: S3Server) -> None:
    """Scaleway allows 1,000 parts (rclone Scaleway.yaml): a copy's parts grow to fit
    ``max_parts``; here 2, so a source of two parts and a bit goes in two bigger parts."""
    name = f"t-{uuid.uuid4().hex[:12]}"
    with FaultProxy(s3_server.endpoint) as proxy:
        settings = replace(s3_server, endpoint=proxy.url).settings(key_prefix=f"{name}/", max_parts=2, **FAST)
        with config.override({name: settings}):
            bucket = aiobucket.Bucket(name)
            p = s3(bucket)
            p.copy_threshold, p.copy_part_size = PART, PART
            data = payload(2 * PART + 7, seed=8)
            async with bucket.upload("src", part_size=3 * PART) as w:  # one PUT: within 2 parts
                await w.write(data)
            proxy.clear()
            await bucket.copy("src", "dst")
            assert await get(bucket, "dst") == data
            proxy.wait_idle()
            part_copies = [
                r for r in proxy.requests if r.header("x-amz-copy-source") and "partNumber=" in r.query
            ]
            assert len(part_copies) == 2


async def test_an_upload_of_known_size_grows_its_parts_to_the_stores_max_parts(s3_server: S3Server) -> None:
    """upload(size=N): the part size grows so that N bytes fit ``max_parts`` (here 2); a
    stream of unknown size with the same part size is refused before part 3 is sent."""
    name = f"t-{uuid.uuid4().hex[:12]}"
    with FaultProxy(s3_server.endpoint) as proxy:
        settings = replace(s3_server, endpoint=proxy.url).settings(key_prefix=f"{name}/", max_parts=2, **FAST)
        with config.override({name: settings}):
            bucket = aiobucket.Bucket(name)
            data = payload(2 * PART + 7, seed=9)
            async with bucket.upload("k", part_size=PART, size=len(data)) as w:
                for i in range(0, len(data), MiB):
                    await w.write(data[i : i + MiB])
            await w.close()
            assert await get(bucket, "k") == data
            proxy.wait_idle()
            parts = [r for r in proxy.requests if r.method == "PUT" and "partNumber=" in r.query]
            assert len(parts) == 2
            with pytest.raises(aiobucket.InvalidArgument, match="part_size"):
                await put(bucket, "unknown-size", data)


@pytest.mark.parametrize("case", ["upper_etags"], indirect=True)
async def test_upper_case_etags_are_compared_without_case(case: tuple[Persona, S3Server]) -> None:
    """OSS's upper-case ETags: an upload is still recognised as ours (its MD5), a whole read
    is verified, and a lost conditional upload is resolved as our own success, not as a lost
    race. (Requests that carry an ETag back, If-Match or a completion's part list, cannot be
    imitated here: the server behind compares its own lower-case ETags, and the proxy cannot
    edit a signed header or a body.)"""
    import hashlib

    from faultproxy import lose_response

    persona, server = case
    with through(server, persona, "seaweedfs") as (bucket, proxy):
        md5 = hashlib.md5(b"hello").hexdigest()
        small = await put(bucket, "small", b"hello")
        assert small.etag == md5.upper() and small.md5 == md5
        assert (await bucket.attrs("small")).md5 == md5
        assert await get(bucket, "small") == b"hello"
        proxy.add_rule(lose_response(), method="PUT", header="If-None-Match")
        attrs = await put(bucket, "k", b"mine", preconditions=Preconditions(not_exists=True))
        assert await get(bucket, "k") == b"mine" and attrs.size == 4


def _loopback_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """Resolve the OSS persona's names (``*.oss-persona.test``) to 127.0.0.1 for this test:
    bucket subdomains of 127.0.0.1 cannot be addressed. Every client of the event loop
    resolves through ``socket.getaddrinfo`` (in the loop's executor)."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and (host == OSS_HOST or host.endswith("." + OSS_HOST)):
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@contextmanager
def through_oss(
    server: S3Server, monkeypatch: pytest.MonkeyPatch, provider: str
) -> Iterator[tuple[aiobucket.Bucket, FaultProxy]]:
    _loopback_names(monkeypatch)
    name = f"t-{uuid.uuid4().hex[:12]}"
    with FaultProxy(server.endpoint) as proxy:
        PERSONAS["oss"].rules(proxy)
        endpoint = f"http://{OSS_HOST}:{proxy.port}"
        settings = replace(server, endpoint=endpoint).settings(key_prefix=f"{name}/", **FAST)
        url = str(settings["url"]).replace("&path_style=true", "")
        settings["url"] = url.replace(f"provider={server.provider}", f"provider={provider}")
        with config.override({name: settings}):
            yield aiobucket.Bucket(name), proxy


@pytest.mark.parametrize("case", ["oss"], indirect=True)
async def test_oss_refuses_path_style_and_aiobucket_moves_the_bucket_into_the_host(
    case: tuple[Persona, S3Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Declared ``other`` (path style), through the OSS persona: the first request is
    refused with SecondLevelDomainForbidden, resent once with the bucket in the host, and
    the provider keeps virtual-host addressing; upper-case ETags are still our MD5s."""
    import hashlib

    _, server = case
    with through_oss(server, monkeypatch, "other") as (bucket, proxy):
        attrs = await put(bucket, "k", b"hello")
        assert s3(bucket).store.addressing == "virtual"
        assert attrs.md5 == hashlib.md5(b"hello").hexdigest()
        assert await get(bucket, "k") == b"hello"
        proxy.wait_idle()
        refused = [r for r in proxy.requests if not (r.header("host") or "").startswith(server.bucket + ".")]
        assert len(refused) == 1, [(r.method, r.header("host")) for r in proxy.requests]


@pytest.mark.parametrize("case", ["oss"], indirect=True)
async def test_oss_profile_never_overwrites_and_needs_no_fallback(
    case: tuple[Persona, S3Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Declared ``oss`` (inferred from aliyuncs.com in real use): virtual-host from the first
    request, upper-case ETags compared without case, and a not_exists write (single,
    multipart, copy) raises NotSupported naming the store before any write is sent."""
    _, server = case
    with through_oss(server, monkeypatch, "oss") as (bucket, proxy):
        original = payload(1000, seed=1)
        await put(bucket, "k", original)
        await put(bucket, "src", b"source")
        assert (await bucket.attrs("k")).etag.isupper()
        not_exists = Preconditions(not_exists=True)
        attempts: list[tuple[str, Any]] = [
            ("single", lambda: put(bucket, "k", b"other", preconditions=not_exists)),
            ("multipart", lambda: put(bucket, "k", payload(PART + 10, seed=2), preconditions=not_exists)),
            ("copy", lambda: bucket.copy("src", "k", preconditions=not_exists)),
        ]
        for what, attempt in attempts:
            before = writes(proxy)
            with pytest.raises(NotSupported, match="oss") as info:
                await attempt()
            assert writes(proxy) == before, f"{what}: NotSupported after a write was sent"
            assert "provider=" in str(info.value) or "conditional" in str(info.value)
            assert await get(bucket, "k") == original, f"{what} overwrote the object"
        proxy.wait_idle()
        assert all((r.header("host") or "").startswith(server.bucket + ".") for r in proxy.requests)


@pytest.mark.parametrize("case", ["oss"], indirect=True)
async def test_doctor_through_oss(case: tuple[Persona, S3Server], monkeypatch: pytest.MonkeyPatch) -> None:
    """The doctor sees OSS's upper-case ETags and agrees with provider=oss on them, and
    removes what it wrote; declared ``other`` (path style), it stops at the first refusal
    and names the option that fits: it probes nothing through a fallback."""
    _, server = case
    with through_oss(server, monkeypatch, "oss") as (bucket, _):
        d = await diagnose(s3(bucket), f"{bucket.name}/")
        assert d.observed["etag_upper"] is True and d.agrees("etag_upper"), d.notes
        assert "cleanup" not in d.notes
        assert [e async for e in bucket.list()] == []
    refused = pytest.raises(aiobucket.BucketError, match="addressing=virtual")
    with through_oss(server, monkeypatch, "other") as (bucket, _), refused:
        await diagnose(s3(bucket), f"{bucket.name}/")


@pytest.mark.parametrize("case", ["upper_etags"], indirect=True)
async def test_doctor_sees_upper_case_etags(case: tuple[Persona, S3Server]) -> None:
    persona, server = case
    with through(server, persona, "seaweedfs") as (bucket, _):
        d = await diagnose(s3(bucket), f"{bucket.name}/")
        assert d.observed["etag_upper"] is True and not d.agrees("etag_upper")
        assert "etag_upper=True" in d.suggestion() or "provider=oss" in d.suggestion()
