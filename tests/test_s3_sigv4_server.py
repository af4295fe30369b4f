"""Requests signed by our SigV4 signer, sent with plain aiohttp to real S3 servers.

The server is the judge: correctly signed PUT, GET, ranged GET, listing and multipart
calls succeed; an altered signature, an altered signed header, a stale date or another
key than the one signed are refused, and nothing is stored. SeaweedFS always; Ceph RGW
where installed; moto for the requests that must succeed (AIOBUCKET_BACKENDS narrows).

What the servers do not check was found here and is declared in UNCHECKED (each such
test is a strict xfail there). SeaweedFS 4.48 does not check that the body hashes to its
signed ``x-amz-content-sha256`` (it does check Content-MD5 and x-amz-checksum-crc32c,
so integrity there must come from those); RGW 16.2 checks the payload hash and
Content-MD5 but ignores x-amz-checksum-crc32c. Neither checks the scope's region. moto
5.2 checks no signature and no body digest at all.
"""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp
import pytest
from servers.seaweedfs import S3Server
from yarl import URL

from aiobucket.providers.s3._sigv4 import (
    EMPTY_SHA256,
    UNSIGNED_PAYLOAD,
    Credentials,
    SigV4Signer,
    canonical_query,
    quote_path,
)

pytestmark = [pytest.mark.anyio, pytest.mark.s3]

# Keys whose encoding the signer and the server must agree on.
KEYS = ["plain.txt", "sp ace/ü nï cødé/日本.bin", "plus+percent%tilde~&=?#.dat", "emoji 😀 (1)"]


@dataclass
class Client:
    server: S3Server
    http: aiohttp.ClientSession
    signer: SigV4Signer
    creds: Credentials
    prefix: str

    def url(self, key: str = "", params: dict[str, str] | None = None) -> str:
        path = f"/{self.server.bucket}/" + quote_path(self.prefix + key)
        query = canonical_query(params) if params else ""
        return f"{self.server.endpoint}{path}" + (f"?{query}" if query else "")

    async def send(
        self,
        method: str,
        url: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        *,
        payload_hash: str | None = None,
        tamper: bool = False,
    ) -> tuple[int, bytes]:
        hdrs = dict(headers or {})
        digest = payload_hash or (hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256)
        self.signer.sign(method, url, hdrs, digest, self.creds)
        if tamper:  # flip the signature's last hex digit
            auth = hdrs["authorization"]
            hdrs["authorization"] = auth[:-1] + ("0" if auth[-1] != "0" else "1")
        return await self.raw(method, url, body, hdrs)

    async def raw(self, method: str, url: str, body: bytes, hdrs: dict[str, str]) -> tuple[int, bytes]:
        """Send as given, no signing. ``encoded=True``: yarl sends the path exactly as signed."""
        async with self.http.request(method, URL(url, encoded=True), data=body or None, headers=hdrs) as resp:
            return resp.status, await resp.read()

    async def get(self, key: str) -> tuple[int, bytes]:
        return await self.send("GET", self.url(key))


UNCHECKED: dict[str, dict[str, str]] = {
    "s3": {
        "payload_sha256": "SeaweedFS 4.48 stores a body that does not match its signed x-amz-content-sha256",
        "region": "SeaweedFS 4.48 accepts a signature whose credential scope names another region",
    },
    "moto": {
        "signature": "moto 5.2 authenticates nothing: any signature, or none, is accepted",
        "content_md5": "moto 5.2 stores a body that does not match its Content-MD5",
        "checksum_crc32c": "moto 5.2 stores a body that does not match its x-amz-checksum-crc32c",
    },
    "rgw": {
        "region": "RGW 16.2 accepts a signature whose credential scope names another region",
        "unsigned_amz_header": "RGW 16.2 accepts an x-amz-meta-* header that is not among the signed headers",
        "checksum_crc32c": "RGW 16.2 ignores x-amz-checksum-crc32c (it predates flexible checksums)",
    },
}
"""What each server leaves unverified; a test of it runs as a strict xfail there."""


def _selected(name: str) -> bool:
    names = [n.strip() for n in os.environ.get("AIOBUCKET_BACKENDS", "").split(",") if n.strip()]
    return not names or name in names


