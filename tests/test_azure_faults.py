"""The Azure provider under injected faults: the fault proxy in front of a real Azurite.

Every test goes through the public API with ``tests/faultproxy.py`` between the client
and Azurite; the proxy records every request, so each test says how many attempts were
made. Azure's transient answers are 503 ServerBusy and 500 OperationTimedOut / InternalError.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote

import pytest
from faultproxy import FaultProxy, Request, Respond, Stall, lose_response
from servers.azurite import AzuriteServer

import aiobucket
from aiobucket import _runtime, config
from aiobucket.providers.azure._provider import START_FROM_VERSION

pytestmark = pytest.mark.anyio

RETRIES = 4
NE = aiobucket.Preconditions(not_exists=True)
GUARD = 30.0


def azure_error(status: int, code: str) -> Respond:
    body = (
        '<?xml version="1.0" encoding="utf-8"?>'
        f"<Error><Code>{code}</Code><Message>injected by faultproxy</Message></Error>"
    ).encode()
    return Respond(status, body, {"Content-Type": "application/xml", "x-ms-error-code": code})


def is_put_blob(r: Request) -> bool:
    return r.method == "PUT" and "comp=" not in r.query


def is_block_list(r: Request) -> bool:
    return r.method == "PUT" and "comp=blocklist" in r.query


@pytest.fixture
def proxy(azurite_server: AzuriteServer) -> Iterator[FaultProxy]:
    with FaultProxy(azurite_server.endpoint) as p:
        yield p


@contextlib.contextmanager
def routed(server: AzuriteServer, proxy: FaultProxy, **options: object) -> Iterator[aiobucket.Bucket]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    settings = server.settings(key_prefix=f"{name}/", max_attempts=RETRIES, backoff_base=0.01, **options)
    settings["url"] = str(settings["url"]).replace(server.endpoint, proxy.url)
    with config.override({name: settings}):
        yield aiobucket.Bucket(name)


@pytest.fixture
async def bucket(azurite_server: AzuriteServer, proxy: FaultProxy) -> AsyncIterator[aiobucket.Bucket]:
    with routed(azurite_server, proxy) as b:
        yield b
        await aiobucket.aclose()


async def put(b: aiobucket.Bucket, key: str, data: bytes, **kw: object) -> aiobucket.ObjectAttrs:
    async with b.upload(key, **kw) as w:  # type: ignore[arg-type]
        await w.write(data)
    return await w.close()


@pytest.mark.parametrize("code", [(503, "ServerBusy"), (500, "OperationTimedOut")])
async def test_transient_answers_are_retried(bucket: aiobucket.Bucket, proxy: FaultProxy, code) -> None:
    proxy.add_rule(azure_error(*code), method="PUT", times=2)
    attrs = await put(bucket, "k", b"hello")
    assert attrs.md5 == hashlib.md5(b"hello").hexdigest()
    proxy.wait_idle()
    assert [r.status for r in proxy.requests if is_put_blob(r)] == [code[0], code[0], 201]
    assert await bucket.download("k").read() == b"hello"


async def test_steady_500_ends_after_the_configured_attempts(
    bucket: aiobucket.Bucket, proxy: FaultProxy
) -> None:
    proxy.add_rule(azure_error(500, "InternalError"), method="GET", times=None)
    with pytest.raises(aiobucket.BackendError, match=f"after {RETRIES} attempts"):
        await bucket.download("missing").read()
    proxy.wait_idle()
    assert len([r for r in proxy.requests if r.method == "GET"]) == RETRIES


async def test_steady_500_on_writes_ends_after_the_configured_attempts(
    bucket: aiobucket.Bucket, proxy: FaultProxy
) -> None:
    """Put Blob and a staged upload's Put Block alike: the same count, then a typed error,
    and nothing is stored."""
    proxy.add_rule(azure_error(500, "InternalError"), method="PUT", times=None)
    with pytest.raises(aiobucket.BackendError, match=f"after {RETRIES} attempts"):
        await put(bucket, "small", b"x")
    with pytest.raises(aiobucket.BackendError, match=f"after {RETRIES} attempts"):
        async with bucket.upload("staged", part_size=1024) as w:
            await w.write(b"y" * 3000)
    proxy.wait_idle()
    assert len([r for r in proxy.requests if is_put_blob(r)]) == RETRIES
    proxy.clear()
    assert not await bucket.exists("small") and not await bucket.exists("staged")


@pytest.mark.parametrize("op", ["upload", "staged", "download", "list", "remove", "remove_many", "copy"])
async def test_cancel_is_honoured_during_backoff(
    azurite_server: AzuriteServer, proxy: FaultProxy, op: str
) -> None:
    """A long backoff (backoff_base 30 s) after a 503: a cancel ends it at once."""
    with routed(azurite_server, proxy) as b:
        await put(b, "k", b"v")
        with routed(azurite_server, proxy) as slow:
            cfg = config.resolve(slow.name)
            opts = dict(cfg.options, backoff_base=30.0, backoff_max=30.0)
            with config.override({slow.name: {"url": cfg.url, "key_prefix": b.name + "/", **opts}}):
                # A copy HEADs its source first (to pin its ETag): refuse the Copy Blob itself.
                only = {"method": "PUT"} if op == "copy" else {}
                proxy.add_rule(azure_error(503, "ServerBusy"), times=None, **only)

                async def run() -> None:
                    if op == "upload":
                        await put(slow, "k2", b"x")
                    elif op == "staged":  # Put Block (part 1 of 2)
                        async with slow.upload("k2", part_size=1024) as w:
                            await w.write(b"x" * 1500)
                    elif op == "remove_many":  # Blob Batch
                        async for _ in slow.remove_many(["k", "k3"]):
                            pass
                    elif op == "copy":  # Copy Blob
                        await slow.copy("k", "k2")
                    elif op == "download":
                        await slow.download("k").read()
                    elif op == "list":
                        async for _ in slow.list():
                            pass
                    else:
                        await slow.remove("k")

                task = asyncio.ensure_future(run())
                for _ in range(int(GUARD / 0.01)):  # until the first 503 has been answered
                    if proxy.requests and proxy.requests[-1].status is not None:
                        break
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.05)  # now in the backoff sleep
                refused = proxy.requests[-1]
                assert refused.status == 503
                wanted = {"staged": "comp=block", "remove_many": "comp=batch", "copy": ""}.get(op)
                if wanted is not None:  # the backoff is the one of the request named
                    assert wanted in refused.query and refused.method in ("PUT", "POST"), refused
                loop = asyncio.get_running_loop()
                started = loop.time()
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await asyncio.wait_for(task, GUARD)
                assert loop.time() - started < GUARD / 2  # a hang guard, not a timing assertion
                proxy.clear()
        await aiobucket.aclose()
    assert await _read(azurite_server, b.name, "k") == b"v"


async def _read(server: AzuriteServer, prefix: str, key: str) -> bytes:
    name = f"r-{uuid.uuid4().hex[:8]}"
    with config.override({name: server.settings(key_prefix=prefix + "/")}):
        data = await aiobucket.Bucket(name).download(key).read()
    await aiobucket.aclose()
    return data


async def test_lost_response_to_a_conditional_put_resolves_as_ours(
    bucket: aiobucket.Bucket, proxy: FaultProxy
) -> None:
    """Put Blob with If-None-Match: * is applied, its answer lost; the retry gets 409
    BlobAlreadyExists, which the stored MD5 shows to be our own success."""
    proxy.add_rule(lose_response(), method="PUT", header="If-None-Match")
    attrs = await put(bucket, "k", b"mine", preconditions=NE)
    assert attrs.md5 == hashlib.md5(b"mine").hexdigest()
    proxy.wait_idle()
    assert [r.status for r in proxy.requests if is_put_blob(r)][-1] == 409
    with pytest.raises(aiobucket.PreconditionFailed):  # and a real second writer still loses
        await put(bucket, "k", b"other", preconditions=NE)


async def test_lost_response_to_a_conditional_commit_resolves_as_ours(
    bucket: aiobucket.Bucket, proxy: FaultProxy
) -> None:
    """The same for Put Block List of a staged upload (its blocks are gone once committed)."""
    data = bytes(range(256)) * 3000
    proxy.add_rule(lose_response(), when=is_block_list)
    attrs = await put(bucket, "big", data, part_size=256 * 1024, preconditions=NE)
    assert attrs.md5 == hashlib.md5(data).hexdigest()
    assert await bucket.download("big").read() == data


async def test_lost_response_to_a_conditional_copy_resolves_as_ours(
    bucket: aiobucket.Bucket, proxy: FaultProxy
) -> None:
    """Copy Blob with If-None-Match: * applied, its answer lost: the retry's 409 is
    resolved by the stored MD5, which is the source's (the copy is pinned to its ETag)."""
    await put(bucket, "src", b"copied once")
    proxy.add_rule(lose_response(), method="PUT", header="x-ms-copy-source")
    attrs = await bucket.copy("src", "dst", preconditions=NE)
    assert attrs.md5 == hashlib.md5(b"copied once").hexdigest()
    proxy.wait_idle()
    copies = [r.status for r in proxy.requests if r.method == "PUT" and r.header("x-ms-copy-source")]
    assert copies[-1] == 409, copies
    assert await bucket.download("dst").read() == b"copied once"


