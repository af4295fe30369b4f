"""The Azure provider on Azurite: what the conformance suite cannot see.

* Azurite's quirks, each checked against the running server as a strict xfail that
  asserts Azure's documented answer (so a fixed Azurite makes it fail loudly).
* SharedKey on the wire: metadata names whose collation differs from byte order are
  accepted, and a byte-sorted signature is refused.
* Staged uploads: block ids random per upload and of fixed length; two concurrent
  uploads to one key never splice; the whole-object MD5 is stored.
* Keys Azure would rename are refused; the listing is in UTF-16 order (declared).
* Blob Batch over 256 keys, signed URLs, copies.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from servers.azurite import QUIRKS, AzuriteServer

import aiobucket
from aiobucket import _runtime, config
from aiobucket.providers.azure import CAPABILITIES
from aiobucket.providers.azure._blocks import Upload
from aiobucket.providers.azure._provider import START_FROM_VERSION
from aiobucket.providers.azure._sign import shared_key, string_to_sign
from aiobucket.providers.azure._xml import parse_list
from aiobucket.providers.base import PutOptions

pytestmark = pytest.mark.anyio


def quirk(name: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(strict=True, reason=f"quirk {name}: {QUIRKS[name]}")


@pytest.fixture
async def bucket(azurite_server: AzuriteServer) -> AsyncIterator[aiobucket.Bucket]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    with config.override({name: azurite_server.settings(key_prefix=f"{name}/")}):
        yield aiobucket.Bucket(name)
        await aiobucket.aclose()


def provider(b: aiobucket.Bucket) -> Any:
    """The Azure provider under the key-prefix layer."""
    p = _runtime.provider_for(b.name, b.config)[0]
    return getattr(p, "inner", p)


def prefixed(b: aiobucket.Bucket, key: str) -> str:
    return config.resolve(b.name).key_prefix + key


def list_query(prefix: str, *extra: tuple[str, str]) -> list[tuple[str, str]]:
    """A raw List Blobs query (values percent-encoded, as the provider sends them)."""
    fields = [("restype", "container"), ("comp", "list"), ("prefix", prefix), *extra]
    return [(k, quote(v, safe="")) for k, v in fields]


async def put(b: aiobucket.Bucket, key: str, data: bytes, **kw: Any) -> aiobucket.ObjectAttrs:
    async with b.upload(key, **kw) as w:
        await w.write(data)
    return await w.close()


# -- Azurite's quirks, checked against the server ------------------------------------------


@quirk("suffix_range_500")
async def test_suffix_range_is_answered_206(bucket: aiobucket.Bucket) -> None:
    await put(bucket, "k", b"0123456789")
    resp = await provider(bucket).send(
        "download", "GET", prefixed(bucket, "k"), headers={"x-ms-range": "bytes=-3"}
    )
    assert resp.status == 206 and resp.body == b"789"


@quirk("range_at_size_206")
async def test_range_at_the_size_is_answered_416(bucket: aiobucket.Bucket) -> None:
    await put(bucket, "k", b"0123456789")
    resp = await provider(bucket).send(
        "download", "GET", prefixed(bucket, "k"), headers={"x-ms-range": "bytes=10-"}
    )
    assert resp.status == 416


async def test_range_at_the_size_is_still_range_not_satisfiable(bucket: aiobucket.Bucket) -> None:
    """What the provider makes of that quirk."""
    await put(bucket, "k", b"0123456789")
    with pytest.raises(aiobucket.RangeNotSatisfiable):
        await bucket.download("k", offset=10).read()


@quirk("folders_first")
async def test_a_page_merges_folders_and_blobs_by_name(bucket: aiobucket.Bucket) -> None:
    for key in ("a", "b/1", "c"):
        await put(bucket, key, b"x")
    prefix = prefixed(bucket, "")
    query = list_query(prefix, ("delimiter", "/"))
    resp = await provider(bucket).send("list", "GET", None, query=query)
    body = resp.body.decode()
    assert body.index("<Name>" + prefix + "a<") < body.index("<Name>" + prefix + "b/<")


@quirk("start_from_ignored")
async def test_list_blobs_starts_at_start_from(bucket: aiobucket.Bucket) -> None:
    """Azure: startFrom (inclusive) at x-ms-version 2026-02-06
    (https://learn.microsoft.com/rest/api/storageservices/list-blobs)."""
    for key in ("a", "b", "c"):
        await put(bucket, key, b"x")
    prefix = prefixed(bucket, "")
    query = list_query(prefix, ("startFrom", prefix + "b"))
    resp = await provider(bucket).send("list", "GET", None, query=query, version=START_FROM_VERSION)
    assert resp.status == 200
    assert [e.name for e in parse_list(resp.body).entries] == [prefix + "b", prefix + "c"]


async def test_the_provider_merges_each_page(bucket: aiobucket.Bucket) -> None:
    for key in ("a", "b/1", "c"):
        await put(bucket, key, b"x")
    got = [e.name async for err, e in bucket.list(aiobucket.Query(delimiter="/")) if e is not None]
    assert got == ["a", "b/", "c"]


@quirk("no_versions")
async def test_every_write_has_a_version_id(bucket: aiobucket.Bucket) -> None:
    p = provider(bucket)
    opts = PutOptions(content_type="text/plain")
    one = await p.put(prefixed(bucket, "k"), b"one", opts)
    two = await p.put(prefixed(bucket, "k"), b"two", opts)
    assert one.version and two.version and one.version != two.version


def _emulator_jwt() -> str:
    """A token of the shape Azurite's ``--oauth basic`` mode accepts (it checks the audience,
    issuer and times, not the signature): Azure itself would want one from Entra ID."""
    import json
    import time

    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    now = int(time.time())
    claims = {
        "aud": "https://storage.azure.com",
        "iss": "https://sts.windows.net/ab1f708d-50f6-404c-a006-d71b2ac7a606/",
        "iat": now - 60, "nbf": now - 60, "exp": now + 3600,
        "oid": "23657296-5cd5-45b0-a809-d972a7f4dfe1", "tid": "dd0d0d4c-0000-0000-0000-000000000000",
    }  # fmt: skip
    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


@quirk("user_delegation_sas_needs_oauth")
async def test_user_delegation_key_is_issued_to_a_bearer_token(azurite_server: AzuriteServer) -> None:
    """Get User Delegation Key takes an AAD bearer token. Azurite honours one only when
    started with ``--oauth basic`` and HTTPS (a certificate), which the shared test server is
    not: test_azure_oauth.py starts one that is, and test_azure_faults.py has a persona."""
    body = (
        b"<?xml version='1.0' encoding='utf-8'?><KeyInfo><Start>2026-12-06T00:00:00Z</Start>"
        b"<Expiry>2026-12-07T00:00:00Z</Expiry></KeyInfo>"
    )
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            f"{azurite_server.endpoint}/devstoreaccount1/?restype=service&comp=userdelegationkey",
            data=body,
            headers={"Authorization": "Bearer " + _emulator_jwt(), "x-ms-version": "2025-01-05"},
        ) as resp,
    ):
        assert resp.status == 200, await resp.text()


