"""GCS as a keyless production workload meets it: no key file, the metadata server, IAM signBlob.

Real parts on 127.0.0.1: fake-gcs-server (storage), the fault proxy in front of it (to see
every request and inject GCS's answers), and the persona of Google's metadata server and
IAM Credentials API (``tests/personas/gcp.py``), which signs with the test key Google
publishes beside its conformance vectors. The provider finds the persona the way it finds
Google: ``GCE_METADATA_HOST``, and the ``iam_endpoint`` option in place of
``https://iamcredentials.googleapis.com``.

Retry budgets are configured small here (the schedule is Google's, scaled down); one
test proves the defaults are Google's. No test asserts a wall-clock time beyond a
generous hang guard, except where an answer can only exist after a moment has passed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import pytest
from faultproxy import FaultProxy, Request, gcs_error
from personas.gcp import DEVSTORAGE_RW, GcpPersona, google_test_account
from servers.fakegcs import GcsServer
from vectors.gcs_v4 import POLICY_CASES, URL_CASES, when

import aiobucket
from aiobucket import config
from aiobucket.config import BucketSettings
from aiobucket.providers.gcs import _gcloud
from aiobucket.providers.gcs._post import policy_document
from aiobucket.providers.gcs._retry import RetryPolicy
from aiobucket.providers.gcs._settings import http_settings
from aiobucket.providers.gcs._sign import pem_signer, sign_v4_url, v4_request

pytestmark = [pytest.mark.anyio, pytest.mark.gcs]

GUARD = 30.0  # a hang guard only
SMALL = {"retry_initial": 0.05, "retry_cap": 0.4, "retry_deadline": 5.0, "request_timeout": 3.0}
ACCOUNT = google_test_account()


@pytest.fixture
def proxy(gcs_server: GcsServer) -> Iterator[FaultProxy]:
    with FaultProxy(gcs_server.endpoint) as p:
        yield p


@pytest.fixture
def no_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """No key file anywhere: no GOOGLE_APPLICATION_CREDENTIALS, no gcloud ADC file, no emulator."""
    for name in ("GOOGLE_APPLICATION_CREDENTIALS", "STORAGE_EMULATOR_HOST", "GCE_METADATA_ROOT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))


@contextlib.asynccontextmanager
async def on_gcp(monkeypatch: pytest.MonkeyPatch, **kw: Any) -> AsyncIterator[GcpPersona]:
    async with GcpPersona.google_test_key(**kw) as persona:
        monkeypatch.setenv("GCE_METADATA_HOST", urlsplit(persona.url).netloc)
        yield persona


@contextlib.asynccontextmanager
async def keyless_bucket(
    server: GcsServer, proxy: FaultProxy, persona: GcpPersona, **options: object
) -> AsyncIterator[aiobucket.Bucket]:
    name = f"k-{uuid.uuid4().hex[:10]}"
    settings = {
        # An endpoint that is not named an emulator: credentials are sent, as to Google.
        "url": f"gs://{server.bucket}?endpoint={proxy.url}",
        "iam_endpoint": persona.url,
        "key_prefix": f"{name}/",
        **SMALL,
        **options,
    }
    with config.override({name: settings}):
        try:
            yield aiobucket.Bucket(name)
        finally:
            await aiobucket.aclose()


def bearer(r: Request) -> str:
    value = r.header("Authorization") or ""
    assert value.startswith("Bearer "), value
    return value[len("Bearer ") :]


async def put(b: aiobucket.Bucket, key: str, data: bytes, **kw: Any) -> aiobucket.ObjectAttrs:
    async with b.upload(key, **kw) as w:
        await w.write(data)
    return await b.attrs(key)


async def read(b: aiobucket.Bucket, key: str) -> bytes:
    r = b.download(key)
    try:
        return await r.read()
    finally:
        await r.aclose()


def provider_of(b: aiobucket.Bucket) -> Any:
    from aiobucket import _runtime
    from aiobucket.providers.prefixed import PrefixedProvider

    p = _runtime.provider_for(b.name, b.config)[0]
    return p.inner if isinstance(p, PrefixedProvider) else p


# -- 1. keyless signing ----------------------------------------------------------------


async def test_keyless_bucket_signs_through_iam(
    gcs_server: GcsServer, proxy: FaultProxy, no_key: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with on_gcp(monkeypatch) as persona, keyless_bucket(gcs_server, proxy, persona) as b:
        data = os.urandom(2000)
        await put(b, "doc.bin", data)
        proxy.wait_idle()
        # Storage requests carry the metadata server's token.
        tokens = {bearer(r) for r in proxy.requests}
        assert tokens and tokens <= set(persona.tokens)

        url = await b.signed_download_url("doc.bin", ttl=timedelta(minutes=5))
        q = dict(parse_qsl(urlsplit(url).query))
        assert q["X-Goog-Credential"].startswith(ACCOUNT["client_email"] + "/")
        assert persona.email_requests == 1  # the email came from the metadata server
        [sign_token] = persona.sign_requests
        assert "https://www.googleapis.com/auth/cloud-platform" in persona.tokens[sign_token]
        # The URL works against the storage server (fake-gcs-server serves path-style GETs
        # on its own host name only, so the URL is sent there rather than via the proxy) ...
        direct = url.replace(proxy.url, gcs_server.endpoint)
        async with aiohttp.ClientSession() as s, s.get(direct) as resp:
            assert resp.status == 200 and await resp.read() == data
        # ... and signBlob's signature is the one the key itself makes, byte for byte.
        parts = urlsplit(url)
        signed_at = datetime.strptime(q.pop("X-Goog-Date"), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        for name in ("X-Goog-Signature", "X-Goog-Algorithm", "X-Goog-Credential", "X-Goog-SignedHeaders"):
            q.pop(name)
        expires = int(q.pop("X-Goog-Expires"))
        local = v4_request(
            base_url=f"{parts.scheme}://{parts.netloc}",
            path=parts.path,
            method="GET",
            seconds=expires,
            client_email=ACCOUNT["client_email"],
            now=signed_at,
            query=q,
        )
        assert await sign_v4_url(local, pem_signer(ACCOUNT["private_key"])) == url

        form = await b.signed_upload_form("up.txt", max_size=100, content_type="text/plain")
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding, rsa

        key = serialization.load_pem_private_key(ACCOUNT["private_key"].encode(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        f = form.fields
        key.public_key().verify(
            bytes.fromhex(f["x-goog-signature"]), f["policy"].encode(), padding.PKCS1v15(), hashes.SHA256()
        )
        # The same signer reproduces Google's published POST-policy signatures.
        _, signer = await provider_of(b)._signer("up.txt")
        for case in POLICY_CASES:
            i, out = case.vector["policyInput"], case.vector["policyOutput"]
            fields, _ = policy_document(
                case.bucket,
                case.key,
                case.fields,
                case.conditions,
                now=when(i["timestamp"]),
                ttl=timedelta(seconds=int(i["expiration"])),
                client_email=ACCOUNT["client_email"],
            )
            assert (await signer(fields["policy"].encode())).hex() == out["fields"]["x-goog-signature"], (
                case.id
            )


async def test_keyless_upload_url_is_signed_and_used(
    gcs_server: GcsServer, proxy: FaultProxy, no_key: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """signed_upload_url without a key: signed through signBlob exactly as the key itself would
    sign it, and a PUT to it stores the object in fake-gcs-server."""
    async with on_gcp(monkeypatch) as persona, keyless_bucket(gcs_server, proxy, persona) as b:
        url = await b.signed_upload_url("up.txt", ttl=timedelta(minutes=5), content_type="text/plain")
        assert len(persona.sign_requests) == 1
        q = dict(parse_qsl(urlsplit(url).query))
        assert q["X-Goog-Credential"].startswith(ACCOUNT["client_email"] + "/")
        parts = urlsplit(url)
        signed_at = datetime.strptime(q.pop("X-Goog-Date"), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        for name in ("X-Goog-Signature", "X-Goog-Algorithm", "X-Goog-Credential", "X-Goog-SignedHeaders"):
            q.pop(name)
        local = v4_request(
            base_url=f"{parts.scheme}://{parts.netloc}",
            path=parts.path,
            method="PUT",
            seconds=int(q.pop("X-Goog-Expires")),
            client_email=ACCOUNT["client_email"],
            now=signed_at,
            query=q,
            headers={"content-type": "text/plain"},
        )
        assert await sign_v4_url(local, pem_signer(ACCOUNT["private_key"])) == url
        direct = url.replace(proxy.url, gcs_server.endpoint)
        async with (
            aiohttp.ClientSession() as s,
            s.put(direct, data=b"uploaded", headers={"Content-Type": "text/plain"}) as resp,
        ):
            assert resp.status == 200, await resp.text()
        assert await read(b, "up.txt") == b"uploaded"


async def test_signblob_signer_reproduces_every_vector(
    gcs_server: GcsServer, proxy: FaultProxy, no_key: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Google's signed-URL vectors through IAM signBlob, byte for byte (the PEM run is in
    tests/unit/test_gcs_signing_vectors.py)."""
    async with on_gcp(monkeypatch) as persona, keyless_bucket(gcs_server, proxy, persona) as b:
        email, signer = await provider_of(b)._signer("x")
        assert email == ACCOUNT["client_email"]
        for case in URL_CASES:
            t = case.vector
            request = v4_request(
                base_url=case.base_url,
                path=case.path,
                method=t["method"],
                seconds=int(t["expiration"]),
                client_email=email,
                now=when(t["timestamp"]),
                query=t.get("queryParameters"),
                headers=t.get("headers"),
            )
            if request.canonical_request != t["expectedCanonicalRequest"]:
                continue  # the one odd vector (see test_gcs_signing_vectors.ODD)
            assert await sign_v4_url(request, signer) == t["expectedUrl"], case.id
        assert len(persona.sign_requests) == len(URL_CASES) - 1
        # One signing token, asked for with the scope IAM accepts, and reused.
        assert persona.token_requests == [("https://www.googleapis.com/auth/cloud-platform",)]


