"""AAD credentials end to end on Azurite over HTTPS with ``--oauth basic``.

The shared Azurite fixture speaks plain HTTP, where Azurite refuses bearer tokens (quirk
user_delegation_sas_needs_oauth). This module starts a second one with a self-signed
certificate for 127.0.0.1, reached through the bucket's ``ca_bundle`` option, so that
bearer-token requests and user-delegation SAS URLs (create-only ``sp=c`` included) are
checked by the server itself, not only by a persona. The token is the only stand-in:
Azurite checks its audience, issuer and times, not a signature (Entra ID cannot be
reached from here).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import pytest
from servers._proc import missing, stop, tail
from servers.azurite import INSTALL_HINT
from servers.azurite_server import AzuriteServer, azurite_binary, start
from test_azure import _emulator_jwt, quirk

import aiobucket
from aiobucket import Preconditions, _runtime, config

pytestmark = pytest.mark.anyio
EMULATOR_OID = "23657296-5cd5-45b0-a809-d972a7f4dfe1"
"""The oid claim of test_azure's emulator token: Azurite puts it in the delegation key."""


def _self_signed(base: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = base / "cert.pem", base / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def https_azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AzuriteServer, Path]]:
    binary = azurite_binary()
    if binary is None:
        missing("Azurite (`azurite-blob`)", INSTALL_HINT)
        raise AssertionError("unreachable")
    base = tmp_path_factory.mktemp("azurite-oauth")
    tls = _self_signed(base)
    try:
        proc, server = start(base, binary, tls=tls)
    except BaseException:
        print(f"azurite log tail:\n{tail(base / 'azurite.log')}", file=sys.stderr)
        raise
    try:
        yield server, tls[0]
    finally:
        stop(proc)


class _EmulatorToken:
    """Stands in for azure-identity's DefaultAzureCredential (Entra ID is not reachable)."""

    async def get_token(self, *scopes: str) -> object:
        from azure.core.credentials import AccessToken

        assert scopes == ("https://storage.azure.com/.default",)
        return AccessToken(_emulator_jwt(), int(dt.datetime.now(dt.UTC).timestamp()) + 3600)

    async def close(self) -> None:
        return None


@pytest.fixture
async def aad_bucket(https_azurite: tuple[AzuriteServer, Path]) -> AsyncIterator[aiobucket.Bucket]:
    server, ca = https_azurite
    name = f"t-{uuid.uuid4().hex[:10]}"
    settings = server.settings(key_prefix=f"{name}/", ca_bundle=str(ca))
    del settings["account_key"]  # no key, no SAS token: AAD
    with config.override({name: settings}):
        b = aiobucket.Bucket(name)
        provider = _runtime.provider_for(b.name, b.config)[0]
        getattr(provider, "inner", provider).auth._credential = _EmulatorToken()
        yield b
        await aiobucket.aclose()


async def test_bearer_token_requests_over_the_ca_bundle(aad_bucket: aiobucket.Bucket) -> None:
    async with aad_bucket.upload("a b.txt") as w:
        await w.write(b"over https")
    assert await aad_bucket.download("a b.txt").read() == b"over https"
    assert [e.name async for _, e in aad_bucket.list() if e is not None] == ["a b.txt"]


async def test_user_delegation_sas_urls_use_a_key_azurite_issued(aad_bucket: aiobucket.Bucket) -> None:
    once = await aad_bucket.signed_upload_url("new.txt", preconditions=Preconditions(not_exists=True))
    again = await aad_bucket.signed_upload_url("k.txt")
    down = await aad_bucket.signed_download_url("k.txt")
    for url, permission in ((once, "c"), (again, "cw"), (down, "r")):
        q = dict(parse_qsl(urlsplit(url).query))
        assert (q["sp"], q["sr"], q["skoid"]) == (permission, "b", EMULATOR_OID), q  # from the token


@quirk("user_delegation_sas_2026_layout")
async def test_user_delegation_sas_urls_are_honoured_by_azurite(
    aad_bucket: aiobucket.Bucket, https_azurite: tuple[AzuriteServer, Path]
) -> None:
    tls = ssl.create_default_context(cafile=str(https_azurite[1]))
    async with aad_bucket.upload("k.txt") as w:
        await w.write(b"stored")
    once = await aad_bucket.signed_upload_url("new.txt", preconditions=Preconditions(not_exists=True))
    again = await aad_bucket.signed_upload_url("k.txt")
    down = await aad_bucket.signed_download_url("k.txt")
    blob = {"x-ms-blob-type": "BlockBlob"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls)) as s:
        async with s.get(down) as resp:
            assert (resp.status, await resp.read()) == (200, b"stored")
        async with s.put(once, data=b"first", headers=blob) as resp:
            assert resp.status == 201, await resp.text()
        async with s.put(once, data=b"second", headers=blob) as resp:  # create-only: no overwrite
            assert resp.status == 403, await resp.text()
        async with s.put(again, data=b"replaced", headers=blob) as resp:
            assert resp.status == 201, await resp.text()
    assert await aad_bucket.download("new.txt").read() == b"first"
    assert await aad_bucket.download("k.txt").read() == b"replaced"


async def test_a_ca_bundle_that_cannot_be_read_is_invalid_argument(
    https_azurite: tuple[AzuriteServer, Path], tmp_path: Path
) -> None:
    server, _ = https_azurite
    name = f"t-{uuid.uuid4().hex[:10]}"
    with config.override({name: server.settings(ca_bundle=str(tmp_path / "missing.pem"))}):
        with pytest.raises(aiobucket.InvalidArgument, match="ca_bundle"):
            await aiobucket.Bucket(name).exists("k")
        await aiobucket.aclose()
    # And without it, the self-signed certificate is not trusted: the system's store is used.
    with config.override({name: server.settings(max_attempts=1)}):
        with pytest.raises(aiobucket.BucketError, match=r"(?i)certificate|ssl"):
            await aiobucket.Bucket(name).exists("k")
        await aiobucket.aclose()