# -- SharedKey on the wire -----------------------------------------------------------------


async def test_metadata_names_that_collate_differently_are_signed_right(bucket: aiobucket.Bucket) -> None:
    meta = {"a_1": "x", "a1": "y", "i_": "p", "i0": "q", "B": "z"}
    await put(bucket, "k", b"v", attrs=aiobucket.UploadAttrs(metadata=meta))
    assert dict((await bucket.attrs("k")).metadata) == {k.lower(): v for k, v in meta.items()}


async def test_a_byte_sorted_signature_is_refused(
    bucket: aiobucket.Bucket, azurite_server: AzuriteServer
) -> None:
    """The reason for the collation: sorting x-ms-* headers by bytes gets 403."""
    from datetime import UTC, datetime
    from email.utils import format_datetime

    from servers.azurite import ACCOUNT, ACCOUNT_KEY

    path = f"/{ACCOUNT}/{azurite_server.container}/" + prefixed(bucket, "k")
    headers = {
        "x-ms-date": format_datetime(datetime.now(UTC), usegmt=True),
        "x-ms-version": "2025-01-05",
        "x-ms-blob-type": "BlockBlob",
        "x-ms-meta-a_1": "x",
        "x-ms-meta-a1": "y",
        "content-length": "1",
    }
    right = string_to_sign("PUT", ACCOUNT, path, [], headers)
    ms = sorted((k, v) for k, v in headers.items() if k.startswith("x-ms-"))
    byte_sorted = right.split("x-ms-")[0] + "".join(f"{k}:{v}\n" for k, v in ms) + f"/{ACCOUNT}{path}"
    assert byte_sorted != right
    key = base64.b64decode(ACCOUNT_KEY)
    async with aiohttp.ClientSession(skip_auto_headers=["Content-Type"]) as s:
        url = azurite_server.endpoint + path
        for text, status in ((byte_sorted, 403), (right, 201)):
            h = {**headers, "Authorization": shared_key(ACCOUNT, key, text)}
            async with s.put(url, data=b"v", headers=h) as resp:
                assert resp.status == status, await resp.text()


