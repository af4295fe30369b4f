"""GCS reads: one request per read, and gzip-encoded objects (issue 19, items 4 and 5).

The client talks to ``FaultProxy`` (which counts its requests and injects faults),
in front of the GCS read persona (``personas/gcp_read.py``: fake-gcs-server with
the media headers GCS documents), in front of fake-gcs-server. Where a test runs
without the persona, it says so: the emulator lacks a header, and the provider
must still be right (with a metadata GET where the headers lack something).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import random
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from faultproxy import FaultProxy, LieLength, Request, ResetResponse, Rewrite
from personas.gcp_read import GcsReadPersona
from servers.fakegcs import GcsServer

import aiobucket
from aiobucket import UploadAttrs, config
from aiobucket.providers.gcs._download import READ_CHUNK, served_hashes

pytestmark = [pytest.mark.anyio, pytest.mark.gcs]

MiB = 1024 * 1024
TEXT = random.Random(19).randbytes(400_000).hex().encode()  # about 800 KB that compress to half
GZ = gzip.compress(TEXT, mtime=0)


def is_media(r: Request) -> bool:
    return r.method == "GET" and "alt=media" in r.query


def is_meta(r: Request) -> bool:
    return r.method == "GET" and "/o/" in r.path and "alt=media" not in r.query


def seen(proxy: FaultProxy, pred: Any) -> list[Request]:
    proxy.wait_idle()
    return [r for r in proxy.requests if pred(r)]


def reads(proxy: FaultProxy) -> tuple[int, int]:
    """(media GETs, metadata GETs) the client sent."""
    return len(seen(proxy, is_media)), len(seen(proxy, is_meta))


@pytest.fixture
def persona(gcs_server: GcsServer) -> Iterator[GcsReadPersona]:
    with GcsReadPersona(gcs_server.endpoint) as p:
        yield p


@contextlib.contextmanager
def routed(
    server: GcsServer, upstream: str, *, versioned: bool = False
) -> Iterator[tuple[aiobucket.Bucket, FaultProxy]]:
    with FaultProxy(upstream) as proxy:
        name = f"r-{uuid.uuid4().hex[:10]}"
        cloud = server.versioned_bucket if versioned else server.bucket
        settings = {
            "url": f"gs://{cloud}?endpoint={proxy.url}&emulator=true",
            "key_prefix": f"{name}/",
            "retries": 3,
        }
        with config.override({name: settings}):
            yield aiobucket.Bucket(name, aiobucket.BucketConfig(versioned=versioned)), proxy


@pytest.fixture
async def via_persona(
    gcs_server: GcsServer, persona: GcsReadPersona
) -> AsyncIterator[tuple[aiobucket.Bucket, FaultProxy]]:
    with routed(gcs_server, persona.url) as pair:
        yield pair
        await aiobucket.aclose()


@pytest.fixture(params=["via_persona", "direct"])
async def either(
    request: pytest.FixtureRequest, gcs_server: GcsServer
) -> AsyncIterator[tuple[aiobucket.Bucket, FaultProxy, str]]:
    """Through the persona, or straight to fake-gcs-server's own answers."""
    with contextlib.ExitStack() as stack:
        upstream = gcs_server.endpoint
        if request.param == "via_persona":
            upstream = stack.enter_context(GcsReadPersona(gcs_server.endpoint)).url
        b, proxy = stack.enter_context(routed(gcs_server, upstream))
        yield b, proxy, request.param
        await aiobucket.aclose()


async def put(b: aiobucket.Bucket, key: str, data: bytes, **kw: Any) -> aiobucket.ObjectAttrs:
    async with b.upload(key, **kw) as w:
        await w.write(data)
    return await w.close()


# -- item 4: one request per read -------------------------------------------------------


ATTRS = UploadAttrs(
    content_type="text/csv", cache_control="max-age=60", content_disposition="attachment", metadata={"k": "v"}
)


async def test_a_read_is_one_request_and_its_attrs_are_the_objects(
    either: tuple[aiobucket.Bucket, FaultProxy, str],
) -> None:
    b, proxy, _ = either
    data = os.urandom(300_000)
    await put(b, "obj.csv", data, attrs=ATTRS)
    head = await b.attrs("obj.csv")
    proxy.clear()
    async with b.download("obj.csv") as r:
        got = await r.attrs()
        assert await r.read() == data  # verified against the CRC32C from X-Goog-Hash
    assert reads(proxy) == (1, 0)
    for field in ("name", "size", "etag", "content_type", "cache_control", "content_disposition",
                  "crc32c", "md5", "content_encoding", "version"):  # fmt: skip
        assert getattr(got, field) == getattr(head, field), field
    assert dict(got.metadata) == dict(head.metadata) == {"k": "v"}
    assert got.last_modified is not None and head.last_modified is not None
    assert int(got.last_modified.timestamp()) == int(head.last_modified.timestamp())
    proxy.clear()
    async with b.download("obj.csv", offset=1000, length=5000) as r:
        assert (await r.attrs()).size == len(data)
        assert await r.read() == data[1000:6000]
    assert await b.download("obj.csv", offset=299_000).read() == data[299_000:]
    assert reads(proxy) == (2, 0)
    assert [r.header("Range") for r in seen(proxy, is_media)] == ["bytes=1000-5999", "bytes=299000-"]


