"""The SSE-KMS bucket persona: S3 as it answers for a bucket whose objects are KMS-encrypted.

A small HTTP server on 127.0.0.1 in front of moto's server (which checks no signature,
so the edits below need no re-signing). Requests pass through to moto; the persona
changes what only an SSE-KMS bucket on AWS does differently, one rule per behaviour,
each citing the AWS page it follows:

- ``kms_etags``: an object's ETag is not an MD5 of its bytes. The persona shows moto's
  ETag E as E's hex digits reversed (32 hex digits, the same "-N" suffix), on every
  answer (ETag headers and the ETags in XML bodies), and turns them back on the way in
  (If-Match, If-None-Match, x-amz-copy-source-if-match, the part list of a completion).
- ``kms_decrypt=False``: the caller has no kms:Decrypt on the key. A GET of an object,
  a copy (CopyObject, UploadPartCopy) and a HEAD that asks for checksums
  (``x-amz-checksum-mode: ENABLED``) get 403 AccessDenied; a plain HEAD works.
- ``require_sse``: the bucket policy denies s3:PutObject (PutObject, CopyObject,
  CreateMultipartUpload) without ``x-amz-server-side-encryption: aws:kms``.
- ``owner``: a request whose ``x-amz-expected-bucket-owner`` names another account is
  refused (moto does not check it).
- A HEAD with ``x-amz-checksum-mode`` reports the stored checksums, as AWS does (moto
  reports them on GET only).

Every object answer carries ``x-amz-server-side-encryption: aws:kms`` and the key id.
Faults of the network (a lost response, 409 once) are added by ``tests/faultproxy.py``
in front of the persona.

``requests`` records (method, path, query, headers) of every request, for assertions.

As a pytest plugin (``tests/conftest.py`` lists it as the backend ``aws-kms``), it runs the
conformance suite against moto behind ``KmsBucket()``: every guarantee must hold on an
SSE-KMS bucket too.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web
from servers.moto import QUIRKS as MOTO_QUIRKS
from servers.seaweedfs import S3Server

__all__ = ["QUIRKS", "KmsBucket", "conformance_target", "kms_bucket", "kms_etag"]

QUIRKS: dict[str, str] = dict(MOTO_QUIRKS)
"""moto's quirks: the persona passes moto's answers through."""

KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/0a1b2c3d-persona"
_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "host",
}  # Content-Encoding is end to end: kept
_CONDITIONS = ("if-match", "if-none-match", "x-amz-copy-source-if-match", "x-amz-copy-source-if-none-match")
_XML_ETAG = re.compile(rb"<ETag>(&quot;|&#34;|\")?([0-9a-fA-F]{32})(-\d+)?(&quot;|&#34;|\")?</ETag>")
# Requests whose query names a bucket- or upload-level resource, not an object's bytes.
_NOT_OBJECT = ("uploads", "uploadId", "list-type", "versions", "delete", "location", "tagging", "acl")


def kms_etag(etag: str) -> str:
    """The persona's ETag for moto's: hex reversed (its own inverse), suffix kept.

    https://docs.aws.amazon.com/AmazonS3/latest/API/API_Object.html (ETag): "Objects
    created by the PUT Object, POST Object, or Copy operation ... that are encrypted by
    SSE-C or SSE-KMS, have ETags that are not an MD5 digest of their object data."
    """
    quoted = etag.startswith('"')
    bare = etag.strip('"')
    digest, dash, parts = bare.partition("-")
    if len(digest) != 32:
        return etag
    out = digest[::-1] + dash + parts
    return f'"{out}"' if quoted else out


@dataclass
class Seen:
    method: str
    path: str
    query: str
    headers: dict[str, str]


@dataclass
class KmsBucket:
    upstream: str
    kms_decrypt: bool = True
    require_sse: bool = False
    owner: str = "123456789012"
    """The account that owns the bucket (moto's default account)."""
    requests: list[Seen] = field(default_factory=list)
    url: str = ""
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _stop: asyncio.Event | None = None

    # -- the rules --------------------------------------------------------------------

    def refusal(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str]
    ) -> bytes | None:
        """An AccessDenied message when AWS would refuse the request, else None."""
        on_object = path.count("/") >= 2 and path.split("/", 2)[2] != ""
        object_read = on_object and not any(k in query for k in _NOT_OBJECT)
        checksummed = method == "HEAD" and headers.get("x-amz-checksum-mode") == "ENABLED"
        copying = method == "PUT" and "x-amz-copy-source" in headers  # reads the source's bytes
        if not self.kms_decrypt and (copying or (object_read and (method == "GET" or checksummed))):
            # https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html
            # ("...you must have kms:Decrypt permission to download an SSE-KMS object") and
            # https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html
            # (HeadObject with ChecksumMode on an SSE-KMS object needs kms:Decrypt), and
            # https://docs.aws.amazon.com/AmazonS3/latest/API/API_CopyObject.html (copying an
            # SSE-KMS object needs kms:Decrypt on its key).
            return b"User is not authorized to perform: kms:Decrypt on resource: " + KEY_ARN.encode()
        creates = (method == "PUT" and "partNumber" not in query) or (method == "POST" and "uploads" in query)
        unencrypted = headers.get("x-amz-server-side-encryption") != "aws:kms"
        if self.require_sse and on_object and creates and unencrypted:
            # https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html
            # ("Requiring SSE-KMS for all objects written to a bucket": Deny s3:PutObject
            # when s3:x-amz-server-side-encryption is not aws:kms; CopyObject and
            # CreateMultipartUpload are s3:PutObject requests too).
            return b"Access Denied by bucket policy: x-amz-server-side-encryption must be aws:kms"
        return None

    # -- the server --------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        headers = {k.lower(): v for k, v in request.headers.items()}
        path, query_string = request.path, request.query_string
        self.requests.append(Seen(request.method, path, query_string, headers))
        query = parse_qs(query_string, keep_blank_values=True)
        denied = self.refusal(request.method, path, query, headers)
        owner = headers.get("x-amz-expected-bucket-owner")
        if denied is None and owner is not None and owner != self.owner:
            # https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucket-owner-condition.html:
            # "If the bucket is owned by a different account, the request fails with HTTP 403".
            denied = b"Access Denied: the bucket is owned by another account"
        if denied is not None:
            body = b"" if request.method == "HEAD" else _error(b"AccessDenied", denied)
            return web.Response(status=403, body=body, content_type="application/xml")
        body = await request.read()
        out = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        for name in (
            "if-match",
            "if-none-match",
            "x-amz-copy-source-if-match",
            "x-amz-copy-source-if-none-match",
        ):
            for k in [k for k in out if k.lower() == name]:
                out[k] = kms_etag(out[k])
        if request.method == "POST" and "uploadId" in query and body:
            body = _XML_ETAG.sub(_reverse_xml, body)  # the completion's part list
            for k in [k for k in out if k.lower() == "content-md5"]:
                del out[k]  # the body changed on the way (moto checks no Content-MD5 anyway)
        target = self.upstream + str(request.rel_url)
        method = request.method
        if method == "HEAD" and headers.get("x-amz-checksum-mode") == "ENABLED":
            # https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html: with
            # ChecksumMode enabled a HEAD reports the stored checksums. moto 5.2 reports
            # them on GET only: ask it with a GET and keep the head.
            method = "GET"
        assert self._session is not None
        async with self._session.request(method, target, headers=out, data=body, allow_redirects=False) as up:
            data = await up.read()
            answer = {k: v for k, v in up.headers.items() if k.lower() not in _HOP}
        for k in [k for k in answer if k.lower() == "etag"]:
            answer[k] = kms_etag(answer[k])
        if data[:200].lstrip().startswith(b"<?xml") or b"<ETag>" in data[:4096]:
            data = _XML_ETAG.sub(_reverse_xml, data)
        if path.count("/") >= 2 and up.status < 300:
            # https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html:
            # object answers name the encryption and the key.
            answer["x-amz-server-side-encryption"] = "aws:kms"
            answer["x-amz-server-side-encryption-aws-kms-key-id"] = KEY_ARN
        if request.method == "HEAD":
            answer["Content-Length"] = up.headers.get("content-length") or "0"
            return web.Response(status=up.status, headers=answer)
        return web.Response(status=up.status, body=data, headers=answer)

    _session: aiohttp.ClientSession | None = None

    async def _main(self, started: threading.Event) -> None:
        self._stop = asyncio.Event()
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, auto_decompress=False)  # bodies pass as sent
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        started.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()
            await self._session.close()

    def __enter__(self) -> KmsBucket:
        started = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_until_complete, args=(self._main(started),), daemon=True
        )
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("the KMS persona did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._thread is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self._loop.close()

    def seen(self, method: str | None = None, header: str | None = None) -> Iterator[Seen]:
        for r in list(self.requests):
            if (method is None or r.method == method) and (header is None or header in r.headers):
                yield r


def _reverse_xml(m: re.Match[bytes]) -> bytes:
    open_q, digest, suffix, close_q = m.group(1) or b"", m.group(2), m.group(3) or b"", m.group(4) or b""
    return b"<ETag>" + open_q + digest[::-1] + suffix + close_q + b"</ETag>"


def _error(code: bytes, message: bytes) -> bytes:
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>' + code + b"</Code><Message>" + message
        + b"</Message><RequestId>KMSPERSONA</RequestId></Error>"
    )  # fmt: skip


def host_of(url: str) -> str:
    return urlsplit(url).netloc


@pytest.fixture(scope="session")
def kms_bucket(moto_server: S3Server) -> Iterator[S3Server]:
    """moto's server behind the SSE-KMS persona, as an S3Server pointing at the persona."""
    with KmsBucket(moto_server.endpoint) as kms:
        yield replace(moto_server, name="aws-kms", endpoint=kms.url, quirks=QUIRKS)


def conformance_target(request: pytest.FixtureRequest, versioned: bool) -> dict[str, object]:
    server: S3Server = request.getfixturevalue("kms_bucket")
    return server.settings(versioned)