@pytest.fixture(params=["s3", "rgw", "moto"])
def server(request: pytest.FixtureRequest) -> S3Server:
    """Resolved outside the test's event loop: the server fixtures start their servers synchronously."""
    if not _selected(request.param):
        pytest.skip(f"{request.param} not in AIOBUCKET_BACKENDS")
    found: S3Server = request.getfixturevalue(f"{request.param}_server")
    return found


@pytest.fixture
async def client(server: S3Server) -> AsyncIterator[Client]:
    creds = Credentials(server.access_key, server.secret_key)
    async with aiohttp.ClientSession() as http:
        yield Client(server, http, SigV4Signer(server.region), creds, f"sigv4-{uuid.uuid4().hex[:8]}/")


def unchecked(request: pytest.FixtureRequest, *what: str) -> None:
    """Turn the test into a strict xfail on a server known not to verify one of ``what``."""
    declared = UNCHECKED[request.node.callspec.params["server"]]
    reasons = [declared[w] for w in what if w in declared]
    if reasons:
        request.applymarker(pytest.mark.xfail(strict=True, reason="; ".join(reasons)))


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli, reflected 0x82F63B78), bit by bit: enough for a few test bytes."""
    crc = 0xFFFFFFFF
    for byte in data:  # check value: crc32c(b"123456789") == 0xE3069283
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def code(body: bytes) -> str:
    return ET.fromstring(body).findtext("Code") or ""


@pytest.mark.parametrize("key", KEYS)
async def test_signed_put_get_and_list_succeed(client: Client, key: str) -> None:
    data = f"payload for {key}".encode() * 100
    status, body = await client.send(
        "PUT", client.url(key), data, {"content-type": "application/octet-stream", "x-amz-meta-note": "a  b"}
    )
    assert status == 200, body
    assert await client.get(key) == (200, data)
    status, body = await client.send("GET", client.url(key), headers={"Range": "bytes=2-9"})
    assert (status, body) == (206, data[2:10])

    listing = f"{client.server.endpoint}/{client.server.bucket}?" + canonical_query(
        {"list-type": "2", "prefix": client.prefix + key[:6], "max-keys": "1000"}
    )
    status, body = await client.send("GET", listing)
    assert status == 200, body
    ns = {"s3": "http://s3.amazonaws.com/doc/2006-03-01/"}
    assert client.prefix + key in [k.text for k in ET.fromstring(body).iterfind("s3:Contents/s3:Key", ns)]


async def test_unsigned_payload_put_succeeds(client: Client) -> None:
    status, body = await client.send("PUT", client.url("unsigned"), b"abc", payload_hash=UNSIGNED_PAYLOAD)
    assert status == 200, body
    assert await client.get("unsigned") == (200, b"abc")


async def test_multipart_subresources_are_signed(client: Client) -> None:
    status, body = await client.send("POST", client.url("mp", {"uploads": ""}))
    assert status == 200, body
    upload_id = ET.fromstring(body).findtext("{http://s3.amazonaws.com/doc/2006-03-01/}UploadId")
    assert upload_id
    part = client.url("mp", {"partNumber": "1", "uploadId": upload_id})
    status, body = await client.send("PUT", part, b"x" * 1024)
    assert status == 200, body
    status, body = await client.send("DELETE", client.url("mp", {"uploadId": upload_id}))
    assert status == 204, body


@pytest.mark.parametrize("key", KEYS[:2])
async def test_altered_signature_is_refused_and_nothing_stored(
    client: Client, key: str, request: pytest.FixtureRequest
) -> None:
    unchecked(request, "signature")
    status, body = await client.send("PUT", client.url(key), b"forged", tamper=True)
    assert status == 403, body
    await assert_refused_and_absent(client, status, body, "SignatureDoesNotMatch", key)


async def assert_refused_and_absent(client: Client, status: int, body: bytes, want: str, key: str) -> None:
    assert status in (400, 403), body
    assert code(body) == want, body
    status, body = await client.get(key)
    assert status == 404 and code(body) == "NoSuchKey", body


async def test_altered_signed_header_or_path_is_refused(
    client: Client, request: pytest.FixtureRequest
) -> None:
    """The signature covers the signed headers' values and the path."""
    unchecked(request, "signature")
    digest = hashlib.sha256(b"body").hexdigest()
    hdrs = {"content-type": "text/plain"}
    client.signer.sign("PUT", client.url("ctype"), hdrs, digest, client.creds)
    hdrs["content-type"] = "text/html"
    status, body = await client.raw("PUT", client.url("ctype"), b"body", hdrs)
    await assert_refused_and_absent(client, status, body, "SignatureDoesNotMatch", "ctype")

    hdrs = {}
    client.signer.sign("PUT", client.url("signed-for-this"), hdrs, digest, client.creds)
    status, body = await client.raw("PUT", client.url("sent-to-that"), b"body", hdrs)
    await assert_refused_and_absent(client, status, body, "SignatureDoesNotMatch", "sent-to-that")


