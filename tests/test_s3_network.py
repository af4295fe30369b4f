"""Networks that companies run, and large PUTs (issue 18, items 7 and 8), against real servers.

- ``HTTP_PROXY``: every S3 request goes through a loopback proxy (``FaultProxy``, which
  records each request and sees it in absolute form, as a proxy does), and none does
  when ``NO_PROXY`` names the host.
- ``HTTPS_PROXY`` + ``AWS_CA_BUNDLE`` (or ``SSL_CERT_FILE``, or the ``ca_bundle`` option):
  S3 over TLS (a TLS front with a throwaway CA before SeaweedFS) through a CONNECT
  proxy that counts its tunnels; without the CA the certificate is refused, at once.
- ``Expect: 100-continue`` on single PUTs of 1 MiB and more: SeaweedFS and moto
  accept it, and a refusal costs no body.
"""

from __future__ import annotations

import base64
import os
import ssl
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
import trustme
from faultproxy import FaultProxy
from netproxy import TLSFront, TunnelProxy
from personas.aws import aws_error
from servers.seaweedfs import S3Server

import aiobucket
from aiobucket import config

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY")


@pytest.fixture(autouse=True)
async def _close_clients(anyio_backend: str) -> AsyncIterator[None]:
    yield
    await aiobucket.aclose()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No proxy or CA settings inherited from the machine running the tests."""
    for name in (*PROXY_VARS, "AWS_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, Path]:
    authority = trustme.CA()
    pem = tmp_path_factory.mktemp("ca") / "ca.pem"
    authority.cert_pem.write_to_path(str(pem))
    return authority, pem


@pytest.fixture
def tls_front(s3_server: S3Server, ca: tuple[trustme.CA, Path]) -> Iterator[TLSFront]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca[0].issue_cert("localhost", "127.0.0.1").configure_cert(context)
    with TLSFront(s3_server.endpoint, context) as front:
        yield front


@contextmanager
def bucket_at(server: S3Server, endpoint: str, **extra: object) -> Iterator[aiobucket.Bucket]:
    name = f"t-{uuid.uuid4().hex[:12]}"
    settings = replace(server, endpoint=endpoint).settings(
        False, key_prefix=f"{name}/", **{"max_attempts": 3, **extra}
    )
    with config.override({name: settings}):
        yield aiobucket.Bucket(name)


async def roundtrip(b: aiobucket.Bucket, size: int = 100) -> None:
    data = os.urandom(size)
    async with b.upload("k") as w:
        await w.write(data)
    assert await b.download("k").read() == data
    assert [e.name async for _, e in b.list() if e is not None] == ["k"]
    await b.remove("k")


# -- 7. proxies and CAs ---------------------------------------------------------------------


async def test_http_proxy_carries_every_request(s3_server: S3Server, clean_env: pytest.MonkeyPatch) -> None:
    with FaultProxy(s3_server.endpoint) as proxy, bucket_at(s3_server, s3_server.endpoint) as b:
        clean_env.setenv("HTTP_PROXY", proxy.url.replace("http://", "http://corp%20user:pa%3Ass@"))
        await roundtrip(b)
        proxy.wait_idle()
        # The proxy's credentials from its URL, on every request.
        auth = "Basic " + base64.b64encode(b"corp user:pa:ss").decode()
        assert {r.header("proxy-authorization") for r in proxy.requests} == {auth}
        methods = [r.method for r in proxy.requests]
        assert methods == ["PUT", "GET", "GET", "HEAD", "DELETE"]
        # Proxied requests name the origin in absolute form; the server's answers came back.
        assert all(r.target.startswith(s3_server.endpoint + "/") for r in proxy.requests)
        assert all(r.status is not None and r.status < 300 for r in proxy.requests)


async def test_no_proxy_names_the_host(s3_server: S3Server, clean_env: pytest.MonkeyPatch) -> None:
    with FaultProxy(s3_server.endpoint) as proxy, bucket_at(s3_server, s3_server.endpoint) as b:
        clean_env.setenv("HTTP_PROXY", proxy.url)
        clean_env.setenv("NO_PROXY", "example.com,127.0.0.1")
        await roundtrip(b)
        assert proxy.requests == []


async def test_https_proxy_tunnels_tls_verified_by_aws_ca_bundle(
    s3_server: S3Server, tls_front: TLSFront, ca: tuple[trustme.CA, Path], clean_env: pytest.MonkeyPatch
) -> None:
    with TunnelProxy() as tunnel, bucket_at(s3_server, tls_front.url) as b:
        clean_env.setenv("HTTPS_PROXY", tunnel.url.replace("http://", "http://proxy-user:secret@"))
        clean_env.setenv("AWS_CA_BUNDLE", str(ca[1]))
        await roundtrip(b, 3 * MiB)
        assert tunnel.tunnels and set(tunnel.tunnels) == {f"localhost:{tls_front.port}"}
        assert set(tunnel.authorizations) == {"Basic " + base64.b64encode(b"proxy-user:secret").decode()}
        assert tunnel.sent > 3 * MiB and tunnel.received > 3 * MiB  # the bodies went through it
        assert tunnel.refused == []


@pytest.mark.parametrize("how", ["SSL_CERT_FILE", "ca_bundle option"])
async def test_other_ways_to_name_the_ca(
    s3_server: S3Server,
    tls_front: TLSFront,
    ca: tuple[trustme.CA, Path],
    clean_env: pytest.MonkeyPatch,
    how: str,
) -> None:
    extra = {"ca_bundle": str(ca[1])} if how == "ca_bundle option" else {}
    if how == "SSL_CERT_FILE":
        clean_env.setenv("SSL_CERT_FILE", str(ca[1]))
    with bucket_at(s3_server, tls_front.url, **extra) as b:
        await roundtrip(b)
    assert tls_front.connections >= 1


async def test_an_unknown_ca_is_refused_at_once(
    s3_server: S3Server, tls_front: TLSFront, clean_env: pytest.MonkeyPatch
) -> None:
    with bucket_at(s3_server, tls_front.url) as b:
        with pytest.raises(aiobucket.BackendError, match=r"(?i)certificate") as info:
            await b.exists("k")
        assert "1 attempt" in str(info.value)  # a certificate problem is not retried


async def test_an_unreadable_ca_bundle_says_so(
    s3_server: S3Server, tls_front: TLSFront, clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.setenv("AWS_CA_BUNDLE", str(tmp_path / "missing.pem"))
    with (
        bucket_at(s3_server, tls_front.url) as b,
        pytest.raises(aiobucket.InvalidArgument, match="AWS_CA_BUNDLE"),
    ):
        await b.exists("k")


# -- 8. Expect: 100-continue ------------------------------------------------------------------


@pytest.fixture(params=["s3", "moto"])
def server(request: pytest.FixtureRequest) -> S3Server:
    raw = os.environ.get("AIOBUCKET_BACKENDS", "")
    names = [n.strip() for n in raw.split(",") if n.strip()]
    if names and request.param not in names:
        pytest.skip(f"{request.param} not in AIOBUCKET_BACKENDS")
    found: S3Server = request.getfixturevalue("s3_server" if request.param == "s3" else "moto_server")
    return found


async def test_large_single_puts_wait_for_100_continue(
    server: S3Server, clean_env: pytest.MonkeyPatch
) -> None:
    with FaultProxy(server.endpoint) as proxy, bucket_at(server, proxy.url) as b:
        big, small = os.urandom(2 * MiB), os.urandom(1000)
        async with b.upload("big", part_size=8 * MiB) as w:
            await w.write(big)
        async with b.upload("small") as w:
            await w.write(small)
        assert await b.download("big").read() == big
        assert await b.download("small").read() == small
        proxy.wait_idle()
        puts = proxy.matching(method="PUT")
        assert [(r.header("expect"), r.body_length) for r in puts] == [
            ("100-continue", 2 * MiB),
            (None, 1000),
        ]


async def test_a_refused_large_put_costs_no_body(s3_server: S3Server, clean_env: pytest.MonkeyPatch) -> None:
    """https://docs.aws.amazon.com/AmazonS3/latest/API/RESTRequestHeaders.html (Expect: "Amazon S3
    does not send the request body" when the request is refused on its headers)."""
    with FaultProxy(s3_server.endpoint) as proxy, bucket_at(s3_server, proxy.url) as b:
        proxy.add_rule(aws_error(403, "AccessDenied", "Access Denied"), method="PUT")
        with pytest.raises(aiobucket.PermissionDenied):
            async with b.upload("big", part_size=8 * MiB) as w:
                await w.write(os.urandom(4 * MiB))
        proxy.wait_idle()
        assert [(r.status, r.body_length) for r in proxy.matching(method="PUT")] == [(403, 0)]
        await roundtrip(b)  # the connection left half-sent was not reused