async def test_lost_race_after_a_lost_response_is_precondition_failed(
    bucket: aiobucket.Bucket, proxy: FaultProxy
) -> None:
    await put(bucket, "k", b"theirs")
    proxy.add_rule(azure_error(503, "ServerBusy"), method="PUT", times=1)
    with pytest.raises(aiobucket.PreconditionFailed, match="not ours"):
        await put(bucket, "k", b"mine", preconditions=NE)


async def test_a_stalled_resend_does_not_stall_the_upload(
    azurite_server: AzuriteServer, proxy: FaultProxy
) -> None:
    """A block whose first attempt stalls past the read timeout is sent again and the upload ends."""
    with routed(azurite_server, proxy, read_timeout=1.0) as b:
        proxy.add_rule(Stall(None, "response"), method="PUT", query="comp=block", times=1)
        data = b"s" * (600 * 1024)
        attrs = await asyncio.wait_for(put(b, "k", data, part_size=256 * 1024), GUARD)
        assert attrs.size == len(data)
        assert await b.download("k").read() == data
        await aiobucket.aclose()


# -- Azure's documented answers where Azurite differs (tests/personas/azure.py) ----------------


async def test_a_pending_copy_is_polled_until_it_ends(bucket: aiobucket.Bucket, proxy: FaultProxy) -> None:
    from personas.azure import copy_pending

    await put(bucket, "src", b"copied bytes")
    copy_pending(proxy, "/dst", polls=3)
    attrs = await bucket.copy("src", "dst")
    assert attrs.md5 == hashlib.md5(b"copied bytes").hexdigest()
    proxy.wait_idle()
    heads = [r for r in proxy.requests if r.method == "HEAD" and r.path.endswith("/dst")]
    assert len(heads) >= 4  # three pending polls, then the one that saw success
    assert await bucket.download("dst").read() == b"copied bytes"