async def test_versions_and_preconditions_hold_with_one_request(
    gcs_server: GcsServer, persona: GcsReadPersona
) -> None:
    with routed(gcs_server, persona.url, versioned=True) as (b, proxy):
        first = await put(b, "v", b"one")
        second = await put(b, "v", b"two!")
        proxy.clear()
        assert await b.download("v", version=first.version).read() == b"one"
        async with b.download("v") as r:
            assert (await r.attrs()).version == second.version
            assert await r.read() == b"two!"
        with pytest.raises(aiobucket.NotModified):
            await b.download("v", if_none_match=second.etag).read()
        assert await b.download("v", if_none_match=first.etag).read() == b"two!"
        with pytest.raises(aiobucket.RangeNotSatisfiable):
            await b.download("v", offset=10).read()
        media = seen(proxy, is_media)
        assert [r.query.count(f"generation={first.version}") for r in media[:1]] == [1]
        # A caching read is judged on the resource first (no body for NotModified), then pinned.
        assert reads(proxy) == (4, 2)
        await aiobucket.aclose()


async def test_resume_is_pinned_to_the_object(via_persona: tuple[aiobucket.Bucket, FaultProxy]) -> None:
    b, proxy = via_persona
    data = os.urandom(2 * MiB)
    await put(b, "obj", data)
    proxy.clear()
    proxy.add_rule(ResetResponse(after=MiB), when=is_media)
    assert await b.download("obj").read() == data
    assert reads(proxy) == (2, 0)
    assert seen(proxy, is_media)[1].header("Range") == f"bytes={MiB}-"
    # The object is replaced while a read is cut: the resume sees another etag.
    proxy.clear()
    proxy.add_rule(ResetResponse(after=MiB), when=is_media)
    reader = b.download("obj")
    first = await reader.read(READ_CHUNK)
    await put(b, "obj", os.urandom(2 * MiB))
    with pytest.raises(aiobucket.ObjectChanged):
        await reader.read()
    assert first and first == data[: len(first)]


async def test_short_body_is_resumed_with_the_stored_length(
    via_persona: tuple[aiobucket.Bucket, FaultProxy],
) -> None:
    """A media answer that lies about its length (shorter) ends early and is resumed: the
    stored length comes from X-Goog-Stored-Content-Length, not from Content-Length."""
    b, proxy = via_persona
    data = os.urandom(2 * MiB + 3)
    await put(b, "obj", data)
    proxy.clear()
    proxy.add_rule(LieLength(declared=MiB + 7), when=is_media)
    assert await b.download("obj").read() == data
    assert [r.header("Range") for r in seen(proxy, is_media)] == [None, f"bytes={MiB + 7}-"]


async def test_parallel_and_file_downloads_are_one_request_per_range(
    via_persona: tuple[aiobucket.Bucket, FaultProxy], tmp_path: Any
) -> None:
    b, proxy = via_persona
    data = os.urandom(3 * MiB + 5)
    await put(b, "big", data)
    proxy.clear()
    assert await b.download("big", concurrency=2, part_size=MiB).read() == data
    await b.download_to("big", tmp_path / "big", concurrency=2, part_size=MiB)
    assert (tmp_path / "big").read_bytes() == data
    assert reads(proxy) == (8, 0)


async def test_an_xml_style_etag_is_not_taken_for_the_objects_etag(
    via_persona: tuple[aiobucket.Bucket, FaultProxy],
) -> None:
    """The etag a download reports is the one attrs() reports: a media answer whose ETag is
    an MD5 in hex (the XML API's form) is completed from the metadata instead."""
    b, proxy = via_persona
    written = await put(b, "k", b"payload")
    proxy.clear()
    proxy.add_rule(Rewrite("response", {"ETag": '"321c3cf486ed509164edec1e1981fec8"'}), when=is_media)
    async with b.download("k") as r:
        assert (await r.attrs()).etag == written.etag == (await b.attrs("k")).etag
        assert await r.read() == b"payload"
    assert reads(proxy) == (1, 2)  # the media GET, its metadata GET, and attrs()