async def test_token_without_the_iam_scope_is_permission_denied(
    gcs_server: GcsServer, proxy: FaultProxy, no_key: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Compute Engine VM created with storage access scopes only.
    async with on_gcp(monkeypatch, vm_scopes=(DEVSTORAGE_RW,)) as persona:
        async with keyless_bucket(gcs_server, proxy, persona) as b:
            await put(b, "a", b"storage still works")
            with pytest.raises(aiobucket.PermissionDenied, match="cloud-platform"):
                await b.signed_download_url("a")
        assert len(persona.sign_requests) == 1  # a refusal is not retried


async def test_missing_token_creator_role_is_named(
    gcs_server: GcsServer, proxy: FaultProxy, no_key: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with on_gcp(monkeypatch, granted=False) as persona, keyless_bucket(gcs_server, proxy, persona) as b:
        with pytest.raises(
            aiobucket.PermissionDenied, match=r"roles/iam\.serviceAccountTokenCreator"
        ) as info:
            await b.signed_upload_form("f", max_size=10)
        assert ACCOUNT["client_email"] in str(info.value)


async def test_iam_api_not_enabled_is_named(
    gcs_server: GcsServer, proxy: FaultProxy, no_key: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with (
        on_gcp(monkeypatch, api_enabled=False) as persona,
        keyless_bucket(gcs_server, proxy, persona) as b,
    ):
        with pytest.raises(aiobucket.PermissionDenied, match=r"enable the IAM Service Account Credentials"):
            await b.signed_download_url("f")
        assert len(persona.sign_requests) == 1  # a refusal is not retried


async def test_signing_account_option_when_credentials_name_none(
    gcs_server: GcsServer, proxy: FaultProxy, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Credentials without an email (a gcloud user login): the signing_service_account option."""
    for name in ("STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(name, raising=False)
    async with on_gcp(monkeypatch) as persona:
        user = {"type": "authorized_user", "client_id": "c", "client_secret": "s", "refresh_token": "r"}
        path = tmp_path / "adc.json"
        path.write_text(json.dumps(user))
        async with keyless_bucket(gcs_server, proxy, persona, service_file=str(path)) as b:
            with pytest.raises(aiobucket.NotSupported, match="signing_service_account"):
                await b.signed_download_url("a")
        # The user's token endpoint is Google's; this test only checks who would sign.
        async with keyless_bucket(
            gcs_server, proxy, persona, service_file=str(path), signing_service_account="signer@p.iam"
        ) as b:
            email = await provider_of(b).http.signing_email("a")
            assert email == "signer@p.iam"


# -- 3. tokens ---------------------------------------------------------------------------


async def test_silent_metadata_server_ends_in_permission_denied(
    gcs_server: GcsServer, proxy: FaultProxy, no_key: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with on_gcp(monkeypatch, silent=True) as persona:
        opts = {"request_timeout": 0.3, "retry_deadline": 1.5, "retry_initial": 0.05, "retry_cap": 0.2}
        async with keyless_bucket(gcs_server, proxy, persona, **opts) as b:
            started = time.monotonic()
            with pytest.raises(aiobucket.PermissionDenied) as info:
                await asyncio.wait_for(b.attrs("k"), GUARD)
            took = time.monotonic() - started
        message = str(info.value)
        assert "metadata server" in message and "GOOGLE_APPLICATION_CREDENTIALS" in message
        assert persona.metadata_requests >= 2  # retried within the budget ...
        assert took < GUARD  # ... and bounded by it (1.5 s budget + one 0.3 s fetch)
        assert proxy.requests == []  # no storage request went out without a token
        print(
            f"silent metadata server: PermissionDenied after {took:.2f} s, {persona.metadata_requests} tries"
        )


async def test_silent_metadata_server_is_asked_again_within_the_default_request_timeout(
    gcs_server: GcsServer, proxy: FaultProxy, no_key: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the default 120 s request timeout, one silent fetch does not eat the whole budget:
    each metadata attempt waits at most google-auth's 3 s (scaled down here), then is retried."""
    monkeypatch.setattr(_gcloud, "METADATA_ATTEMPT_TIMEOUT", 0.2)
    async with on_gcp(monkeypatch, silent=True) as persona:
        opts = {"retry_deadline": 1.5, "retry_initial": 0.05, "retry_cap": 0.2}  # request_timeout: default
        async with keyless_bucket(gcs_server, proxy, persona, **opts) as b:
            with pytest.raises(aiobucket.PermissionDenied, match="metadata server"):
                await asyncio.wait_for(b.attrs("k"), GUARD)
        assert persona.metadata_requests >= 3


async def test_no_metadata_server_is_permission_denied_at_once(
    gcs_server: GcsServer, proxy: FaultProxy, no_key: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Off Google Cloud (metadata.google.internal does not resolve): no credentials, said so."""
    monkeypatch.setenv("GCE_METADATA_HOST", "metadata.invalid")  # RFC 6761: never resolves
    name = f"n-{uuid.uuid4().hex[:8]}"
    settings = {"url": f"gs://{gcs_server.bucket}?endpoint={proxy.url}", **SMALL}
    with config.override({name: settings}):
        with pytest.raises(aiobucket.PermissionDenied, match="metadata server") as info:
            await asyncio.wait_for(aiobucket.Bucket(name).attrs("k"), GUARD)
        await aiobucket.aclose()
    assert "emulator=true" in str(info.value)  # the usual fixes are named
    assert proxy.requests == []


async def test_metadata_server_errors_are_retried(
    gcs_server: GcsServer, proxy: FaultProxy, no_key: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with (
        on_gcp(monkeypatch, token_failures=2) as persona,
        keyless_bucket(gcs_server, proxy, persona) as b,
    ):
        with pytest.raises(aiobucket.ObjectNotFound):
            await b.attrs("nothing-here")
        assert len(persona.token_requests) == 3


async def test_401_refreshes_the_token_once(
    gcs_server: GcsServer, proxy: FaultProxy, no_key: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with on_gcp(monkeypatch) as persona, keyless_bucket(gcs_server, proxy, persona) as b:
        await put(b, "a", b"x")
        assert len(persona.token_requests) == 1
        proxy.add_rule(gcs_error(401, "Invalid Credentials", "authError"), method="GET")
        assert (await b.attrs("a")).size == 1
        proxy.wait_idle()
        first, second = proxy.matching(method="GET")[-2:]
        assert first.status == 401 and second.status == 200
        assert bearer(first) != bearer(second)
        assert len(persona.token_requests) == 2
        # A steady 401 is refused after that one refresh.
        proxy.add_rule(gcs_error(401, "Invalid Credentials", "authError"), method="GET", times=None)
        with pytest.raises(aiobucket.PermissionDenied):
            await b.attrs("a")
        assert len(persona.token_requests) == 3


async def test_signblob_401_refreshes_the_signing_token(
    gcs_server: GcsServer, proxy: FaultProxy, no_key: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with on_gcp(monkeypatch) as persona, keyless_bucket(gcs_server, proxy, persona) as b:
        await b.signed_download_url("a")
        persona.revoke_all()  # IAM now answers 401 to the cached signing token
        await b.signed_download_url("a")
        first, revoked, fresh = persona.sign_requests
        assert first == revoked != fresh and fresh in persona.tokens
        assert len(persona.token_requests) == 2


async def test_cancel_during_token_backoff(
    gcs_server: GcsServer, proxy: FaultProxy, no_key: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with on_gcp(monkeypatch, token_failures=1000) as persona:
        # Google's default schedule: the first backoff may be up to 1 s, the budget 120 s.
        async with keyless_bucket(gcs_server, proxy, persona, retry_initial=1.0, retry_deadline=120.0) as b:
            task = asyncio.create_task(b.attrs("k"))
            await asyncio.wait_for(persona.asked.wait(), GUARD)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(task, GUARD)
        assert len(persona.token_requests) <= 2


# -- 2. Google's retry budget ------------------------------------------------------------


def test_defaults_are_googles() -> None:
    _, http = http_settings(BucketSettings(url="gs://b"), "b")
    p = http.retry
    assert (p.initial, p.multiplier, p.cap, p.deadline, p.attempts) == (1.0, 2.0, 60.0, 120.0, None)
    assert p == RetryPolicy(bucket="b")
    assert all(0 <= p.delay(n) <= min(60.0, 2.0**n) for n in range(12))
    assert p.delay(0, {"Retry-After": "7"}) == 7.0 and p.delay(0, {"Retry-After": "600"}) == 60.0
    assert http.endpoint is None and not http.emulator and http.request_timeout == 120.0


async def test_429_for_a_while_then_success(
    gcs_server: GcsServer, proxy: FaultProxy, no_key: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with on_gcp(monkeypatch) as persona, keyless_bucket(gcs_server, proxy, persona) as b:
        await put(b, "a", b"abc")
        until = time.monotonic() + 1.0
        proxy.add_rule(
            gcs_error(429, "rate limit", "rateLimitExceeded"),
            method="GET",
            when=lambda r: time.monotonic() < until,
            times=None,
        )
        started = time.monotonic()
        assert (await b.attrs("a")).size == 3
        took = time.monotonic() - started
        proxy.wait_idle()
        got = [r.status for r in proxy.matching(method="GET")][-20:]
        assert got[-1] == 200 and 429 in got
        assert took < SMALL["retry_deadline"] + GUARD
        print(f"429 for 1 s: success after {took:.2f} s and {got.count(429)} refusals")


class OneWritePerObject:
    """GCS's limit, scaled: one write to an object per ``interval`` seconds, 429 otherwise.

    https://cloud.google.com/storage/quotas#objects ("a write limit to the same object name
    of once per second"); the answer is 429 rateLimitExceeded
    (https://cloud.google.com/storage/docs/json_api/v1/status-codes#429_Too_Many_Requests).
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.last: dict[str, float] = {}

    def __call__(self, r: Request) -> bool:
        now = time.monotonic()
        key = r.path + "?" + "&".join(p for p in r.query.split("&") if p.startswith("name="))
        if now - self.last.get(key, -1e9) < self.interval:
            return True  # refuse
        self.last[key] = now
        return False


async def test_concurrent_same_key_writes_fit_googles_budget(
    gcs_server: GcsServer, proxy: FaultProxy, no_key: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's failure: concurrent writes to one key at GCS's rate limit. With Google's
    schedule (scaled 10x down here with the limit: 0.1 s, x2, 6 s cap, 12 s deadline) every
    writer gets through; the old 6 attempts from 0.1 s (scaled: 0.01 s, 0.8 s cap) are shown
    for comparison, not asserted."""
    writers = 10
    scaled = {"retry_initial": 0.1, "retry_cap": 6.0, "retry_deadline": 12.0}
    old = {"retry_initial": 0.01, "retry_cap": 0.8, "retries": 6}
    outcome: dict[str, tuple[int, float]] = {}
    async with on_gcp(monkeypatch) as persona:
        for label, options in (("google", scaled), ("old", old)):
            limit = OneWritePerObject(0.1)
            rule = proxy.add_rule(
                gcs_error(429, "rate limit", "rateLimitExceeded"),
                method="POST",
                query="uploadType=multipart",
                when=limit,
                times=None,
            )
            async with keyless_bucket(gcs_server, proxy, persona, **options) as b:
                started = time.monotonic()
                results = await asyncio.wait_for(
                    asyncio.gather(
                        *(put(b, "hot", b"w%d" % i) for i in range(writers)), return_exceptions=True
                    ),
                    GUARD,
                )
                failed = sum(isinstance(r, BaseException) for r in results)
                outcome[label] = (failed, time.monotonic() - started)
            rule.times = rule.hits  # exhausted: the next phase gets its own limit
    print(f"{writers} concurrent writes to one key at 10 writes/s: {outcome}")
    assert outcome["google"][0] == 0


async def test_concurrent_not_exists_writers_have_one_winner_and_no_backend_error(
    gcs_server: GcsServer, proxy: FaultProxy, no_key: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's race at GCS's write limit, with a deadline short enough that some writers
    are still refused with 429 when it ends: one wins, every other one is PreconditionFailed
    (lost at the 412, or settled after the 429s), none BackendError."""
    writers = 10
    async with on_gcp(monkeypatch) as persona:
        proxy.add_rule(
            gcs_error(429, "rate limit", "rateLimitExceeded"),
            method="POST",
            query="uploadType=multipart",
            when=OneWritePerObject(0.2),
            times=None,
        )
        options = {"retry_initial": 0.02, "retry_cap": 0.1, "retry_deadline": 0.3}
        async with keyless_bucket(gcs_server, proxy, persona, **options) as b:
            ne = aiobucket.Preconditions(not_exists=True)
            results = await asyncio.wait_for(
                asyncio.gather(
                    *(put(b, "race", b"w%d" % i, preconditions=ne) for i in range(writers)),
                    return_exceptions=True,
                ),
                GUARD,
            )
            winners = [i for i, r in enumerate(results) if not isinstance(r, BaseException)]
            losers = [r for r in results if isinstance(r, BaseException)]
            assert len(winners) == 1, results
            assert all(type(r) is aiobucket.PreconditionFailed for r in losers), losers
            assert await read(b, "race") == b"w%d" % winners[0]
        proxy.wait_idle()
        answers = [r.status for r in proxy.matching(method="POST", query="uploadType=multipart")]
        assert 429 in answers  # the limit was met
        print(f"{writers} not_exists writers: {sum('429' in str(r) for r in losers)} settled after 429s")


async def test_503_bursts_are_ridden_out(
    gcs_server: GcsServer, proxy: FaultProxy, no_key: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with on_gcp(monkeypatch) as persona, keyless_bucket(gcs_server, proxy, persona) as b:
        for burst in (1, 3, 5):
            proxy.add_rule(gcs_error(503), method="POST", query="uploadType=multipart", times=burst)
            await put(b, f"k{burst}", b"data")
        proxy.wait_idle()
        uploads = [r.status for r in proxy.matching(method="POST", query="uploadType=multipart")]
        assert uploads.count(503) == 9 and uploads.count(200) == 3


async def test_steady_429_ends_at_the_deadline(
    gcs_server: GcsServer, proxy: FaultProxy, no_key: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with on_gcp(monkeypatch) as persona:
        async with keyless_bucket(gcs_server, proxy, persona, retry_deadline=1.0) as b:
            proxy.add_rule(gcs_error(429, "rate limit", "rateLimitExceeded"), method="GET", times=None)
            started = time.monotonic()
            with pytest.raises(aiobucket.BackendError, match="429"):
                await b.attrs("a")
            took = time.monotonic() - started
        proxy.wait_idle()
        assert len(proxy.matching(method="GET")) >= 2
        assert took < 1.0 + GUARD


async def test_not_exists_race_lost_by_429_is_precondition_failed(
    gcs_server: GcsServer, proxy: FaultProxy, no_key: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with (
        on_gcp(monkeypatch) as persona,
        keyless_bucket(gcs_server, proxy, persona, retry_deadline=1.0) as b,
    ):
        await put(b, "taken", b"the other writer's")
        proxy.add_rule(
            gcs_error(429, "rate limit", "rateLimitExceeded"),
            method="POST",
            query="ifGenerationMatch=0",
            times=None,
        )
        with pytest.raises(aiobucket.PreconditionFailed):
            await put(b, "taken", b"mine", preconditions=aiobucket.Preconditions(not_exists=True))
        assert await read(b, "taken") == b"the other writer's"


# -- 6. endpoints, billing, encryption, proxies ------------------------------------------


async def test_emulator_only_when_named(
    gcs_server: GcsServer, proxy: FaultProxy, no_key: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with on_gcp(monkeypatch) as persona:
        async with keyless_bucket(gcs_server, proxy, persona) as b:
            await b.exists("a")
        proxy.wait_idle()
        assert all(r.header("Authorization") for r in proxy.requests)  # an endpoint keeps credentials
        before = len(proxy.requests)
        name = f"e-{uuid.uuid4().hex[:8]}"
        with config.override({name: {"url": f"gs://{gcs_server.bucket}?endpoint={proxy.url}&emulator=true"}}):
            await aiobucket.Bucket(name).exists("a")
            await aiobucket.aclose()
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
        with config.override({name: {"url": f"gs://{gcs_server.bucket}"}}):
            await aiobucket.Bucket(name).exists("a")
            await aiobucket.aclose()
        proxy.wait_idle()
        emulated = proxy.requests[before:]
        assert len(emulated) == 2 and not any(r.header("Authorization") for r in emulated)
        assert len(persona.token_requests) == 1


async def test_user_project_cmek_and_if_match_parameters(
    gcs_server: GcsServer, proxy: FaultProxy, no_key: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    kms = "projects/p/locations/l/keyRings/r/cryptoKeys/k"
    async with on_gcp(monkeypatch) as persona:
        async with keyless_bucket(gcs_server, proxy, persona, user_project="billed", kms_key_name=kms) as b:
            a = await put(b, "a", b"one")
            await put(b, "a", b"two", preconditions=aiobucket.Preconditions(if_match=a.etag))
            url = await b.signed_download_url("a")
        proxy.wait_idle()
        assert all("userProject=billed" in r.query for r in proxy.requests)
        assert "userProject=billed" in url
        uploads = proxy.matching(method="POST", query="uploadType=multipart")
        assert all("kmsKeyName=" in r.query for r in uploads)
        conditional = [r for r in uploads if "ifGenerationMatch=" in r.query]
        assert len(conditional) == 1 and "ifMetagenerationMatch=" in conditional[0].query


async def test_customer_supplied_key_goes_on_every_request(
    gcs_server: GcsServer, proxy: FaultProxy, no_key: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = os.urandom(32)
    monkeypatch.setenv("MY_CSEK", base64.b64encode(key).decode())
    async with on_gcp(monkeypatch) as persona:
        async with keyless_bucket(gcs_server, proxy, persona, encryption_key_env="MY_CSEK") as b:
            await put(b, "a", b"secret")
            assert await read(b, "a") == b"secret"
            with pytest.raises(aiobucket.NotSupported, match="customer-supplied"):
                await b.signed_download_url("a")
        proxy.wait_idle()
        digest = base64.b64encode(hashlib.sha256(key).digest()).decode()
        assert proxy.requests and all(
            r.header("x-goog-encryption-key-sha256") == digest for r in proxy.requests
        )


async def test_cmek_and_csek_reach_streamed_uploads_and_copies(
    gcs_server: GcsServer, proxy: FaultProxy, no_key: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CMEK: ``kmsKeyName`` on a resumable session's start, ``destinationKmsKeyName`` on a rewrite
    (https://cloud.google.com/storage/docs/json_api/v1/objects/rewrite). CSEK: the key headers on
    every request of a resumable upload, and on a rewrite both the destination's and the source's
    (``x-goog-copy-source-encryption-*``; https://cloud.google.com/storage/docs/encryption/
    using-customer-supplied-keys#rest-csek)."""
    kms = "projects/p/locations/l/keyRings/r/cryptoKeys/k"
    big = os.urandom(300 * 1024)  # two chunks of a resumable session
    async with on_gcp(monkeypatch) as persona:
        async with keyless_bucket(gcs_server, proxy, persona, kms_key_name=kms) as b:
            await put(b, "big", big, part_size=256 * 1024)
            await b.copy("big", "copy")
        proxy.wait_idle()
        [start] = proxy.matching(method="POST", query="uploadType=resumable")
        [rewrite] = [r for r in proxy.requests if "/rewriteTo/" in r.path]
        assert dict(parse_qsl(start.query))["kmsKeyName"] == kms
        assert dict(parse_qsl(rewrite.query))["destinationKmsKeyName"] == kms
        proxy.clear()

        key = os.urandom(32)
        digest = base64.b64encode(hashlib.sha256(key).digest()).decode()
        csek = {"encryption_key": base64.b64encode(key).decode()}
        async with keyless_bucket(gcs_server, proxy, persona, **csek) as b:
            await put(b, "big", big, part_size=256 * 1024)
            await b.copy("big", "copy")
        proxy.wait_idle()
        session = [r for r in proxy.requests if "upload_id=" in r.query or "uploadType=resumable" in r.query]
        assert len(session) >= 3  # the start and two chunks
        assert all(r.header("x-goog-encryption-key-sha256") == digest for r in session)
        [rewrite] = [r for r in proxy.requests if "/rewriteTo/" in r.path]
        assert rewrite.header("x-goog-encryption-key-sha256") == digest
        assert rewrite.header("x-goog-copy-source-encryption-key-sha256") == digest
        assert rewrite.header("x-goog-copy-source-encryption-algorithm") == "AES256"


def test_https_proxy_and_no_proxy_are_read_for_googles_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real GCS is https: HTTPS_PROXY (with its credentials) applies to it, NO_PROXY exempts a
    host. (The end-to-end run through a proxy is test_http_proxy_from_the_environment: the
    emulator is http.)"""
    from aiobucket.providers.gcs._gcloud import EnvProxies

    for name in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://user:secret@proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "iamcredentials.googleapis.com")
    proxies = EnvProxies()
    got = proxies("https://storage.googleapis.com/storage/v1/b/x/o")
    assert str(got["proxy"]) == "http://proxy.example:3128"
    assert (got["proxy_auth"].login, got["proxy_auth"].password) == ("user", "secret")
    assert proxies("https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/a:signBlob") == {}
    assert proxies("http://metadata.google.internal/computeMetadata/v1/") == {}  # no HTTP_PROXY


async def test_http_proxy_from_the_environment(
    gcs_server: GcsServer, no_key: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTPS_PROXY/HTTP_PROXY and NO_PROXY are honoured (fake-gcs-server is http, so HTTP_PROXY)."""
    for name in ("https_proxy", "HTTPS_PROXY", "http_proxy", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    with FaultProxy(gcs_server.endpoint) as counting:
        monkeypatch.setenv("HTTP_PROXY", counting.url)
        name = f"p-{uuid.uuid4().hex[:8]}"
        settings = {"url": f"gs://{gcs_server.bucket}?endpoint={gcs_server.endpoint}&emulator=true"}
        with config.override({name: settings}):
            await aiobucket.Bucket(name).exists("a")
            await aiobucket.aclose()
            counting.wait_idle()
            assert len(counting.requests) == 1
            monkeypatch.setenv("NO_PROXY", "127.0.0.1")
            await aiobucket.Bucket(name).exists("a")
            await aiobucket.aclose()
            counting.wait_idle()
            assert len(counting.requests) == 1


async def test_https_proxy_tunnels_to_a_tls_endpoint(
    gcs_server: GcsServer, no_key: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """HTTPS_PROXY end to end: fake-gcs-server behind TLS (a throwaway CA, trusted through
    SSL_CERT_FILE), reached through a CONNECT proxy (``tests/netproxy.py``)."""
    import ssl

    import trustme
    from netproxy import TLSFront, TunnelProxy

    for name in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    authority = trustme.CA()
    pem = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(pem))
    monkeypatch.setenv("SSL_CERT_FILE", str(pem))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    with TLSFront(gcs_server.endpoint, context) as front, TunnelProxy() as tunnel:
        monkeypatch.setenv("HTTPS_PROXY", tunnel.url)
        name = f"t-{uuid.uuid4().hex[:8]}"
        settings = {
            "url": f"gs://{gcs_server.bucket}?endpoint={front.url}&emulator=true",
            "key_prefix": f"{name}/",
        }
        with config.override({name: settings}):
            b = aiobucket.Bucket(name)
            await put(b, "a", b"through the tunnel")
            assert await read(b, "a") == b"through the tunnel"
            await b.remove("a")
            await aiobucket.aclose()
        assert tunnel.tunnels and all(t.endswith(f":{front.port}") for t in tunnel.tunnels)


# -- who signs, and the settings ---------------------------------------------------------


@pytest.mark.parametrize(
    ("credentials", "option", "expected"),
    [
        (
            {"type": "service_account", "client_email": "own@p.iam", "private_key": "x"},
            "opt@p.iam",
            "own@p.iam",
        ),
        (
            {
                "type": "impersonated_service_account",
                "service_account_impersonation_url": "https://iamcredentials.googleapis.com/v1/projects/-/"
                "serviceAccounts/target@p.iam.gserviceaccount.com:generateAccessToken",
                "source_credentials": {"type": "authorized_user"},
            },
            "opt@p.iam",
            "target@p.iam.gserviceaccount.com",
        ),
        (
            {"type": "authorized_user", "client_id": "c", "client_secret": "s", "refresh_token": "r"},
            "opt@p.iam",
            "opt@p.iam",
        ),
    ],
    ids=["credentials", "impersonation target", "option"],
)
async def test_the_signing_account_comes_from(
    credentials: dict[str, Any], option: str, expected: str, tmp_path: Any, no_key: None
) -> None:
    from aiobucket.providers.gcs._gcloud import Auth

    path = tmp_path / "credentials.json"
    path.write_text(json.dumps(credentials))
    async with aiohttp.ClientSession() as session:
        auth = Auth(
            session,
            api_root="https://storage.googleapis.com",
            emulator=False,
            service_file=str(path),
            signing_service_account=option,
        )
        assert await auth.signing_email(1.0, "k") == expected


async def test_signed_url_in_another_universe(
    no_key: None, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """universe_domain: signed URLs name storage.{universe} (Google's vector "Universe domain"
    signs for a URL on that host), signed with the key offline."""
    path = tmp_path / "sa.json"
    path.write_text(json.dumps(ACCOUNT))
    name = f"u-{uuid.uuid4().hex[:8]}"
    settings = {"url": "gs://data", "service_file": str(path), "universe_domain": "example.net"}
    with config.override({name: settings}):
        url = await aiobucket.Bucket(name).signed_download_url("a/b.txt", ttl=60)
        await aiobucket.aclose()
    assert url.startswith("https://storage.example.net/data/a/b.txt?")
    assert dict(parse_qsl(urlsplit(url).query))["X-Goog-Credential"].startswith(ACCOUNT["client_email"])


def test_settings_for_universe_billing_and_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    from aiobucket.providers.gcs._http import GcsHttp

    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    opts = {"universe_domain": "example.net", "user_project": "payer"}
    name, http = http_settings(BucketSettings(url="gs://data", options=opts), "d")
    t = GcsHttp(http)
    assert (name, t.root, t.iam_root) == (
        "data",
        "https://storage.example.net",
        "https://iamcredentials.example.net",
    )
    params, headers = t.extras(t.object_url("data", "k"), None, None)
    assert params == {"userProject": "payer"} and headers == {}

    bad: list[dict[str, object]] = [
        {"encryption_key": "c2hvcnQ="},  # not 32 bytes
        {"encryption_key_env": "AIOBUCKET_UNSET_KEY"},
        {"encryption_key": base64.b64encode(bytes(32)).decode(), "kms_key_name": "projects/p/k"},
        {"retry_deadline": 0},
        {"emulator": "maybe"},
    ]
    for options in bad:
        with pytest.raises(aiobucket.InvalidArgument):
            http_settings(BucketSettings(url="gs://data", options=options), "d")
    with pytest.raises(aiobucket.InvalidArgument, match="endpoint"):
        http_settings(BucketSettings(url="gs://data?emulator=true"), "d")
    # STORAGE_EMULATOR_HOST names the emulator; another endpoint= still gets credentials.
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "127.0.0.1:4443")
    _, emu = http_settings(BucketSettings(url="gs://data"), "d")
    assert (emu.endpoint, emu.emulator) == ("http://127.0.0.1:4443", True)
    _, psc = http_settings(BucketSettings(url="gs://data?endpoint=https://storage-x.p.googleapis.com"), "d")
    assert (psc.endpoint, psc.emulator) == ("https://storage-x.p.googleapis.com", False)
    assert "encryption_key" not in repr(
        http_settings(
            BucketSettings(url="gs://data", options={"encryption_key": base64.b64encode(bytes(32)).decode()}),
            "d",
        )[1]
    )
