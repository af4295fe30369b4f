"""The GCS provider under injected faults: the fault proxy in front of a real fake-gcs-server.

Every test goes through the public API (``aiobucket.Bucket``, or the provider
contract where the Bucket API has no such call) with ``tests/faultproxy.py``
between the client and the server. The proxy records every request, so each
test states how many attempts were made and what each one got.

Where the emulator answers differently from GCS, the proxy plays GCS's answer
(said so in the test), or the test is a strict xfail naming the quirk in
``servers.fakegcs.QUIRKS``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import hashlib
import json
import os
import random
import threading
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import google_crc32c
import pytest
from faultproxy import (
    FaultProxy,
    FlipByte,
    Request,
    ResetResponse,
    Respond,
    Rewrite,
    Stall,
    gcs_error,
    lose_response,
)
from personas.gcp_write import GcsWritePreconditions
from servers.fakegcs import QUIRKS, GcsServer

import aiobucket
from aiobucket import config
from aiobucket.providers.base import GetOptions, PutOptions
from aiobucket.providers.gcs._download import READ_CHUNK

pytestmark = [pytest.mark.anyio, pytest.mark.gcs]

KiB = 1024
MiB = 1024 * KiB
RETRIES = 4  # attempts per request in these tests
FAST_RETRY = {"retry_initial": 0.1, "retry_cap": 8.0}  # Google's schedule, scaled down for tests
NE = aiobucket.Preconditions(not_exists=True)
GUARD = 30.0  # a hang guard only: every fault below ends long before it


# -- which request is which ------------------------------------------------------


def is_media(r: Request) -> bool:
    return r.method == "GET" and "alt=media" in r.query


def is_meta(r: Request) -> bool:
    return r.method == "GET" and "/o/" in r.path and "alt=media" not in r.query


def is_list(r: Request) -> bool:
    return r.method == "GET" and r.path.endswith("/o")


def is_small_upload(r: Request) -> bool:
    return r.method == "POST" and "uploadType=multipart" in r.query


def is_rewrite(r: Request) -> bool:
    return r.method == "POST" and "/rewriteTo/" in r.path


def _range(r: Request) -> str:
    return r.header("Content-Range") or ""


def is_chunk(r: Request) -> bool:
    """A resumable chunk PUT carrying bytes (not an offset query)."""
    return r.method == "PUT" and "upload_id=" in r.query and not _range(r).startswith("bytes */")


def is_final_chunk(r: Request) -> bool:
    return is_chunk(r) and not _range(r).endswith("/*")


def is_mid_chunk(r: Request) -> bool:
    return is_chunk(r) and _range(r).endswith("/*")


def is_offset_query(r: Request) -> bool:
    return r.method == "PUT" and "upload_id=" in r.query and _range(r).startswith("bytes */")


def is_delete(r: Request) -> bool:
    return r.method == "DELETE" and "/o/" in r.path


def seen(proxy: FaultProxy, pred: Callable[[Request], bool]) -> list[Request]:
    return [r for r in proxy.requests if pred(r)]


def statuses(proxy: FaultProxy, pred: Callable[[Request], bool]) -> list[int | None]:
    return [r.status for r in seen(proxy, pred)]


def crc32c(data: bytes) -> str:
    return base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode()


# -- fixtures ----------------------------------------------------------------------


@pytest.fixture
def proxy(gcs_server: GcsServer) -> Iterator[FaultProxy]:
    with FaultProxy(gcs_server.endpoint) as p:
        yield p


@contextlib.contextmanager
def routed_bucket(
    server: GcsServer, proxy: FaultProxy, versioned: bool = False, **options: object
) -> Iterator[aiobucket.Bucket]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    bucket = server.versioned_bucket if versioned else server.bucket
    settings = {
        "url": f"gs://{bucket}?endpoint={proxy.url}&emulator=true",
        "key_prefix": f"{name}/",
        "retries": RETRIES,
        **FAST_RETRY,
        **options,
    }
    with config.override({name: settings}):
        yield aiobucket.Bucket(name, aiobucket.BucketConfig(versioned=versioned))


@pytest.fixture
async def bucket(gcs_server: GcsServer, proxy: FaultProxy) -> AsyncIterator[aiobucket.Bucket]:
    with routed_bucket(gcs_server, proxy) as b:
        yield b
        await aiobucket.aclose()


def provider_of(b: aiobucket.Bucket) -> Any:
    """The bucket's GCS provider (under its key-prefix layer), for calls the Bucket API lacks."""
    from aiobucket import _runtime

    return _runtime.provider_for(b.name, b.config)[0]


async def put(b: aiobucket.Bucket, key: str, data: bytes, **kw: Any) -> aiobucket.ObjectAttrs:
    async with b.upload(key, **kw) as w:
        await w.write(data)
    return await w.close()


async def read(b: aiobucket.Bucket, key: str, **kw: Any) -> bytes:
    r = b.download(key, **kw)
    try:
        return await asyncio.wait_for(r.read(), GUARD)
    finally:
        await r.aclose()


async def read_until_error(b: aiobucket.Bucket, key: str, **kw: Any) -> tuple[bytes, BaseException]:
    """Stream a download; return what was handed out before it failed, and the error."""
    got = bytearray()
    r = b.download(key, **kw)
    try:
        async with asyncio.timeout(GUARD):
            async for chunk in r:
                got += chunk
    except aiobucket.BucketError as exc:
        return bytes(got), exc
    finally:
        await r.aclose()
    raise AssertionError(f"the download of {key!r} succeeded with {len(got)} bytes")