async def test_a_417_expectation_failed_resends_without_expect(
    s3_server: S3Server, clean_env: pytest.MonkeyPatch
) -> None:
    """https://www.rfc-editor.org/rfc/rfc9110.html#section-10.1.1: a server (or an HTTP/1.0 proxy)
    that does not do 100-continue answers 417, and the client repeats the request without it."""
    from faultproxy import Respond

    with FaultProxy(s3_server.endpoint) as proxy, bucket_at(s3_server, proxy.url) as b:
        proxy.add_rule(Respond(417), method="PUT", header="expect")
        data = os.urandom(2 * MiB)
        async with b.upload("big", part_size=8 * MiB) as w:
            await w.write(data)
        assert await b.download("big").read() == data
        proxy.wait_idle()
        puts = proxy.matching(method="PUT")
        assert [(r.status, r.header("expect"), r.body_length) for r in puts] == [
            (417, "100-continue", 0),
            (200, None, 2 * MiB),
        ]


async def test_no_answer_to_expect_sends_the_body_after_a_while(
    s3_server: S3Server, clean_env: pytest.MonkeyPatch
) -> None:
    """https://www.rfc-editor.org/rfc/rfc9110.html#section-10.1.1: a client that never saw a 100
    "SHOULD NOT wait for an indefinite period". Here the intermediary drops the Expect header,
    so the server waits for the body and says nothing: the body must go anyway, well before
    the read timeout (5 s, one attempt: a hang fails the test)."""
    from faultproxy import Rewrite

    with (
        FaultProxy(s3_server.endpoint) as proxy,
        bucket_at(s3_server, proxy.url, read_timeout=5, max_attempts=1) as b,
    ):
        proxy.add_rule(Rewrite("request", {"Expect": None}), method="PUT", header="expect")
        data = os.urandom(2 * MiB)
        async with b.upload("big", part_size=8 * MiB) as w:
            await w.write(data)
        assert await b.download("big").read() == data
        proxy.wait_idle()
        (put,) = proxy.matching(method="PUT")
        assert (put.fault is not None, put.status, put.body_length) == (True, 200, 2 * MiB)