# -- staged uploads ------------------------------------------------------------------------


async def test_block_ids_are_random_per_upload_and_of_fixed_length(bucket: aiobucket.Bucket) -> None:
    p = provider(bucket)
    opts = PutOptions(content_type="application/octet-stream")
    a, b = Upload(p, "x", opts), Upload(p, "x", opts)
    ids = [await_id(a, n) for n in (1, 99, 50_000)] + [await_id(b, 1)]
    assert len({len(i) for i in ids}) == 1
    assert ids[0] != ids[3]


def await_id(upload: Upload, number: int) -> str:
    from aiobucket.providers.azure._blocks import block_id

    return block_id(upload._upload, number)


async def test_concurrent_uploads_to_one_key_never_splice(bucket: aiobucket.Bucket) -> None:
    p = provider(bucket)
    key = prefixed(bucket, "k")
    opts = PutOptions(content_type="application/octet-stream")
    first, second = await p.start_multipart(key, opts), await p.start_multipart(key, opts)
    parts_a = [await first.put_part(n, b"A" * 1000) for n in (1, 2)]
    parts_b = [await second.put_part(n, b"B" * 1000) for n in (1, 2)]
    done = await first.complete(parts_a)
    assert done.md5 == hashlib.md5(b"A" * 2000).hexdigest()
    with pytest.raises(aiobucket.BackendError, match="InvalidBlockList"):
        await second.complete(parts_b)
    assert await bucket.download("k").read() == b"A" * 2000


async def test_staged_upload_stores_the_whole_md5_and_reads_verify(bucket: aiobucket.Bucket) -> None:
    data = bytes(range(256)) * 5000
    written = await put(bucket, "big", data, part_size=256 * 1024, concurrency=4)
    attrs = await bucket.attrs("big")
    assert written.md5 == attrs.md5 == hashlib.md5(data).hexdigest()
    assert attrs.crc32c is None
    assert await bucket.download("big").read() == data


# -- keys and listing ----------------------------------------------------------------------


@pytest.mark.parametrize("key", ["a./b", "dir/name.", "a\\b"])
async def test_keys_azure_would_rename_are_refused(bucket: aiobucket.Bucket, key: str) -> None:
    assert set(CAPABILITIES.key_restrictions) == {"segment_ends_with_dot", "backslash"}
    with pytest.raises(aiobucket.InvalidArgument, match="Azure"):
        await put(bucket, key, b"v")
    with pytest.raises(aiobucket.InvalidArgument, match="Azure"):
        await bucket.attrs(key)