async def test_unsigned_amz_header_is_refused(client: Client, request: pytest.FixtureRequest) -> None:
    """AWS requires every x-amz-* header to be signed (403); so sign() signs all headers present."""
    unchecked(request, "signature", "unsigned_amz_header")
    hdrs: dict[str, str] = {}
    client.signer.sign("PUT", client.url("meta"), hdrs, hashlib.sha256(b"body").hexdigest(), client.creds)
    hdrs["x-amz-meta-added"] = "after signing"
    status, body = await client.raw("PUT", client.url("meta"), b"body", hdrs)
    assert status == 403, body
    assert (await client.get("meta"))[0] == 404


async def test_wrong_secret_and_stale_date_are_refused(
    client: Client, request: pytest.FixtureRequest
) -> None:
    unchecked(request, "signature")
    digest = hashlib.sha256(b"body").hexdigest()
    hdrs: dict[str, str] = {}
    wrong = Credentials(client.creds.access_key, client.creds.secret_key + "x")
    client.signer.sign("PUT", client.url("wrong-secret"), hdrs, digest, wrong)
    status, body = await client.raw("PUT", client.url("wrong-secret"), b"body", hdrs)
    await assert_refused_and_absent(client, status, body, "SignatureDoesNotMatch", "wrong-secret")

    hdrs = {}
    stale = datetime.now() - timedelta(hours=1)  # AWS allows 15 minutes of skew
    client.signer.sign("PUT", client.url("stale"), hdrs, digest, client.creds, now=stale.astimezone())
    status, body = await client.raw("PUT", client.url("stale"), b"body", hdrs)
    await assert_refused_and_absent(client, status, body, "RequestTimeTooSkewed", "stale")


async def test_another_region_in_the_scope_is_refused(client: Client, request: pytest.FixtureRequest) -> None:
    unchecked(request, "signature", "region")
    hdrs: dict[str, str] = {}
    other = "eu-west-3" if client.server.region != "eu-west-3" else "us-west-2"
    SigV4Signer(other).sign("PUT", client.url("region"), hdrs, EMPTY_SHA256, client.creds)
    status, body = await client.raw("PUT", client.url("region"), b"", hdrs)
    assert status in (400, 403), body
    assert (await client.get("region"))[0] == 404


async def test_body_not_matching_signed_sha256_is_refused(
    client: Client, request: pytest.FixtureRequest
) -> None:
    unchecked(request, "signature", "payload_sha256")
    signed = hashlib.sha256(b"the body we signed").hexdigest()
    status, body = await client.send("PUT", client.url("mismatch"), b"another body sent", payload_hash=signed)
    await assert_refused_and_absent(client, status, body, "XAmzContentSHA256Mismatch", "mismatch")


@pytest.mark.parametrize("header", ["content-md5", "x-amz-checksum-crc32c"])
async def test_body_not_matching_its_checksum_header_is_refused(
    client: Client, header: str, request: pytest.FixtureRequest
) -> None:
    """What integrity rests on where the payload hash is unchecked (or UNSIGNED-PAYLOAD)."""
    unchecked(request, "checksum_crc32c" if header == "x-amz-checksum-crc32c" else "content_md5")
    sent, meant = b"another body sent", b"the body we meant"
    value = {
        "content-md5": base64.b64encode(hashlib.md5(meant).digest()).decode(),
        "x-amz-checksum-crc32c": base64.b64encode(crc32c(meant).to_bytes(4, "big")).decode(),
    }[header]
    status, body = await client.send("PUT", client.url("bad-digest"), sent, {header: value})
    await assert_refused_and_absent(client, status, body, "BadDigest", "bad-digest")
    status, body = await client.send("PUT", client.url("good-digest"), meant, {header: value})
    assert status == 200, body
    assert await client.get("good-digest") == (200, meant)