def test_x_goog_hash_is_read_in_one_line_or_several() -> None:
    from multidict import CIMultiDict, CIMultiDictProxy

    one = CIMultiDict({"X-Goog-Hash": "crc32c=n03x6A==,md5=Ojk9c3dhfxgoKVVHYwFbHQ=="})
    several = CIMultiDict(
        [("x-goog-hash", "crc32c=n03x6A=="), ("x-goog-hash", "md5=Ojk9c3dhfxgoKVVHYwFbHQ==")]
    )
    want = ("n03x6A==", "3a393d7377617f18282955476301 5b1d".replace(" ", ""))
    assert served_hashes(CIMultiDictProxy(one)) == want
    assert served_hashes(CIMultiDictProxy(several)) == want
    assert served_hashes(CIMultiDictProxy(CIMultiDict({"X-Goog-Hash": "crc32c=!!,md5=short"}))) == (
        None,
        None,
    )


# -- item 5: gzip-encoded objects --------------------------------------------------------


def store_gzip_like_gsutil(server: GcsServer, bucket: aiobucket.Bucket, key: str) -> None:
    """Store GZ with Content-Encoding: gzip as another tool would (gsutil cp -Z)."""
    name = config.resolve(bucket.name).key_prefix + key
    meta = json.dumps({"name": name, "contentEncoding": "gzip", "contentType": "text/plain"})
    body = (
        b"--b\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n" + meta.encode()
        + b"\r\n--b\r\nContent-Type: text/plain\r\n\r\n" + GZ + b"\r\n--b--\r\n"
    )  # fmt: skip
    req = urllib.request.Request(
        f"{server.endpoint}/upload/storage/v1/b/{server.bucket}/o?uploadType=multipart",
        data=body,
        method="POST",
        headers={"Content-Type": "multipart/related; boundary=b"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


async def test_gzip_object_stored_and_decoded_reads(
    either: tuple[aiobucket.Bucket, FaultProxy, str], gcs_server: GcsServer
) -> None:
    b, proxy, _ = either
    store_gzip_like_gsutil(gcs_server, b, "g.txt")
    head = await b.attrs("g.txt")
    assert (head.content_encoding, head.size) == ("gzip", len(GZ))
    proxy.clear()
    async with b.download("g.txt") as r:  # default: the stored bytes, checked on the stored CRC32C
        assert await r.content_encoding() == "gzip"
        assert await r.read() == GZ
    async with b.download("g.txt", decompress=True) as r:  # decoded, checked on the stored bytes
        assert await r.content_encoding() is None
        assert await r.read() == TEXT
    assert reads(proxy) == (2, 0)
    assert {r.header("Accept-Encoding") for r in seen(proxy, is_media)} == {"gzip"}


async def test_an_answer_decompressed_anyway_is_accepted(
    either: tuple[aiobucket.Bucket, FaultProxy, str], gcs_server: GcsServer
) -> None:
    """Something on the way drops our Accept-Encoding: gzip, so GCS transcodes. The decoded
    answer is accepted (its generation and framing checked) and says it is decoded."""
    b, proxy, _ = either
    store_gzip_like_gsutil(gcs_server, b, "g.txt")
    proxy.clear()
    proxy.add_rule(Rewrite("request", {"Accept-Encoding": None}), when=is_media, times=None)
    for decompress in (False, True):
        async with b.download("g.txt", decompress=decompress) as r:
            assert await r.content_encoding() is None
            assert (await r.attrs()).size == len(GZ)  # the stored object's attrs
            assert await r.read() == TEXT
    # GCS's decompressed answer has no hashes (persona), fake-gcs-server's no stored length:
    # either way the attrs are completed from the served generation's metadata.
    assert reads(proxy) == (2, 2)
    assert all(r.status == 200 for r in seen(proxy, is_media))


@pytest.mark.parametrize("rst", [True, False])
@pytest.mark.parametrize("upstream", ["via_persona", "direct"])
async def test_a_decompressed_answer_cut_short_is_never_a_short_success(
    gcs_server: GcsServer, upstream: str, rst: bool
) -> None:
    """No stored checksum applies to a decoded answer, so its framing is what is checked: cut
    after some bytes (a reset, or a clean close), the read ends in a typed error after handing
    out a prefix of the decoded bytes (a resume cannot help: GCS ignores Range when it
    transcodes, https://cloud.google.com/storage/docs/transcoding), or, if nothing was handed
    out yet, reads the whole object again; never a short success.
    Two proxies: the outer one drops Accept-Encoding (so the server transcodes), the inner
    one cuts the answer."""
    with contextlib.ExitStack() as stack:
        origin = gcs_server.endpoint
        if upstream == "via_persona":
            origin = stack.enter_context(GcsReadPersona(gcs_server.endpoint)).url
        cutter = stack.enter_context(FaultProxy(origin))
        b, proxy = stack.enter_context(routed(gcs_server, cutter.url))
        try:
            store_gzip_like_gsutil(gcs_server, b, "g.txt")
            proxy.add_rule(Rewrite("request", {"Accept-Encoding": None}), when=is_media, times=None)
            cutter.add_rule(ResetResponse(after=READ_CHUNK + 10, rst=rst), when=is_media)
            got, err = bytearray(), None
            try:
                async with b.download("g.txt") as r:
                    async for chunk in r:
                        got += chunk
            except aiobucket.BucketError as exc:
                err = exc
            media = seen(cutter, is_media)
            assert isinstance(media[0].fault, ResetResponse)  # the first answer was cut
            if err is None:  # nothing had been handed out: the read started again, whole
                assert bytes(got) == TEXT and len(media) == 2
            else:  # the resume asked a range of a transcoded object: refused, not spliced
                assert "ignores Range" in str(err)
                assert 0 < len(got) < len(TEXT) and TEXT.startswith(got)
        finally:
            await aiobucket.aclose()


async def test_corrupt_gzip_object_fails_on_its_stored_checksum(
    via_persona: tuple[aiobucket.Bucket, FaultProxy],
) -> None:
    from faultproxy import FlipByte

    b, proxy = via_persona
    await put(b, "g", GZ, attrs=UploadAttrs(content_encoding="gzip"))
    proxy.add_rule(FlipByte(offset=len(GZ) - 100, in_object=True), when=is_media, times=None)
    for decompress in (False, True):
        with pytest.raises(aiobucket.IntegrityError):
            await b.download("g", decompress=decompress).read()


async def test_copy_to_another_backend_keeps_what_is_stored(
    via_persona: tuple[aiobucket.Bucket, FaultProxy], gcs_server: GcsServer
) -> None:
    """A stream copy keeps the source's stored attributes, not what a read was served."""
    b, proxy = via_persona
    other = f"mem-{uuid.uuid4().hex[:8]}"
    with config.override({other: "memory://"}):
        dst = aiobucket.Bucket(other)
        await put(b, "plain.txt", b"hello", attrs=UploadAttrs(content_type="text/plain"))
        # https://cloud.google.com/storage/docs/caching: a publicly readable object without
        # Cache-Control metadata is served with "public, max-age=3600".
        proxy.add_rule(Rewrite("response", {"Cache-Control": "public, max-age=3600"}), when=is_media)
        copied = await b.copy("plain.txt", "plain.txt", dst_bucket=dst)
        assert (copied.cache_control, (await dst.attrs("plain.txt")).cache_control) == (None, None)
        # Decompressed on the way: the copy holds the bytes that came, and says they are plain.
        store_gzip_like_gsutil(gcs_server, b, "g.txt")
        proxy.add_rule(Rewrite("request", {"Accept-Encoding": None}), when=is_media)
        copied = await b.copy("g.txt", "g.txt", dst_bucket=dst)
        assert copied.content_encoding is None
        assert await dst.download("g.txt").read() == TEXT
        # As stored otherwise: the gzip bytes and their encoding.
        copied = await b.copy("g.txt", "g2.txt", dst_bucket=dst)
        assert copied.content_encoding == "gzip"
        assert await dst.download("g2.txt", decompress=True).read() == TEXT


async def test_a_read_carries_the_bucket_wide_parameters(gcs_server: GcsServer) -> None:
    """userProject (requester pays) joins the media GET's own query, not replaces it."""
    with FaultProxy(gcs_server.endpoint) as proxy:
        name = f"r-{uuid.uuid4().hex[:10]}"
        settings = {
            "url": f"gs://{gcs_server.versioned_bucket}?endpoint={proxy.url}&emulator=true",
            "key_prefix": f"{name}/",
            "user_project": "billed",
        }
        with config.override({name: settings}):
            b = aiobucket.Bucket(name, aiobucket.BucketConfig(versioned=True))
            first = await put(b, "k", b"one")
            await put(b, "k", b"two")
            proxy.clear()
            assert await b.download("k", version=first.version).read() == b"one"
            await aiobucket.aclose()
        (media,) = seen(proxy, is_media)
        assert {"alt=media", f"generation={first.version}", "userProject=billed"} <= set(
            media.query.split("&")
        )