def quirk(name: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(strict=True, reason=f"quirk {name}: {QUIRKS[name]}")


STREAM = 3 * 256 * KiB + 1000  # a resumable upload: three full chunks and a short final one
STREAM_PART = 256 * KiB


# -- finding 1: a resumed or ranged read is never spliced ---------------------------


async def test_ranged_read_answered_200_is_refused(bucket: aiobucket.Bucket, proxy: FaultProxy) -> None:
    """``download(offset=1 MiB)`` answered 200 with the whole object must not return bytes from 0."""
    data = os.urandom(2 * MiB + 5)
    await put(bucket, "obj", data)
    whole = Respond(200, data, {"Content-Type": "application/octet-stream"})
    proxy.add_rule(whole, when=is_media)
    got, err = await read_until_error(bucket, "obj", offset=MiB)
    assert got == b""
    assert isinstance(err, aiobucket.ConnectionLost) and "ignored the range" in str(err)
    assert statuses(proxy, is_media) == [200]  # one media request, not retried, not used
    # A range from byte 0 answered with the whole object: its first bytes are the right ones.
    proxy.add_rule(whole, when=is_media)
    assert await read(bucket, "obj", length=1000) == data[:1000]
    assert statuses(proxy, is_media) == [200, 200]


async def test_resume_answered_200_is_not_spliced(bucket: aiobucket.Bucket, proxy: FaultProxy) -> None:
    data = os.urandom(3 * MiB + 17)
    await put(bucket, "obj", data)
    proxy.add_rule(ResetResponse(after=MiB), when=lambda r: is_media(r) and r.header("Range") is None)
    proxy.add_rule(Respond(200, data), when=lambda r: is_media(r) and r.header("Range") is not None)
    got, err = await read_until_error(bucket, "obj")
    assert 0 < len(got) <= MiB and got == data[: len(got)]  # the object's start never comes twice
    assert isinstance(err, aiobucket.ConnectionLost) and "ignored the range" in str(err)
    await proxy.settled()
    ranges = [r.header("Range") for r in seen(proxy, is_media)]
    assert ranges == [None, f"bytes={len(got)}-"]  # one request: the size is not known before it


@pytest.mark.parametrize("answer", ["other-generation", "other-size", "wrong-start"])
async def test_resume_from_another_generation_or_range_is_refused(
    bucket: aiobucket.Bucket, proxy: FaultProxy, answer: str
) -> None:
    data = os.urandom(3 * MiB + 17)
    await put(bucket, "obj", data)
    n = len(data)

    def resume(req: Request) -> bool:
        return is_media(req) and req.header("Range") is not None

    # A forged 206 for the resume (which starts at or before 1 MiB), wrong in one way.
    start = MiB
    other = os.urandom(n + 1)
    body, headers = {
        "other-generation": (
            other[start:n],
            {"Content-Range": f"bytes {start}-{n - 1}/{n}", "X-Goog-Generation": "1"},
        ),
        "other-size": (other[start:], {"Content-Range": f"bytes {start}-{n}/{n + 1}"}),
        "wrong-start": (other[: n - start], {"Content-Range": f"bytes 0-{n - 1 - start}/{n}"}),
    }[answer]
    proxy.add_rule(ResetResponse(after=start), when=lambda r: is_media(r) and r.header("Range") is None)
    proxy.add_rule(Respond(206, body, headers), when=resume)
    got, err = await read_until_error(bucket, "obj")
    assert 0 < len(got) <= start and got == data[: len(got)]
    if answer == "wrong-start":
        assert isinstance(err, aiobucket.ConnectionLost) and "for a read of bytes" in str(err)
    else:
        assert isinstance(err, aiobucket.ObjectChanged)


# test_short_content_length_is_resumed_not_truncated moved to test_gcs_reads.py: the stored
# length now comes from the media answer, so it runs through the GCS read persona, which sends
# X-Goog-Stored-Content-Length as GCS does (fake-gcs-server does not).


# -- gzip-encoded objects: read as stored, never transcoded and spliced ----------------


def _store_plain(server: GcsServer, name: str, data: bytes) -> None:
    """Store ``data`` straight into fake-gcs-server, as another writer would."""
    req = urllib.request.Request(
        f"{server.endpoint}/upload/storage/v1/b/{server.bucket}/o?uploadType=media&name={name}",
        data=data,
        method="POST",
        headers={"Content-Type": "application/octet-stream"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


def _store_gzip_encoded(server: GcsServer, name: str, blob: bytes) -> None:
    """Store ``blob`` with ``Content-Encoding: gzip`` as another tool would (aiobucket never sets it)."""
    meta = json.dumps({"name": name, "contentEncoding": "gzip", "contentType": "text/plain"})
    body = (
        b"--b\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n" + meta.encode()
        + b"\r\n--b\r\nContent-Type: text/plain\r\n\r\n" + blob + b"\r\n--b--\r\n"
    )  # fmt: skip
    req = urllib.request.Request(
        f"{server.endpoint}/upload/storage/v1/b/{server.bucket}/o?uploadType=multipart",
        data=body,
        method="POST",
        headers={"Content-Type": "multipart/related; boundary=b"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


@pytest.fixture
def gzip_object(gcs_server: GcsServer, bucket: aiobucket.Bucket) -> tuple[str, bytes]:
    """(key, stored bytes) of a gzip-encoded object under the test bucket's prefix."""
    text = random.Random(7).randbytes(700_000).hex().encode()  # compresses to about half
    blob = gzip.compress(text, mtime=0)
    assert len(blob) > 2 * READ_CHUNK  # a cut after the first chunk leaves bytes to resume
    prefix = config.resolve(bucket.name).key_prefix
    _store_gzip_encoded(gcs_server, f"{prefix}gz", blob)
    return "gz", blob


async def test_gzip_encoded_object_is_read_as_stored(
    bucket: aiobucket.Bucket, proxy: FaultProxy, gzip_object: tuple[str, bytes]
) -> None:
    """Asked with Accept-Encoding: gzip, GCS serves the stored bytes: they verify, and ranges
    and resumes work on them."""
    key, blob = gzip_object
    assert (await bucket.attrs(key)).crc32c == crc32c(blob)
    assert await read(bucket, key) == blob  # verified against the stored CRC32C
    assert await read(bucket, key, offset=1000, length=5000) == blob[1000:6000]
    proxy.add_rule(ResetResponse(after=READ_CHUNK + 10), when=is_media)
    assert await read(bucket, key) == blob
    await proxy.settled()
    media = seen(proxy, is_media)
    assert {r.header("Accept-Encoding") for r in media} == {"gzip"}
    assert media[-1].header("Range") is not None and media[-1].status == 206


@pytest.mark.parametrize("read_kind", ["ranged", "resumed"])
async def test_transcoded_gzip_answer_to_a_range_is_refused(
    bucket: aiobucket.Bucket, proxy: FaultProxy, gzip_object: tuple[str, bytes], read_kind: str
) -> None:
    """GCS decompresses a gzip-encoded object for a client that does not accept gzip, and
    then ignores Range (https://cloud.google.com/storage/docs/transcoding). Played here by
    dropping our Accept-Encoding on the way, so the server transcodes: a range of the stored
    bytes cannot come from such an answer, so it is a typed error and nothing is spliced."""
    key, blob = gzip_object
    transcode = Rewrite("request", {"Accept-Encoding": None})
    if read_kind == "resumed":  # the first answer is as stored and cut; the resume is transcoded
        proxy.add_rule(ResetResponse(after=READ_CHUNK + 10), when=is_media)
    proxy.add_rule(transcode, when=is_media, times=None)
    kw = {"offset": 1000} if read_kind == "ranged" else {}
    got, err = await read_until_error(bucket, key, **kw)
    assert isinstance(err, aiobucket.BackendError) and "ignores Range" in str(err)
    assert got == blob[: len(got)] and len(got) <= READ_CHUNK + 10
    await proxy.settled()
    answers = [(r.header("Range") is not None, r.status) for r in seen(proxy, is_media)]
    assert answers[-1][1] == 200  # the server did ignore the range and transcode
    assert len(answers) == (2 if read_kind == "resumed" else 1)  # refused, not retried


# -- finding 2: a lost answer to a conditional write is resolved -------------------


async def test_lost_answer_to_not_exists_upload_is_success(
    bucket: aiobucket.Bucket, proxy: FaultProxy
) -> None:
    data = os.urandom(64 * KiB)
    proxy.add_rule(lose_response(), when=is_small_upload)
    attrs = await put(bucket, "k", data, preconditions=NE)
    await proxy.settled()
    # The server applied the first attempt; the retry met our own object (412), and the
    # read-back recognised it.
    assert statuses(proxy, is_small_upload) == [200, 412]
    assert attrs.size == len(data) and attrs.crc32c == crc32c(data)
    assert await read(bucket, "k") == data


async def test_lost_answer_to_if_match_upload_is_success(bucket: aiobucket.Bucket, proxy: FaultProxy) -> None:
    first = await put(bucket, "k", b"first")
    data = os.urandom(64 * KiB)
    proxy.add_rule(lose_response(), when=is_small_upload)
    attrs = await put(bucket, "k", data, preconditions=aiobucket.Preconditions(if_match=first.etag))
    await proxy.settled()
    assert statuses(proxy, is_small_upload) == [200, 200, 412]  # the first put, then ours twice
    assert attrs.etag != first.etag
    assert await read(bucket, "k") == data


async def test_real_lost_race_after_a_503_is_precondition_failed(
    bucket: aiobucket.Bucket, proxy: FaultProxy
) -> None:
    await put(bucket, "k", b"someone else's")
    proxy.add_rule(gcs_error(503), when=is_small_upload)
    with pytest.raises(aiobucket.PreconditionFailed) as info:
        await put(bucket, "k", b"ours", preconditions=NE)
    assert not isinstance(info.value, aiobucket.OutcomeUnknown)
    await proxy.settled()
    assert statuses(proxy, is_small_upload) == [200, 503, 412]
    assert len(seen(proxy, is_meta)) == 1  # the read-back that compared the stored object
    assert await read(bucket, "k") == b"someone else's"


async def test_lost_answer_and_unreadable_object_is_outcome_unknown(
    bucket: aiobucket.Bucket, proxy: FaultProxy
) -> None:
    proxy.add_rule(lose_response(), when=is_small_upload)
    proxy.add_rule(gcs_error(503), when=is_meta, times=RETRIES)
    with pytest.raises(aiobucket.OutcomeUnknown, match="could not be read back"):
        await put(bucket, "k", b"ours", preconditions=NE)
    await proxy.settled()
    assert statuses(proxy, is_small_upload) == [200, 412]
    assert statuses(proxy, is_meta) == [503] * RETRIES


async def test_lost_answer_to_conditional_copy_is_success(
    bucket: aiobucket.Bucket, proxy: FaultProxy
) -> None:
    """fake-gcs-server ignores preconditions on rewrite, so the proxy answers the retry
    with the 412 real GCS gives when the first attempt's copy already exists."""
    data = os.urandom(100 * KiB)
    await put(bucket, "src", data)
    proxy.add_rule(lose_response(), when=is_rewrite)
    proxy.add_rule(gcs_error(412, "conditionNotMet", reason="conditionNotMet"), when=is_rewrite)
    out = await bucket.copy("src", "dst", preconditions=NE)
    await proxy.settled()
    assert statuses(proxy, is_rewrite) == [200, 412]
    assert out.size == len(data) and out.crc32c == crc32c(data)
    assert await read(bucket, "dst") == data


async def test_lost_answer_to_final_chunk_is_success(bucket: aiobucket.Bucket, proxy: FaultProxy) -> None:
    data = os.urandom(STREAM)
    proxy.add_rule(lose_response(), when=is_final_chunk)
    attrs = await put(bucket, "big", data, part_size=STREAM_PART, preconditions=NE)
    await proxy.settled()
    assert statuses(proxy, is_final_chunk) == [200]
    # fake-gcs-server forgets a finished session (quirk gcs_finished_session_forgotten: 404
    # where GCS answers 200 with the object); then the object is read back and recognised.
    assert statuses(proxy, is_offset_query) == [404]
    assert attrs.size == len(data) and attrs.crc32c == crc32c(data)
    assert await read(bucket, "big") == data


async def test_lost_answer_to_remove_is_success(bucket: aiobucket.Bucket, proxy: FaultProxy) -> None:
    await put(bucket, "k", b"x")
    proxy.add_rule(lose_response(), when=is_delete)
    await bucket.remove("k")
    await proxy.settled()
    assert statuses(proxy, is_delete) == [200, 404]  # applied, its answer lost; the retry finds nothing
    assert not await bucket.exists("k")
    with pytest.raises(aiobucket.ObjectNotFound):
        await bucket.remove("k")  # a first attempt that finds nothing is still ObjectNotFound


# -- issue 19: a not_exists write held off by 429 is a lost race, never BackendError ----

RATE_LIMITED = gcs_error(429, "The rate of change requests to the object is too high", "rateLimitExceeded")


def is_session_start(r: Request) -> bool:
    return r.method == "POST" and "uploadType=resumable" in r.query


async def test_not_exists_session_start_held_off_by_429_is_precondition_failed(
    bucket: aiobucket.Bucket, proxy: FaultProxy
) -> None:
    """GCS's limit of one write per second per object answers 429 rateLimitExceeded
    (https://cloud.google.com/storage/docs/json_api/v1/status-codes#429_Too_Many_Requests);
    a not_exists upload refused so until the deadline lost the race to the other writers."""
    await put(bucket, "k", b"someone else's")
    proxy.add_rule(RATE_LIMITED, when=is_session_start, times=None)
    with pytest.raises(aiobucket.PreconditionFailed, match="429") as info:
        await put(bucket, "k", os.urandom(STREAM), part_size=STREAM_PART, preconditions=NE)
    assert not isinstance(info.value, aiobucket.OutcomeUnknown)
    await proxy.settled()
    assert statuses(proxy, is_session_start) == [429] * RETRIES
    assert await read(bucket, "k") == b"someone else's"


async def test_not_exists_final_chunk_held_off_by_429_is_precondition_failed(
    bucket: aiobucket.Bucket, proxy: FaultProxy
) -> None:
    proxy.add_rule(RATE_LIMITED, when=is_final_chunk, times=None)
    proxy.add_rule(RATE_LIMITED, when=is_offset_query, times=None)
    with pytest.raises(aiobucket.PreconditionFailed, match=r"429.*not there now"):
        await put(bucket, "big", os.urandom(STREAM), part_size=STREAM_PART, preconditions=NE)
    await proxy.settled()
    assert set(statuses(proxy, is_final_chunk)) == {429}
    assert not await bucket.exists("big")


async def test_not_exists_final_chunk_applied_then_429_is_success(
    bucket: aiobucket.Bucket, proxy: FaultProxy
) -> None:
    """The final chunk was applied but its answer lost; every later request of the session is
    refused with 429 to the deadline: the object is read back and recognised by its CRC32C."""
    data = os.urandom(STREAM)
    proxy.add_rule(lose_response(), when=is_final_chunk)
    proxy.add_rule(RATE_LIMITED, when=is_offset_query, times=None)
    attrs = await put(bucket, "big", data, part_size=STREAM_PART, preconditions=NE)
    await proxy.settled()
    assert statuses(proxy, is_final_chunk) == [200]
    assert statuses(proxy, is_offset_query) == [429] * RETRIES
    assert attrs.size == len(data) and attrs.crc32c == crc32c(data)
    assert await read(bucket, "big") == data


@pytest.fixture
def gcs_preconditions(gcs_server: GcsServer, proxy: FaultProxy) -> GcsWritePreconditions:
    """GCS's precondition checks on resumable uploads and rewrites (``personas/gcp_write.py``)."""
    persona = GcsWritePreconditions(gcs_server.endpoint)
    persona.install(proxy)
    return persona


async def test_streamed_not_exists_race_has_one_winner_on_gcs_rules(
    bucket: aiobucket.Bucket, proxy: FaultProxy, gcs_preconditions: GcsWritePreconditions
) -> None:
    """Two streamed not_exists writers whose sessions both start before either finishes: the
    second to complete is refused (412) at its final chunk; nothing of it is stored."""
    first, second = os.urandom(600 * KiB), os.urandom(600 * KiB)
    writers = [bucket.upload("race", part_size=256 * KiB, preconditions=NE) for _ in range(2)]
    for w, data in zip(writers, (first, second), strict=True):
        await w.write(data)
    results = await asyncio.gather(*(w.close() for w in writers), return_exceptions=True)
    lost = [r for r in results if isinstance(r, BaseException)]
    assert len(lost) == 1 and type(lost[0]) is aiobucket.PreconditionFailed, results
    winner = first if not isinstance(results[0], BaseException) else second
    assert await read(bucket, "race") == winner
    await proxy.settled()
    assert [is_final_chunk(r) for r in gcs_preconditions.refused] == [True]
    # Onto an existing object, the session's start is refused already; a copy likewise.
    with pytest.raises(aiobucket.PreconditionFailed):
        await put(bucket, "race", os.urandom(STREAM), part_size=STREAM_PART, preconditions=NE)
    await put(bucket, "src", b"source")
    with pytest.raises(aiobucket.PreconditionFailed):
        await bucket.copy("src", "race", preconditions=NE)
    assert await read(bucket, "race") == winner


async def test_not_exists_final_chunk_held_off_by_429_meets_the_winner(
    bucket: aiobucket.Bucket,
    proxy: FaultProxy,
    gcs_server: GcsServer,
    gcs_preconditions: GcsWritePreconditions,
) -> None:
    """The issue's race on a streamed upload: another writer's object lands while our final
    chunk is refused with 429 to the deadline (its offset queries answered 308, as GCS does):
    PreconditionFailed naming the other's object."""
    name = config.resolve(bucket.name).key_prefix + "race"
    other = os.urandom(1000)
    landed = threading.Event()

    def other_writer_lands(r: Request) -> bool:
        if not is_final_chunk(r):
            return False
        if not landed.is_set():
            landed.set()
            _store_plain(gcs_server, name, other)
        return True

    proxy.clear(requests=False)  # the 429 rule goes before the persona's
    proxy.add_rule(RATE_LIMITED, when=other_writer_lands, times=None)
    gcs_preconditions.install(proxy)
    with pytest.raises(aiobucket.PreconditionFailed, match="another writer's object"):
        await put(bucket, "race", os.urandom(STREAM), part_size=STREAM_PART, preconditions=NE)
    assert await read(bucket, "race") == other


async def test_streamed_not_exists_writers_at_the_write_limit(
    gcs_server: GcsServer, proxy: FaultProxy, gcs_preconditions: GcsWritePreconditions
) -> None:
    """The issue's race for streamed uploads: writers whose final chunks meet GCS's limit of
    one write per second per object (scaled: one per 0.2 s; 429 rateLimitExceeded, as
    https://cloud.google.com/storage/quotas#objects says) with a short deadline: one wins,
    every other one is PreconditionFailed (a 412 at its completion, or settled after its
    429s), none BackendError."""
    last: list[float] = []

    def limited(r: Request) -> bool:
        if not is_final_chunk(r):
            return False
        now = time.monotonic()
        if last and now - last[0] < 0.2:
            return True
        last[:] = [now]
        return False

    proxy.clear(requests=False)  # the limit goes before the persona's rules
    proxy.add_rule(RATE_LIMITED, when=limited, times=None)
    gcs_preconditions.install(proxy)
    options = {"retries": None, "retry_initial": 0.02, "retry_cap": 0.05, "retry_deadline": 0.15}
    with routed_bucket(gcs_server, proxy, **options) as b:
        writers = [b.upload("race", part_size=256 * KiB, preconditions=NE) for _ in range(4)]
        blobs = [os.urandom(300 * KiB) for _ in writers]
        for w, data in zip(writers, blobs, strict=True):
            await w.write(data)
        results = await asyncio.wait_for(
            asyncio.gather(*(w.close() for w in writers), return_exceptions=True), GUARD
        )
        won = [i for i, r in enumerate(results) if not isinstance(r, BaseException)]
        assert len(won) == 1, results
        lost = [r for r in results if isinstance(r, BaseException)]
        assert all(type(r) is aiobucket.PreconditionFailed for r in lost), lost
        assert await read(b, "race") == blobs[won[0]]
        await aiobucket.aclose()
    await proxy.settled()
    assert 429 in statuses(proxy, is_final_chunk)


async def test_not_exists_applied_then_429_and_unreadable_is_outcome_unknown(
    bucket: aiobucket.Bucket, proxy: FaultProxy
) -> None:
    """An attempt may have stored ours, the rest were refused with 429, and the object cannot
    be read to tell: OutcomeUnknown, not a PreconditionFailed that may be false."""
    proxy.add_rule(lose_response(), when=is_small_upload)
    proxy.add_rule(RATE_LIMITED, when=is_small_upload, times=None)
    proxy.add_rule(gcs_error(503), when=is_meta, times=RETRIES)
    with pytest.raises(aiobucket.OutcomeUnknown, match="429"):
        await put(bucket, "k", b"ours", preconditions=NE)
    await proxy.settled()
    assert statuses(proxy, is_small_upload) == [200] + [429] * (RETRIES - 1)


async def test_429_mid_session_is_a_quota_not_a_lost_race(
    bucket: aiobucket.Bucket, proxy: FaultProxy
) -> None:
    """A mid-session chunk writes no object, so its 429s are a quota (bandwidth, requests), not
    the one-write-per-second limit on the key: the upload ends in BackendError and leaves nothing."""
    proxy.add_rule(RATE_LIMITED, when=is_mid_chunk, times=None)
    proxy.add_rule(RATE_LIMITED, when=is_offset_query, times=None)
    with pytest.raises(aiobucket.BackendError, match="429") as info:
        await put(bucket, "big", os.urandom(STREAM), part_size=STREAM_PART, preconditions=NE)
    assert not isinstance(info.value, aiobucket.PreconditionFailed)
    await proxy.settled()
    assert seen(proxy, is_final_chunk) == []
    assert not await bucket.exists("big")


async def test_not_exists_copy_held_off_by_429_is_precondition_failed(
    bucket: aiobucket.Bucket, proxy: FaultProxy
) -> None:
    await put(bucket, "src", b"source")
    await put(bucket, "dst", b"someone else's")
    proxy.add_rule(RATE_LIMITED, when=is_rewrite, times=None)
    with pytest.raises(aiobucket.PreconditionFailed, match="another writer's object"):
        await bucket.copy("src", "dst", preconditions=NE)
    await proxy.settled()
    assert statuses(proxy, is_rewrite) == [429] * RETRIES
    assert await read(bucket, "dst") == b"someone else's"


async def test_not_exists_copy_applied_then_429_is_success(
    bucket: aiobucket.Bucket, proxy: FaultProxy
) -> None:
    data = os.urandom(100 * KiB)
    await put(bucket, "src", data)
    proxy.add_rule(lose_response(), when=is_rewrite)
    proxy.add_rule(RATE_LIMITED, when=is_rewrite, times=None)
    out = await bucket.copy("src", "dst", preconditions=NE)
    await proxy.settled()
    assert statuses(proxy, is_rewrite) == [200] + [429] * (RETRIES - 1)
    assert out.size == len(data) and out.crc32c == crc32c(data)
    assert await read(bucket, "dst") == data


# -- finding 3: an answer cut after its headers is retried --------------------------


@pytest.mark.parametrize("op", ["attrs", "exists", "list"])  # a read has no metadata request
async def test_metadata_cut_after_headers_is_retried(
    bucket: aiobucket.Bucket, proxy: FaultProxy, op: str
) -> None:
    await put(bucket, "k", b"payload")
    target = is_list if op == "list" else is_meta
    proxy.add_rule(ResetResponse(after=10), when=target)
    if op == "attrs":
        assert (await bucket.attrs("k")).size == 7
    elif op == "exists":
        assert await bucket.exists("k")
    else:
        assert [e.name async for _, e in bucket.list() if e is not None] == ["k"]
    await proxy.settled()
    assert len(seen(proxy, target)) == 2
    assert seen(proxy, target)[0].fault == ResetResponse(after=10)


async def test_list_page_faults_are_retried(bucket: aiobucket.Bucket, proxy: FaultProxy) -> None:
    for k in ("a", "b", "c"):
        await put(bucket, k, k.encode())
    p = provider_of(bucket)
    proxy.add_rule(gcs_error(503), when=is_list, after=1)  # the second page
    proxy.add_rule(ResetResponse(after=20), when=is_list, after=1)  # its retry is cut
    names = [e.name async for e in p.list("", limit=1)]
    assert names == ["a", "b", "c"]
    await proxy.settled()
    assert statuses(proxy, is_list)[:4] == [200, 503, 200, 200]


# -- finding 4: streams have socket timeouts ----------------------------------------


async def test_stalled_media_ends_in_a_typed_error(gcs_server: GcsServer, proxy: FaultProxy) -> None:
    """A body that stops moving is cut by sock_read (it used to wait forever), resumed once."""
    with routed_bucket(gcs_server, proxy, read_timeout=0.5) as b:
        data = os.urandom(MiB)
        await put(b, "obj", data)
        proxy.add_rule(Stall(None, where="response", after=64 * KiB), when=is_media, times=None)
        got, err = await read_until_error(b, "obj")
        assert isinstance(err, aiobucket.ConnectionLost)
        assert got == data[: len(got)]
        await aiobucket.aclose()
    assert len(seen(proxy, is_media)) == 2  # the read and its one resume


async def test_stalled_answer_ends_after_the_attempts(gcs_server: GcsServer, proxy: FaultProxy) -> None:
    with routed_bucket(gcs_server, proxy, read_timeout=0.3) as b:
        await put(b, "obj", b"x")
        proxy.add_rule(Stall(None, where="response"), when=is_meta, times=None)
        with pytest.raises(aiobucket.BackendError, match=rf"timed out \({RETRIES} attempts\)"):
            await asyncio.wait_for(b.attrs("obj"), GUARD)
        await aiobucket.aclose()
    assert len(seen(proxy, is_meta)) == RETRIES


# -- finding 5: bytes are verified both ways ------------------------------------------


async def test_flipped_byte_in_small_upload_is_refused(bucket: aiobucket.Bucket, proxy: FaultProxy) -> None:
    data = os.urandom(64 * KiB)
    proxy.add_rule(FlipByte(offset=40 * KiB, where="request"), when=is_small_upload)
    with pytest.raises(aiobucket.IntegrityError):
        await put(bucket, "k", data)
    assert not await bucket.exists("k")  # the corrupted generation was removed
    await proxy.settled()
    assert statuses(proxy, is_small_upload) == [200]  # fake-gcs-server stored it; we did not keep it


@quirk("gcs_upload_ignores_client_checksums")
async def test_server_refuses_a_flipped_upload(bucket: aiobucket.Bucket, proxy: FaultProxy) -> None:
    """On GCS the CRC32C we send makes the server itself refuse the changed bytes (400)."""
    proxy.add_rule(FlipByte(offset=40 * KiB, where="request"), when=is_small_upload)
    with pytest.raises(aiobucket.IntegrityError):
        await put(bucket, "k", os.urandom(64 * KiB))
    await proxy.settled()
    assert statuses(proxy, is_small_upload) == [400]
    assert seen(proxy, is_delete) == []  # nothing was stored, so nothing had to be removed


async def test_flipped_byte_in_a_chunk_is_refused(bucket: aiobucket.Bucket, proxy: FaultProxy) -> None:
    data = os.urandom(STREAM)
    proxy.add_rule(FlipByte(offset=1000, where="request"), when=is_mid_chunk, after=1)
    with pytest.raises(aiobucket.IntegrityError, match="CRC32C"):
        await put(bucket, "big", data, part_size=STREAM_PART)
    assert not await bucket.exists("big")
    await proxy.settled()
    [final] = seen(proxy, is_final_chunk)
    assert final.header("X-Goog-Hash") == f"crc32c={crc32c(data)}"  # GCS itself would refuse it


async def test_flipped_byte_in_download_is_refused(bucket: aiobucket.Bucket, proxy: FaultProxy) -> None:
    data = os.urandom(MiB + 11)
    await put(bucket, "obj", data)
    proxy.add_rule(FlipByte(offset=300 * KiB, where="response"), when=is_media)
    got, err = await read_until_error(bucket, "obj")
    assert isinstance(err, aiobucket.IntegrityError)
    assert len(got) < len(data)  # the last chunk is held back: the bad object never comes whole
    assert await read(bucket, "obj") == data  # the stored bytes are fine


async def test_attrs_carry_the_stored_hashes(bucket: aiobucket.Bucket) -> None:
    for key, data, part in (("small", os.urandom(5000), 8 * MiB), ("big", os.urandom(STREAM), STREAM_PART)):
        written = await put(bucket, key, data, part_size=part)
        attrs = await bucket.attrs(key)
        for a in (written, attrs):
            assert a.crc32c == crc32c(data)
            assert a.md5 == hashlib.md5(data).hexdigest()


# -- finding 6: a session that finished early is an error ---------------------------


async def test_session_finished_mid_upload_is_an_error(bucket: aiobucket.Bucket, proxy: FaultProxy) -> None:
    """A 503 on the second chunk makes us ask the session for its offset; fake-gcs-server
    finalizes the upload there (a quirk), and a "finished" answer mid-upload is refused."""
    data = os.urandom(STREAM)
    proxy.add_rule(gcs_error(503), when=is_mid_chunk, after=1)
    with pytest.raises(aiobucket.IntegrityError, match="more were to come"):
        await put(bucket, "big", data, part_size=STREAM_PART)
    assert not await bucket.exists("big")  # the truncated object was removed
    await proxy.settled()
    assert statuses(proxy, is_mid_chunk) == [308, 503]
    assert statuses(proxy, is_offset_query) == [200]


@quirk("gcs_resumable_status_query_finalizes")
async def test_chunk_503_resumes_from_the_session_offset(bucket: aiobucket.Bucket, proxy: FaultProxy) -> None:
    """On GCS the offset query answers 308 and the chunk is resent (tests/test_gcs.py proves
    the resend against a server that implements the query)."""
    data = os.urandom(STREAM)
    proxy.add_rule(gcs_error(503), when=is_mid_chunk, after=1)
    await put(bucket, "big", data, part_size=STREAM_PART)
    assert await read(bucket, "big") == data


# -- finding 7: unconditional writes retry, bounded --------------------------------


async def test_unconditional_upload_retries_on_503(bucket: aiobucket.Bucket, proxy: FaultProxy) -> None:
    data = os.urandom(10 * KiB)
    proxy.add_rule(gcs_error(503), when=is_small_upload, times=2)
    await put(bucket, "k", data)
    await proxy.settled()
    assert statuses(proxy, is_small_upload) == [503, 503, 200]
    assert await read(bucket, "k") == data


async def test_remove_retries_on_503(bucket: aiobucket.Bucket, proxy: FaultProxy) -> None:
    await put(bucket, "k", b"x")
    proxy.add_rule(gcs_error(503), when=is_delete)
    await bucket.remove("k")
    await proxy.settled()
    assert statuses(proxy, is_delete) == [503, 200]
    assert not await bucket.exists("k")


@pytest.mark.parametrize("status", [500, 503])
async def test_steady_error_ends_after_the_attempts(
    bucket: aiobucket.Bucket, proxy: FaultProxy, status: int
) -> None:
    proxy.add_rule(gcs_error(status), when=is_small_upload, times=None)
    with pytest.raises(aiobucket.BackendError, match=rf"HTTP {status} after {RETRIES} attempts"):
        await put(bucket, "k", b"x")
    proxy.add_rule(gcs_error(status), when=is_meta, times=None)
    with pytest.raises(aiobucket.BackendError, match=rf"HTTP {status} after {RETRIES} attempts"):
        await bucket.attrs("k")
    await proxy.settled()
    assert statuses(proxy, is_small_upload) == [status] * RETRIES
    assert statuses(proxy, is_meta) == [status] * RETRIES


# -- cancellation during backoff ---------------------------------------------------


async def _until(proxy: FaultProxy, pred: Callable[[Request], bool], count: int) -> None:
    """Wait until the proxy (its own thread, no event to await) has answered ``count`` matches."""
    async with asyncio.timeout(GUARD):
        while len([r for r in seen(proxy, pred) if r.done]) < count:  # noqa: ASYNC110
            await asyncio.sleep(0.01)


@pytest.mark.parametrize("op", ["attrs", "provider-put", "upload-commit", "final-chunk"])
async def test_cancel_ends_the_backoff(bucket: aiobucket.Bucket, proxy: FaultProxy, op: str) -> None:
    """A 503 with Retry-After: 30 puts the request to sleep 30 s; a cancel ends it at once.

    upload-commit and final-chunk are a Bucket upload's commit (the small upload, the
    resumable session's last chunk): the cancel is honoured, and nothing is stored.
    """
    slow = gcs_error(503)
    slow = Respond(503, slow.body, {**slow.headers, "Retry-After": "30"})
    pred = {
        "attrs": is_meta,
        "provider-put": is_small_upload,
        "upload-commit": is_small_upload,
        "final-chunk": is_final_chunk,
    }[op]
    proxy.add_rule(slow, when=pred, times=None)
    work: Any = {
        "attrs": lambda: bucket.attrs("k"),
        "provider-put": lambda: provider_of(bucket).put("k", b"x", PutOptions("text/plain")),
        "upload-commit": lambda: put(bucket, "k", b"x" * 1000),
        "final-chunk": lambda: put(bucket, "k", os.urandom(STREAM), part_size=STREAM_PART),
    }[op]
    task = asyncio.create_task(work())
    await _until(proxy, pred, 1)
    await asyncio.sleep(0.05)  # well inside the 30 s backoff
    loop = asyncio.get_running_loop()
    cancelled_at = loop.time()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5.0)  # a hang guard, far below the 30 s backoff
    took = loop.time() - cancelled_at
    print(f"cancel during a 30 s backoff ({op}) returned after {took * 1000:.1f} ms")
    assert len(seen(proxy, pred)) == 1  # the sleep ended: no further attempt
    proxy.clear()
    assert not await bucket.exists("k")
    assert [e async for e in bucket.list()] == []


# -- caching conditions are settled before any media request -------------------------


async def test_not_modified_transfers_no_body(bucket: aiobucket.Bucket, proxy: FaultProxy) -> None:
    attrs = await put(bucket, "k", b"cached")
    p = provider_of(bucket)
    later = datetime.now(UTC) + timedelta(hours=1)
    for opts in (GetOptions(if_none_match=attrs.etag), GetOptions(if_modified_since=later)):
        with pytest.raises(aiobucket.NotModified) as info:
            await p.get("k", opts)
        assert isinstance(info.value.attrs, aiobucket.ObjectAttrs) and info.value.attrs.etag == attrs.etag
    await proxy.settled()
    assert seen(proxy, is_media) == []
    _, body = await p.get("k", GetOptions(if_none_match="other"))
    assert b"".join([c async for c in body]) == b"cached"
    await body.aclose()


# -- a soak: many operations under sparse faults -------------------------------------


async def test_thousand_operations_under_sparse_faults(bucket: aiobucket.Bucket, proxy: FaultProxy) -> None:
    """1,000 operations from 8 workers with 1% 503s and 1% lost answers on every request
    that is not a chunk or a media body: each one succeeds, and nothing is left running."""
    rng = random.Random(1313)  # drawn from the proxy's thread only
    lock = threading.Lock()

    def draw(p: float) -> Callable[[Request], bool]:
        def pick(r: Request) -> bool:
            if "upload_id=" in r.query or is_media(r):
                return False
            with lock:
                return rng.random() < p

        return pick

    proxy.add_rule(gcs_error(503), when=draw(0.01), times=None)
    proxy.add_rule(lose_response(), when=draw(0.01), times=None)
    before = asyncio.all_tasks()
    ops = 0

    async def worker(w: int) -> None:
        nonlocal ops
        mine: dict[str, bytes] = {}
        local = random.Random(w)
        for _ in range(125):
            key = f"w{w}/{local.randrange(6)}"
            choice = local.random()
            if choice < 0.35:
                data = os.urandom(local.randrange(1, 4096))
                await put(bucket, key, data)
                mine[key] = data
            elif choice < 0.65:
                if key in mine:
                    assert await read(bucket, key) == mine[key]
                else:
                    assert not await bucket.exists(key)
            elif choice < 0.8:
                if key in mine:
                    assert (await bucket.attrs(key)).crc32c == crc32c(mine[key])
            elif choice < 0.9:
                if key in mine:
                    await bucket.remove(key)
                    del mine[key]
            else:
                names = [e.name async for _, e in bucket.list(aiobucket.Query(prefix=f"w{w}/")) if e]
                assert names == sorted(mine)
            ops += 1

    async with asyncio.timeout(120):
        await asyncio.gather(*(worker(w) for w in range(8)))
    assert ops == 1000
    await proxy.settled()
    faults = [r for r in proxy.requests if r.fault is not None]
    assert faults, "no fault fired: the soak proves nothing"
    print(f"{ops} operations, {len(proxy.requests)} requests, {len(faults)} faults injected")
    await aiobucket.aclose()
    assert asyncio.all_tasks() - before == set()