async def test_listing_is_in_utf16_order(bucket: aiobucket.Bucket) -> None:
    """U+FF61 sorts after an emoji in UTF-16 (its surrogates are D83D...), before it in UTF-8."""
    keys = ["\uff61", "\U0001f600", "a"]
    for k in keys:
        await put(bucket, k, b"x")
    got = [e.name async for err, e in bucket.list() if e is not None]
    assert CAPABILITIES.listing_order == "utf-16"
    assert got == sorted(keys, key=lambda k: k.encode("utf-16-be", "surrogatepass"))
    assert got != sorted(keys, key=str.encode)


# -- bulk delete, URLs, copies -------------------------------------------------------------


async def test_remove_many_over_one_batch(bucket: aiobucket.Bucket) -> None:
    keys = [f"k{i:03d}" for i in range(300)]
    p = provider(bucket)
    opts = PutOptions(content_type="text/plain")
    for k in keys[:-1]:
        await p.put(prefixed(bucket, k), b"x", opts)
    results = await p.delete_many([prefixed(bucket, k) for k in keys[:256]])
    assert results == [None] * 256
    rest = await p.delete_many([prefixed(bucket, k) for k in keys[256:]])
    assert rest[:-1] == [None] * 43 and isinstance(rest[-1], aiobucket.ObjectNotFound)
    assert [e async for e in bucket.list()] == []


async def test_signed_urls_work_with_plain_http(bucket: aiobucket.Bucket) -> None:
    put_url = await bucket.signed_upload_url("up.txt", ttl=timedelta(minutes=5))
    assert "sp=cw" in put_url and "sig=" in put_url
    async with aiohttp.ClientSession() as s:
        headers = {"x-ms-blob-type": "BlockBlob", "x-ms-blob-content-type": "text/plain"}  # as README's page
        async with s.put(put_url, data=b"from a browser", headers=headers) as resp:
            assert resp.status == 201, await resp.text()
        assert (await bucket.attrs("up.txt")).content_type == "text/plain"
        get_url = await bucket.signed_download_url("up.txt", ttl=timedelta(minutes=5))
        async with s.get(get_url) as resp:
            assert resp.status == 200 and await resp.read() == b"from a browser"
        async with s.get(get_url.replace("sig=", "sig=A")) as resp:
            assert resp.status == 403
    with pytest.raises(aiobucket.NotSupported, match="content_length"):
        await bucket.signed_upload_url("x", content_length=5)
    with pytest.raises(aiobucket.NotSupported):
        await bucket.signed_upload_form("x", max_size=10)


async def test_copy_with_new_attributes_keeps_the_md5(bucket: aiobucket.Bucket) -> None:
    await put(bucket, "src", b"copy me", attrs=aiobucket.UploadAttrs(metadata={"m": "1"}))
    attrs = await bucket.copy("src", "dst", attrs=aiobucket.UploadAttrs(content_type="text/x"))
    assert attrs.content_type == "text/x" and dict(attrs.metadata) == {}
    assert attrs.md5 == hashlib.md5(b"copy me").hexdigest()
    with pytest.raises(aiobucket.PreconditionFailed):
        await bucket.copy("src", "dst", preconditions=aiobucket.Preconditions(not_exists=True))


# -- the CLI ---------------------------------------------------------------------------------