@pytest.mark.parametrize("status", ["failed", "aborted"])
async def test_a_copy_that_fails_later_is_an_error(
    bucket: aiobucket.Bucket, proxy: FaultProxy, status
) -> None:
    from personas.azure import copy_ends

    await put(bucket, "src", b"x")
    copy_ends(proxy, "/dst", status)
    with pytest.raises(aiobucket.BackendError, match=status):
        await bucket.copy("src", "dst")


async def test_range_past_the_end_answered_416_as_azure_does(
    bucket: aiobucket.Bucket, proxy: FaultProxy
) -> None:
    from personas.azure import range_past_the_end_is_416

    await put(bucket, "k", b"0123456789")
    range_past_the_end_is_416(proxy)
    with pytest.raises(aiobucket.RangeNotSatisfiable):
        await bucket.download("k", offset=10).read()


class _StaticToken:
    """Stands in for azure-identity (the outside world): a fixed AAD token."""

    async def get_token(self, *scopes: str) -> object:
        from azure.core.credentials import AccessToken

        return AccessToken("aad-token-for-tests", 4102444800)

    async def close(self) -> None:
        return None


async def test_user_delegation_sas_with_aad_credentials(
    azurite_server: AzuriteServer, proxy: FaultProxy
) -> None:
    """No account key: the signed URL is a user-delegation SAS over a key fetched with the
    bearer token, equal to what generate_blob_sas makes from that key."""
    from urllib.parse import parse_qsl, urlsplit

    from azure.storage.blob import UserDelegationKey, generate_blob_sas
    from personas.azure import user_delegation_key

    from aiobucket import _runtime
    from aiobucket.providers.azure._auth import TokenAuth

    value = base64.b64encode(bytes(range(32))).decode()
    fields = user_delegation_key(proxy, value)
    name = f"t-{uuid.uuid4().hex[:10]}"
    settings = azurite_server.settings(key_prefix=f"{name}/")
    del settings["account_key"]
    settings["url"] = str(settings["url"]).replace(azurite_server.endpoint, proxy.url)
    with config.override({name: settings}):
        b = aiobucket.Bucket(name)
        p = _runtime.provider_for(b.name, b.config)[0]
        inner = getattr(p, "inner", p)
        assert isinstance(inner.auth, TokenAuth)
        inner.auth._credential = _StaticToken()
        url = await b.signed_download_url("a b.txt")
        again = await b.signed_upload_url("a b.txt")
        await aiobucket.aclose()
    proxy.wait_idle()
    [fetch] = [r for r in proxy.requests if "userdelegationkey" in r.query]  # fetched once, reused
    assert fetch.header("Authorization") == "Bearer aad-token-for-tests"
    q = dict(parse_qsl(urlsplit(url).query))
    assert (q["skoid"], q["sktid"], q["sp"], q["sr"]) == (fields["SignedOid"], fields["SignedTid"], "r", "b")
    assert dict(parse_qsl(urlsplit(again).query))["sp"] == "cw"
    key = UserDelegationKey()
    key.signed_oid, key.signed_tid = fields["SignedOid"], fields["SignedTid"]
    key.signed_start, key.signed_expiry = fields["SignedStart"], fields["SignedExpiry"]
    key.signed_service, key.signed_version, key.value = "b", fields["SignedVersion"], value
    sdk = generate_blob_sas(
        "devstoreaccount1", azurite_server.container, f"{name}/a b.txt", user_delegation_key=key,
        permission="r", expiry=q["se"], start=q["st"],
    )  # fmt: skip
    assert urlsplit(url).query == sdk


async def test_versions_on_an_account_with_versioning(
    azurite_server: AzuriteServer, proxy: FaultProxy
) -> None:
    from personas.azure import version_listing, versioned_account

    v1, v2 = "2026-12-06T04:00:00.0000001Z", "2026-12-06T04:00:01.0000002Z"
    name = f"t-{uuid.uuid4().hex[:10]}"
    settings = azurite_server.settings(key_prefix=f"{name}/", max_attempts=RETRIES)
    settings["url"] = str(settings["url"]).replace(azurite_server.endpoint, proxy.url)
    with config.override({name: settings}):
        b = aiobucket.Bucket(name, aiobucket.BucketConfig(versioned=True))
        versioned_account(proxy, v2)
        attrs = await put(b, "k", b"two")
        assert attrs.version == v2
        assert await b.download("k", version=v2).read() == b"two"
        with pytest.raises(aiobucket.ObjectNotFound):  # answered with another version: never its bytes
            await b.download("k", version=v1).read()
        version_listing(proxy, f"{name}/", "k", [v1, v2])
        got = [(e.name, e.version, e.is_latest) async for err, e in b.list_versions() if e is not None]
        assert got == [("k", v2, True), ("k", v1, False)]
        await aiobucket.aclose()
    proxy.wait_idle()
    assert any(f"versionid={v1.replace(':', '%3A')}" in r.query for r in proxy.requests)


# -- start_after as List Blobs' startFrom ----------------------------------------------------


def _inner(b: aiobucket.Bucket) -> Any:
    """The Azure provider under the key-prefix layer."""
    p = _runtime.provider_for(b.name, b.config)[0]
    return getattr(p, "inner", p)


async def _listed(
    b: aiobucket.Bucket, prefix: str, start_after: str, delimiter: str | None = None
) -> list[str]:
    root = config.resolve(b.name).key_prefix
    p = _inner(b)
    entries = p.list(root + prefix, start_after=root + start_after, delimiter=delimiter)
    return [e.name[len(root) :] async for e in entries]


async def test_start_after_is_sent_as_start_from(bucket: aiobucket.Bucket, proxy: FaultProxy) -> None:
    """Azure lists from startFrom (inclusive) at x-ms-version 2026-02-06; Azurite ignores it
    (quirk start_from_ignored), and the skip after start_after keeps both answers exact."""
    for k in ["a/1", "a/2", "a/3", "a/d/x", "a/e", "b"]:
        await put(bucket, k, b"x")
    assert await _listed(bucket, "a/", "a/2") == ["a/3", "a/d/x", "a/e"]
    assert await _listed(bucket, "a/", "a/d/w", "/") == ["a/e"]  # the folder a/d/ sorts before a/d/w
    proxy.wait_idle()
    lists = [r for r in proxy.requests if "comp=list" in r.query]
    root = quote(config.resolve(bucket.name).key_prefix, safe="")
    assert [r.query.split("startFrom=")[1].split("&")[0] for r in lists] == [root + "a%2F2", root + "a%2Fd"]
    assert {r.header("x-ms-version") for r in lists} == {START_FROM_VERSION}
    assert {r.status for r in lists} == {200}
    assert await _listed(bucket, "b", "a/9") == ["b"]  # start_after outside the prefix: no startFrom
    proxy.wait_idle()
    assert "startFrom=" not in proxy.requests[-1].query


async def test_a_refused_start_from_lists_from_the_prefix(
    bucket: aiobucket.Bucket, proxy: FaultProxy
) -> None:
    from personas.azure import start_from_refused

    for k in ["a/1", "a/2", "a/3"]:
        await put(bucket, k, b"x")
    start_from_refused(proxy)
    assert await _listed(bucket, "a/", "a/1") == ["a/2", "a/3"]
    assert await _listed(bucket, "a/", "a/2") == ["a/3"]
    proxy.wait_idle()
    lists = [r for r in proxy.requests if "comp=list" in r.query]
    # Refused once, then resent without it; the next listing does not try again.
    assert [r.status for r in lists] == [400, 200, 200]
    assert ["startFrom=" in r.query for r in lists] == [True, False, False]