def test_cli_copies_lists_and_removes_on_azure(tmp_path, azurite_server: AzuriteServer) -> None:
    from test_cli import ok

    s = azurite_server.settings()
    prefix = f"cli-{uuid.uuid4().hex[:8]}/"
    (tmp_path / "aiobucket.toml").write_text(
        f'[buckets.blobs]\nurl = "{s["url"]}"\naccount_key = "{s["account_key"]}"\nkey_prefix = "{prefix}"\n'
    )
    cfg = tmp_path / "aiobucket.toml"
    (tmp_path / "note.txt").write_bytes(b"hello azure\n")
    ok(tmp_path, "cp", "note.txt", "blobs:dir/note.txt", config=cfg)
    assert ok(tmp_path, "cat", "blobs:dir/note.txt", config=cfg) == b"hello azure\n"
    assert b"dir/note.txt" in ok(tmp_path, "ls", "-r", "blobs:", config=cfg)
    assert b"md5" in ok(tmp_path, "stat", "blobs:dir/note.txt", config=cfg)
    assert b"sig=" in ok(tmp_path, "url", "--signed", "get", "blobs:dir/note.txt", config=cfg)
    assert b"sp=c&" in ok(tmp_path, "url", "--signed", "put", "--create-only", "blobs:new.txt", config=cfg)
    ok(tmp_path, "rm", "blobs:dir/note.txt", config=cfg)
    assert ok(tmp_path, "ls", "-r", "blobs:", config=cfg) == b""


# -- credentials: a SAS token ---------------------------------------------------------------


async def test_a_sas_token_authorises_every_operation(azurite_server: AzuriteServer) -> None:
    """The second credential in the order: a container SAS (made here with the SDK, as its
    owner would hand it out) appended to every request, Blob Batch included; it cannot
    sign new URLs (NotSupported), and an account key, when also given, is preferred."""
    from datetime import UTC, datetime

    from azure.storage.blob import ContainerSasPermissions, generate_container_sas
    from servers.azurite_server import ACCOUNT, ACCOUNT_KEY

    token = generate_container_sas(
        ACCOUNT, azurite_server.container, account_key=ACCOUNT_KEY,
        permission=ContainerSasPermissions(read=True, write=True, delete=True, list=True, create=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )  # fmt: skip
    name = f"t-{uuid.uuid4().hex[:10]}"
    settings = azurite_server.settings(key_prefix=f"{name}/", sas_token="?" + token)
    del settings["account_key"]
    with config.override({name: settings}):
        b = aiobucket.Bucket(name)
        assert type(provider(b).auth).__name__ == "SasAuth"
        await put(b, "dir/a b.txt", b"via sas")
        async with b.upload("big", part_size=1024) as w:  # staged blocks and a block list
            await w.write(b"x" * 3000)
        assert await b.download("dir/a b.txt").read() == b"via sas"
        assert (await b.attrs("big")).size == 3000
        assert [e.name async for _, e in b.list() if e is not None] == ["big", "dir/a b.txt"]
        await b.copy("big", "big2")
        results = [(err, key) async for err, key in b.remove_many(["big", "big2"])]
        assert results == [(None, "big"), (None, "big2")]
        with pytest.raises(aiobucket.NotSupported, match="SAS token"):
            await b.signed_download_url("dir/a b.txt")
        await aiobucket.aclose()
    both = azurite_server.settings(key_prefix=f"{name}/", sas_token="sv=2020-02-10&sig=bm9wZQ%3D%3D")
    with config.override({name: both}):
        b = aiobucket.Bucket(name)
        assert type(provider(b).auth).__name__ == "SharedKeyAuth"
        assert await b.download("dir/a b.txt").read() == b"via sas"
        await aiobucket.aclose()


async def test_a_connection_string_configures_the_bucket(azurite_server: AzuriteServer) -> None:
    """The SDK's connection string for Azurite (BlobEndpoint, AccountName, AccountKey)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    settings = {
        "url": f"az://{azurite_server.container}",
        "connection_string": azurite_server.connection_string(),
        "key_prefix": f"{name}/",
    }
    with config.override({name: settings}):
        b = aiobucket.Bucket(name)
        await put(b, "k", b"configured by a connection string")
        assert await b.download("k").read() == b"configured by a connection string"
        assert "sig=" in await b.signed_download_url("k")
        await aiobucket.aclose()
