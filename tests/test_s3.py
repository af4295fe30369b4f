"""The S3 provider against real servers: SeaweedFS always, Ceph RGW where installed.

Servers come from the tests/servers plugins (loaded by tests/conftest.py). The
heavy tests (cancellation trials, 1 GiB memory, pool leak, resume) run on
SeaweedFS; the cheap ones are parametrised over RGW too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import timedelta
from typing import Any

import pytest
from faultproxy import FaultProxy, Request, Respond, Stall
from servers._proc import free_ports
from servers.seaweedfs import S3Server

import aiobucket
from aiobucket import _runtime, config
from aiobucket._checksum import crc32c_b64
from aiobucket.providers.prefixed import PrefixedProvider
from aiobucket.providers.s3 import S3Provider

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024
PART = 5 * MiB


def _selected(name: str) -> bool:
    raw = os.environ.get("AIOBUCKET_BACKENDS", "")
    names = [n.strip() for n in raw.split(",") if n.strip()]
    return not names or name in names


@pytest.fixture(params=["s3", "rgw"])
def backend(request: pytest.FixtureRequest) -> S3Server:
    """The S3 server under test; named ``backend`` so @pytest.mark.quirk applies."""
    if not _selected(request.param):
        pytest.skip(f"{request.param} not in AIOBUCKET_BACKENDS")
    server: S3Server = request.getfixturevalue("s3_server" if request.param == "s3" else "rgw_server")
    return server


@pytest.fixture(autouse=True)
async def _close_clients(anyio_backend: str) -> AsyncIterator[None]:
    yield
    await aiobucket.aclose()


def payload(n: int, seed: int = 0) -> bytes:
    block = random.Random(seed).randbytes(64 * 1024)
    return (block * (n // len(block) + 1))[:n]


@contextmanager
def bucket_on(server: S3Server, *, versioned: bool = False, **extra: object) -> Iterator[aiobucket.Bucket]:
    """A fresh bucket name routed to the server's shared bucket, isolated by a key prefix."""
    name = f"t-{uuid.uuid4().hex[:12]}"
    settings = server.settings(versioned, key_prefix=f"{name}/", **extra)
    with config.override({name: settings}):
        yield aiobucket.Bucket(name, aiobucket.BucketConfig(versioned=versioned))


def s3_provider(bucket: aiobucket.Bucket) -> S3Provider:
    provider = _runtime.provider_for(bucket.name, bucket.config)[0]
    if isinstance(provider, PrefixedProvider):
        provider = provider.inner
    assert isinstance(provider, S3Provider)
    return provider


def prefix_of(bucket: aiobucket.Bucket) -> str:
    return config.resolve(bucket.name).key_prefix


@asynccontextmanager
async def raw_client(server: S3Server, endpoint: str | None = None) -> AsyncIterator[Any]:
    from aiobotocore.config import AioConfig
    from aiobotocore.session import AioSession

    async with AioSession().create_client(
        "s3",
        endpoint_url=endpoint or server.endpoint,
        region_name=server.region,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        config=AioConfig(s3={"addressing_style": "path"}, signature_version="s3v4"),
    ) as client:
        yield client


async def open_uploads(client: Any, bucket: str, prefix: str) -> list[dict[str, Any]]:
    resp = await client.list_multipart_uploads(Bucket=bucket, Prefix=prefix)
    uploads: list[dict[str, Any]] = resp.get("Uploads", [])
    return uploads


async def put(bucket: aiobucket.Bucket, key: str, data: bytes, **kw: Any) -> aiobucket.ObjectAttrs:
    async with bucket.upload(key, **kw) as w:
        for i in range(0, len(data), MiB):
            await w.write(data[i : i + MiB])
    return await w.close()


@contextmanager
def through_proxy(
    server: S3Server, *, versioned: bool = False, **extra: object
) -> Iterator[tuple[aiobucket.Bucket, FaultProxy]]:
    """A fresh bucket whose requests go through a FaultProxy in front of ``server``."""
    with (
        FaultProxy(server.endpoint) as proxy,
        bucket_on(via(server, proxy), versioned=versioned, **extra) as b,
    ):
        yield b, proxy


def op_of(req: Request) -> str:
    """The S3 operation a recorded request is, from its method and query."""
    q = req.query
    if req.method == "PUT":
        if "partNumber=" in q:
            return "UploadPartCopy" if req.header("x-amz-copy-source") else "UploadPart"
        return "CopyObject" if req.header("x-amz-copy-source") else "PutObject"
    if req.method == "POST":
        return "CreateMultipartUpload" if "uploads" in q else "CompleteMultipartUpload"
    return {"GET": "GetObject", "HEAD": "HeadObject", "DELETE": "DeleteObject"}[req.method]


# -- 1. cancellation and abort leave no multipart upload behind ----------------------------


class _CancelPlan:
    """Cancels ``target`` when the proxy sees the ``cancel_at``-th request (plus ``delay``).

    Used as a FaultProxy rule predicate: it runs in the proxy's thread and never
    injects a fault itself.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, cancel_at: int, delay: float) -> None:
        self.loop = loop
        self.cancel_at = cancel_at
        self.delay = delay
        self.sent = 0
        self.target: asyncio.Task[Any] | None = None

    def __call__(self, req: Request) -> bool:
        self.sent += 1
        if self.sent == self.cancel_at and self.target is not None:
            target = self.target
            self.loop.call_soon_threadsafe(lambda: self.loop.call_later(self.delay, target.cancel))
        return False


async def test_cancel_at_random_points_leaves_nothing(s3_server: S3Server) -> None:
    rng = random.Random(20240611)
    data = payload(3 * PART + PART // 2, seed=1)  # 4 parts
    outcomes = {"cancelled": 0, "committed": 0}
    async with raw_client(s3_server) as raw:
        with through_proxy(s3_server) as (bucket, proxy):
            for trial in range(30):
                key = f"cancel-{trial}"
                plan = _CancelPlan(
                    asyncio.get_running_loop(),
                    cancel_at=rng.randint(1, 6),
                    delay=rng.choice([0.0, 0.0, 0.001, 0.005, 0.02]),
                )
                concurrency = rng.randint(2, 4)
                proxy.clear()
                proxy.add_rule(Respond(599), when=plan, times=None)
                target = plan.target = asyncio.create_task(
                    put(bucket, key, data, part_size=PART, concurrency=concurrency)
                )
                try:
                    await target
                    outcomes["committed"] += 1
                except asyncio.CancelledError:
                    outcomes["cancelled"] += 1
                await proxy.settled()
                assert await open_uploads(raw, s3_server.bucket, prefix_of(bucket) + key) == [], trial
                if await bucket.exists(key):
                    # Cancelled while committing: the commit finished, so the object is whole.
                    assert await bucket.download(key).read() == data, trial
                    await bucket.remove(key)
                elif target.cancelled():
                    pass
                else:
                    pytest.fail(f"trial {trial}: upload returned but the object is missing")
    assert outcomes["cancelled"] >= 20, outcomes  # cancel points 1..5 always land before commit


async def test_exception_inside_async_with_aborts(s3_server: S3Server) -> None:
    data = payload(3 * PART, seed=2)
    async with raw_client(s3_server) as raw:
        with bucket_on(s3_server) as bucket:
            with pytest.raises(RuntimeError, match="boom"):
                async with bucket.upload("exc", part_size=PART, concurrency=2) as w:
                    for i in range(0, len(data), MiB):
                        await w.write(data[i : i + MiB])
                    raise RuntimeError("boom")
            assert await open_uploads(raw, s3_server.bucket, prefix_of(bucket)) == []
            assert not await bucket.exists("exc")

            w = bucket.upload("explicit", part_size=PART, concurrency=3)
            for i in range(0, len(data), MiB):
                await w.write(data[i : i + MiB])
            await w.abort()
            assert await open_uploads(raw, s3_server.bucket, prefix_of(bucket)) == []
            assert not await bucket.exists("explicit")


async def test_asyncio_timeout_bounds_a_multipart_upload_and_leaves_nothing(s3_server: S3Server) -> None:
    """``retry_deadline`` bounds one S3 API call; a multipart upload is many of them, and the
    caller's ``asyncio.timeout`` is the bound on the whole. Part 3 hangs on the wire (the
    proxy stalls it for good) and the timeout fires then: TimeoutError, the upload aborted
    on the server, nothing stored, no task left behind."""
    data = payload(3 * PART + PART // 2, seed=3)  # 4 parts
    loop = asyncio.get_running_loop()
    scope: list[asyncio.Timeout] = []

    def expire_now(req: Request) -> bool:  # in the proxy's thread: part 3 is on the wire
        loop.call_soon_threadsafe(lambda: scope[0].reschedule(loop.time()))
        return True

    async with raw_client(s3_server) as raw:
        with through_proxy(s3_server) as (bucket, proxy):
            proxy.add_rule(Stall(None), method="PUT", query="partNumber=3", when=expire_now, times=None)
            before = asyncio.all_tasks()
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(None) as timeout:
                    scope.append(timeout)
                    await put(bucket, "bounded", data, part_size=PART, concurrency=2)
            assert asyncio.all_tasks() <= before, "a task outlived the timeout"
            assert [op_of(r) for r in proxy.requests].count("UploadPart") >= 3  # it fired mid-upload
            assert await open_uploads(raw, s3_server.bucket, prefix_of(bucket)) == []
            assert not await bucket.exists("bounded")


# -- 2. peak memory while streaming 1 GiB up and down, at defaults, no allocator tuning ------

MEMORY_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    import aiobucket

    settings, total = json.loads(sys.argv[1])

    def rss() -> int:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no VmHWM")

    async def main() -> None:
        aiobucket.configure({"big": settings})
        bucket = aiobucket.Bucket("big")
        chunk = bytearray(1024 * 1024)
        # Warm up: client, pool, one small object each way.
        await bucket.upload("warm").close()
        await bucket.download("warm").read()
        await bucket.remove("warm")
        baseline = rss()
        async with bucket.upload("one-gib") as w:
            for i in range(total // len(chunk)):
                chunk[:8] = i.to_bytes(8, "little")
                await w.write(chunk)
        attrs = await w.close()
        up = rss()
        got = 0
        async with bucket.download("one-gib") as r:
            async for piece in r:
                got += len(piece)
        down = rss()
        await bucket.remove("one-gib")
        await aiobucket.aclose()
        print(json.dumps({"baseline": baseline, "up": up, "down": down, "size": attrs.size, "got": got}))

    asyncio.run(main())
    """
)


def test_streaming_1gib_stays_within_part_buffers(s3_server: S3Server) -> None:
    """Defaults (8 MiB parts, concurrency 8) and no allocator environment: the writer's
    buffer pool keeps peak RSS within part x (concurrency + 1) + 80 MiB."""
    part_size, concurrency, total = 8 * MiB, 8, 1024 * MiB
    settings = s3_server.settings(False, key_prefix=f"mem-{uuid.uuid4().hex[:8]}/")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, json.dumps([settings, total])],
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["size"] == total and result["got"] == total
    bound = part_size * (concurrency + 1) + 80 * MiB
    peak = max(result["up"], result["down"])
    print(
        f"streaming 1 GiB: peak RSS {peak / MiB:.1f} MiB (before {result['baseline'] / MiB:.1f} MiB, "
        f"after upload {result['up'] / MiB:.1f}, after download {result['down'] / MiB:.1f}; "
        f"bound {bound / MiB:.0f} MiB)"
    )
    assert peak < bound, f"peak RSS {peak / MiB:.1f} MiB; bound {bound / MiB:.0f} MiB"


# -- 3. ETags and If-None-Match on the wire, and a real race ------------------------------


async def test_wire_carries_part_etags_and_if_none_match(s3_server: S3Server) -> None:
    with through_proxy(s3_server) as (bucket, proxy):
        completions = spy_bodies(
            s3_provider(bucket), lambda method, url: method == "POST" and "uploadId=" in url
        )
        pre = aiobucket.Preconditions(not_exists=True)
        await put(bucket, "small", b"tiny", preconditions=pre)
        multi = payload(2 * PART + 100, seed=3)
        await put(bucket, "multi", multi, part_size=PART, preconditions=pre)
        await proxy.settled()
        by_op: dict[str, list[Request]] = {}
        for r in proxy.requests:
            by_op.setdefault(op_of(r), []).append(r)

        [put_req] = by_op["PutObject"]
        assert put_req.header("if-none-match") == "*"
        assert put_req.header("content-md5")  # every upload body carries its checksum
        parts = by_op["UploadPart"]
        # Over http a part carries its CRC32C and its signed SHA-256 (no MD5 needed).
        assert len(parts) == 3 and all(p.header("x-amz-checksum-crc32c") for p in parts)
        assert all(p.header("x-amz-content-sha256") not in (None, "UNSIGNED-PAYLOAD") for p in parts)
        [complete_req] = by_op["CompleteMultipartUpload"]
        assert complete_req.header("if-none-match") == "*"
        # A FULL_OBJECT CRC32C is declared at the start and sent whole at the completion.
        [create_req] = by_op["CreateMultipartUpload"]
        assert create_req.header("x-amz-checksum-algorithm") == "CRC32C"
        assert create_req.header("x-amz-checksum-type") == "FULL_OBJECT"
        assert complete_req.header("x-amz-checksum-type") == "FULL_OBJECT"
        assert complete_req.header("x-amz-checksum-crc32c") == crc32c_b64(multi)
        [complete_body] = completions
        root = ET.fromstring(complete_body)
        sent = {
            int(p.findtext("{*}PartNumber") or 0): (p.findtext("{*}ETag") or "").strip('"')
            for p in root.iter("{http://s3.amazonaws.com/doc/2006-03-01/}Part")
        }
        assert sorted(sent) == [1, 2, 3]
        assert all(len(etag) == 32 for etag in sent.values()), sent
        part_crcs = [
            p.findtext("{*}ChecksumCRC32C")
            for p in root.iter("{http://s3.amazonaws.com/doc/2006-03-01/}Part")
        ]
        assert part_crcs == [crc32c_b64(multi[i : i + PART]) for i in range(0, len(multi), PART)]

        # if_match goes out as If-Match on both paths too.
        current = await bucket.attrs("small")
        await put(bucket, "small", b"tiny2", preconditions=aiobucket.Preconditions(if_match=current.etag))
        await proxy.settled()
        last_put = [r for r in proxy.requests if op_of(r) == "PutObject"][-1]
        assert last_put.header("if-match") == f'"{current.etag}"'


def spy_bodies(provider: S3Provider, which: Callable[[str, str], bool]) -> list[bytes]:
    """Collects the bodies of the requests ``which(method, url)`` picks, at the transport."""
    bodies: list[bytes] = []
    real = provider.transport.send

    async def spy(method: str, url: Any, headers: dict[str, str], body: Any, **kw: Any) -> Any:
        if body is not None and which(method, str(url)):
            bodies.append(bytes(body))
        return await real(method, url, headers, body, **kw)

    provider.transport.send = spy  # type: ignore[method-assign]
    return bodies


@pytest.mark.parametrize(
    "size",
    [
        100,
        pytest.param(
            2 * PART + 1,
            # Not strict: the server's race does not lose every time, so this may also pass.
            marks=pytest.mark.xfail(
                reason="quirk not_exists_race (SeaweedFS), a race that shows only sometimes"
            ),
        ),
    ],
    ids=["single-put", "multipart"],
)
async def test_not_exists_race_has_exactly_one_winner(s3_server: S3Server, size: int) -> None:
    writers = 6
    with bucket_on(s3_server) as bucket:

        async def attempt(i: int) -> str:
            try:
                await put(
                    bucket, "race", payload(size, seed=10 + i), part_size=PART,
                    preconditions=aiobucket.Preconditions(not_exists=True),
                )  # fmt: skip
                return "won"
            except aiobucket.PreconditionFailed:
                return "lost"

        results = await asyncio.gather(*(attempt(i) for i in range(writers)))
        assert results.count("won") == 1, results
        winner = results.index("won")
        assert await bucket.download("race").read() == payload(size, seed=10 + winner)
        async with raw_client(s3_server) as raw:
            assert await open_uploads(raw, s3_server.bucket, prefix_of(bucket)) == []


async def test_single_put_not_exists_race(backend: S3Server) -> None:
    with bucket_on(backend) as bucket:

        async def attempt(i: int) -> bool:
            try:
                await put(bucket, "race", b"x%d" % i, preconditions=aiobucket.Preconditions(not_exists=True))
                return True
            except aiobucket.PreconditionFailed:
                return False

        assert sum(await asyncio.gather(*(attempt(i) for i in range(6)))) == 1


@pytest.mark.quirk("multipart_not_exists")
async def test_server_enforces_if_none_match_on_complete(backend: S3Server) -> None:
    """The raw server behaviour the provider relies on for an atomic multipart not_exists."""
    key = f"raw-{uuid.uuid4().hex}"
    async with raw_client(backend) as raw:
        await raw.put_object(Bucket=backend.bucket, Key=key, Body=b"first")
        up = await raw.create_multipart_upload(Bucket=backend.bucket, Key=key)
        try:
            part = await raw.upload_part(
                Bucket=backend.bucket, Key=key, UploadId=up["UploadId"], PartNumber=1, Body=b"second"
            )
            from botocore.exceptions import ClientError

            with pytest.raises(ClientError) as info:
                await raw.complete_multipart_upload(
                    Bucket=backend.bucket, Key=key, UploadId=up["UploadId"], IfNoneMatch="*",
                    MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]},
                )  # fmt: skip
            assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
        finally:
            with contextlib.suppress(Exception):
                await raw.abort_multipart_upload(Bucket=backend.bucket, Key=key, UploadId=up["UploadId"])
            await raw.delete_object(Bucket=backend.bucket, Key=key)


@pytest.mark.quirk("conditional_copy")
async def test_server_enforces_if_none_match_on_copy(backend: S3Server) -> None:
    key = f"raw-{uuid.uuid4().hex}"
    async with raw_client(backend) as raw:
        await raw.put_object(Bucket=backend.bucket, Key=key, Body=b"a")
        await raw.put_object(Bucket=backend.bucket, Key=key + "-dst", Body=b"b")
        from botocore.exceptions import ClientError

        try:
            with pytest.raises(ClientError):
                await raw.copy_object(
                    Bucket=backend.bucket, Key=key + "-dst", IfNoneMatch="*",
                    CopySource={"Bucket": backend.bucket, "Key": key},
                )  # fmt: skip
        finally:
            await raw.delete_object(Bucket=backend.bucket, Key=key)
            await raw.delete_object(Bucket=backend.bucket, Key=key + "-dst")


async def test_conditional_copy_and_multipart_refuse_outside_a_race(backend: S3Server) -> None:
    """Even where the server ignores the headers, the HEAD pre-check refuses."""
    with bucket_on(backend) as bucket:
        await put(bucket, "a", b"a")
        await put(bucket, "b", b"b")
        with pytest.raises(aiobucket.PreconditionFailed):
            await bucket.copy("a", "b", preconditions=aiobucket.Preconditions(not_exists=True))
        with pytest.raises(aiobucket.PreconditionFailed):
            await put(bucket, "b", payload(PART + 1), part_size=PART,
                      preconditions=aiobucket.Preconditions(not_exists=True))  # fmt: skip
        assert await bucket.download("b").read() == b"b"
        async with raw_client(backend) as raw:
            assert await open_uploads(raw, backend.bucket, prefix_of(bucket)) == []


# -- 4. partial reads do not leak the connection pool --------------------------------------


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _connectors(bucket: aiobucket.Bucket) -> list[Any]:
    """The aiohttp connector behind the provider's transport."""
    session = s3_provider(bucket).transport._session
    return [session.connector] if session is not None else []


async def test_partial_reads_do_not_leak_the_pool(s3_server: S3Server) -> None:
    with bucket_on(s3_server, max_pool_connections=4) as bucket:
        data = payload(2 * MiB, seed=4)
        await put(bucket, "big", data)
        fds_before = _open_fds()
        for _ in range(1000):
            r = bucket.download("big")
            assert len(await r.read(7)) == 7
            await r.aclose()
        # Early exit from iteration releases too.
        for _ in range(50):
            async with bucket.download("big") as r:
                async for _chunk in r:
                    break
        connectors = _connectors(bucket)
        assert connectors and not any(c._acquired for c in connectors), "connections still checked out"
        # A burst of full-size operations still gets connections (a leak would deadlock here).
        async with asyncio.timeout(120):
            results = await asyncio.gather(*(bucket.download("big").read() for _ in range(12)))
        assert all(r == data for r in results)
        assert not any(c._acquired for c in _connectors(bucket))
        assert _open_fds() <= fds_before + 4 + 2


# -- 5. resume after a dropped connection --------------------------------------------------


class CuttingProxy:
    """A TCP proxy that drops the first GET of ``path`` after ``cut_after`` response bytes."""

    def __init__(self, upstream_port: int, path: str, cut_after: int,
                 on_cut: Callable[[], Awaitable[None]] | None = None) -> None:  # fmt: skip
        self.upstream_port = upstream_port
        self.needle = f"GET {path}".encode()
        self.cut_after = cut_after
        self.on_cut = on_cut
        self.cuts = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        ur, uw = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        armed = asyncio.Event()

        async def client_to_upstream() -> None:
            while data := await cr.read(65536):
                self.requests.append(data)
                if self.cuts == 0 and self.needle in data:
                    armed.set()
                uw.write(data)
                await uw.drain()

        async def upstream_to_client() -> None:
            sent = 0
            while data := await ur.read(65536):
                if armed.is_set() and self.cuts == 0:
                    if sent + len(data) >= self.cut_after:
                        cw.write(data[: self.cut_after - sent])
                        await cw.drain()
                        self.cuts += 1
                        if self.on_cut is not None:
                            await self.on_cut()
                        return
                    sent += len(data)
                cw.write(data)
                await cw.drain()

        tasks = [asyncio.create_task(client_to_upstream()), asyncio.create_task(upstream_to_client())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            for w in (cw, uw):
                w.transport.abort()


@asynccontextmanager
async def proxied(
    server: S3Server, path_key: str, cut_after: int, on_cut: Callable[[], Awaitable[None]] | None = None
) -> AsyncIterator[CuttingProxy]:
    port = int(server.endpoint.rsplit(":", 1)[1])
    proxy = CuttingProxy(port, path_key, cut_after, on_cut)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()


def via(server: S3Server, proxy: Any) -> S3Server:
    from dataclasses import replace

    return replace(server, endpoint=f"http://127.0.0.1:{proxy.port}")


@pytest.mark.parametrize("versioned", [False, True], ids=["plain", "versioned"])
async def test_resume_after_drop_returns_exact_bytes(s3_server: S3Server, versioned: bool) -> None:
    data = payload(3 * MiB, seed=5)
    with bucket_on(s3_server, versioned=versioned) as bucket:
        await put(bucket, "resume", data)
        path = f"/{s3_server.versioned_bucket if versioned else s3_server.bucket}/{prefix_of(bucket)}resume"
        async with proxied(s3_server, path, cut_after=700_000) as proxy:
            settings = via(s3_server, proxy).settings(versioned, key_prefix=prefix_of(bucket))
            with config.override({bucket.name: settings}):
                got = await bucket.download("resume").read()
                assert got == data
                ranged = await bucket.download("resume", offset=1000, length=2 * MiB).read()
                assert ranged == data[1000 : 1000 + 2 * MiB]
        assert proxy.cuts == 1
        gets = [r for r in proxy.requests if r.startswith(b"GET ")]
        assert len(gets) >= 2
        resumed = gets[1].lower()
        assert b"\r\nrange: bytes=" in resumed
        assert b"\r\nif-match: " in resumed or b"versionid=" in resumed


async def test_resume_refuses_to_splice_a_changed_object(s3_server: S3Server) -> None:
    data = payload(3 * MiB, seed=6)
    with bucket_on(s3_server) as bucket:
        await put(bucket, "changing", data)
        key = prefix_of(bucket) + "changing"

        async def overwrite() -> None:
            async with raw_client(s3_server) as raw:
                await raw.put_object(Bucket=s3_server.bucket, Key=key, Body=payload(3 * MiB, seed=7))

        path = f"/{s3_server.bucket}/{key}"
        async with proxied(s3_server, path, cut_after=500_000, on_cut=overwrite) as proxy:
            settings = via(s3_server, proxy).settings(False, key_prefix=prefix_of(bucket))
            with config.override({bucket.name: settings}), pytest.raises(aiobucket.ObjectChanged):
                await bucket.download("changing").read()
        assert proxy.cuts == 1


# -- 6. signed URLs with a plain HTTP client ----------------------------------------------


def _http(method: str, url: str, data: bytes | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/octet-stream")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


async def test_signed_urls_work_with_plain_http(backend: S3Server) -> None:
    with bucket_on(backend) as bucket:
        up = await bucket.signed_upload_url("signed.bin", ttl=timedelta(minutes=5))
        assert "X-Amz-Signature=" in up and "X-Amz-Algorithm=AWS4-HMAC-SHA256" in up
        status, _ = await asyncio.to_thread(_http, "PUT", up, b"signed bytes")
        assert status == 200
        down = await bucket.signed_download_url("signed.bin", ttl=timedelta(minutes=5))
        status, body = await asyncio.to_thread(_http, "GET", down)
        assert (status, body) == (200, b"signed bytes")

        expiring = await bucket.signed_download_url("signed.bin", ttl=timedelta(seconds=1))
        await asyncio.sleep(2.5)
        status, _ = await asyncio.to_thread(_http, "GET", expiring)
        assert status == 403


# -- 7. error mapping ---------------------------------------------------------------------


async def test_wrong_credentials_raise_permission_denied(backend: S3Server) -> None:
    with bucket_on(backend, secret_access_key="not-the-secret") as bucket:
        with pytest.raises(aiobucket.PermissionDenied):
            await put(bucket, "x", b"x")
        with pytest.raises(aiobucket.PermissionDenied):
            await bucket.download("x").read()
        with pytest.raises(aiobucket.PermissionDenied):
            async for err, _ in bucket.list():
                if err is not None:
                    raise err


async def test_unreachable_endpoint_raises_backend_error(s3_server: S3Server) -> None:
    from dataclasses import replace

    (port,) = free_ports(1)
    dead = replace(s3_server, endpoint=f"http://127.0.0.1:{port}")
    with bucket_on(dead, max_attempts=2, connect_timeout=2) as bucket:
        with pytest.raises(aiobucket.BackendError) as info:
            await bucket.attrs("x")
        assert not isinstance(info.value, aiobucket.ObjectNotFound)
        assert info.value.__cause__ is not None
        with pytest.raises(aiobucket.BackendError):
            await put(bucket, "x", b"x")


async def test_missing_cloud_bucket_is_a_clear_error(backend: S3Server) -> None:
    from dataclasses import replace

    missing = replace(backend, bucket=f"no-such-bucket-{uuid.uuid4().hex[:8]}")
    with bucket_on(missing) as bucket, pytest.raises(aiobucket.BackendError, match="does not exist"):
        async for err, _ in bucket.list():
            if err is not None:
                raise err


@pytest.mark.quirk("put_creates_bucket")
async def test_upload_to_missing_cloud_bucket_is_a_clear_error(backend: S3Server) -> None:
    from dataclasses import replace

    missing = replace(backend, bucket=f"no-such-bucket-{uuid.uuid4().hex[:8]}")
    try:
        with bucket_on(missing) as bucket, pytest.raises(aiobucket.BackendError, match="does not exist"):
            await put(bucket, "x", b"x")
    finally:
        async with raw_client(backend) as raw:
            with contextlib.suppress(Exception):
                for obj in (await raw.list_objects_v2(Bucket=missing.bucket)).get("Contents", []):
                    await raw.delete_object(Bucket=missing.bucket, Key=obj["Key"])
                await raw.delete_bucket(Bucket=missing.bucket)


# -- provider details ---------------------------------------------------------------------


async def test_versions_and_ranges(backend: S3Server) -> None:
    with bucket_on(backend, versioned=True) as bucket:
        v1 = await put(bucket, "v", b"0123456789")
        v2 = await put(bucket, "v", b"abcdefghij")
        assert v1.version and v2.version and v1.version != v2.version
        assert await bucket.download("v", version=v1.version, offset=2, length=3).read() == b"234"
        assert await bucket.download("v", offset=7).read() == b"hij"
        with pytest.raises(aiobucket.RangeNotSatisfiable):
            await bucket.download("v", offset=10).read()
        entries = []
        async for err, entry in bucket.list_versions():
            assert err is None
            entries.append(entry)
        assert [(e.version, e.is_latest) for e in entries] == [(v2.version, True), (v1.version, False)]
        await bucket.remove("v")  # a delete marker; versions stay
        assert not await bucket.exists("v")
        assert await bucket.download("v", version=v1.version).read() == b"0123456789"
        async for err, entry in bucket.list_versions():
            assert err is None and entry is not None and not entry.is_latest
        with pytest.raises(aiobucket.ObjectNotFound):
            await bucket.attrs("v", version="0123456789abcdef0123456789abcdef")


async def test_large_copy_uses_upload_part_copy(s3_server: S3Server) -> None:
    data = payload(2 * PART + 123, seed=8)
    with bucket_on(s3_server) as bucket:
        await put(bucket, "src", data, attrs=aiobucket.UploadAttrs(content_type="text/x-big"))
        provider = s3_provider(bucket)
        provider.copy_threshold, provider.copy_part_size = PART, PART
        copies = []
        real = provider.transport.send

        async def spy(method: str, url: Any, headers: dict[str, str], body: Any, **kw: Any) -> Any:
            if "x-amz-copy-source-range" in headers:
                copies.append(headers["x-amz-copy-source-range"])
            return await real(method, url, headers, body, **kw)

        provider.transport.send = spy  # type: ignore[method-assign]
        attrs = await bucket.copy("src", "dst")
        del provider.transport.send
        assert len(copies) == 3
        assert attrs.size == len(data)
        assert await bucket.download("dst").read() == data
        assert (await bucket.attrs("dst")).content_type == "text/x-big"


async def test_client_is_closed_by_aclose(s3_server: S3Server) -> None:
    """Both clients' connections: the lean one's (small requests) and aiohttp's (a body
    over ``h1.SMALL_BODY``)."""
    from aiobucket.providers._http import h1

    with bucket_on(s3_server) as bucket:
        await put(bucket, "c", b"c")
        await put(bucket, "big", b"b" * (h1.SMALL_BODY + 1))
        provider = s3_provider(bucket)
        session, pool = provider.transport._session, provider.transport._pool_h1
        assert session is not None and not session.closed
        assert pool is not None and pool._open > 0
        await aiobucket.aclose()
        assert provider.transport._session is None and provider.transport._pool_h1 is None
        assert session.closed
        assert pool.closed and pool._open == 0


def test_import_stays_cheap() -> None:
    code = "import sys, aiobucket; print(any(m.startswith(('aiobotocore', 'botocore')) for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_settings_validation() -> None:
    from aiobucket.config import BucketSettings
    from aiobucket.providers.s3 import create

    def make(url: str, **options: object) -> object:
        return create(BucketSettings(url=url, options=options), "b", aiobucket.BucketConfig())

    p = make("s3://x?endpoint=http://h:1&region=eu-west-1", access_key_id="a", secret_access_key="sekrit")
    assert isinstance(p, S3Provider) and p.settings.path_style and p.settings.region == "eu-west-1"
    assert "sekrit" not in repr(p.settings)
    assert not make("s3://x").settings.path_style  # type: ignore[attr-defined]
    assert not make("s3://x?endpoint=http://h:1&path_style=false").settings.path_style  # type: ignore[attr-defined]
    os.environ["AIOBUCKET_TEST_SECRET"] = "from-env"
    try:
        p = make("s3://x", access_key_id="a", secret_access_key_env="AIOBUCKET_TEST_SECRET")
        assert p.settings.secret_access_key == "from-env"  # type: ignore[attr-defined]
    finally:
        del os.environ["AIOBUCKET_TEST_SECRET"]
    for url, opts in [
        ("s3://x?bogus=1", {}),
        ("s3://x", {"acess_key_id": "typo"}),
        ("s3://x", {"access_key_id": "a"}),
        ("s3://x?endpoint=ftp://h", {}),
        ("s3://x", {"access_key_id": "a", "secret_access_key_env": "AIOBUCKET_UNSET_VAR"}),
    ]:
        with pytest.raises(aiobucket.InvalidArgument):
            make(url, **opts)
    # ?prefix= is config's business now: it arrives as key_prefix, never at the provider.
    assert aiobucket.config.settings_from("b", "s3://x?prefix=p/").key_prefix == "p/"


async def whole_read_attrs(bucket: aiobucket.Bucket, key: str) -> aiobucket.ObjectAttrs:
    """The attrs a whole download sees (the read that asks S3 for the stored checksums)."""
    async with bucket.download(key) as reader:
        attrs = await reader.attrs()
        await reader.read()
    return attrs


async def test_checksums_reported_for_whole_download_checks(backend: S3Server) -> None:
    """A single PUT stores its CRC32C (where the server keeps one) and has an MD5 ETag;
    a multipart object has no MD5, and its FULL_OBJECT CRC32C where the server keeps one
    (SeaweedFS; RGW 16.2 keeps none: quirk multipart_unverified). The checksums are
    asked for on whole reads only: attrs() leaves them out (on SSE-KMS they need
    kms:Decrypt)."""
    import base64
    import hashlib

    import google_crc32c

    data = payload(1000, seed=11)
    with bucket_on(backend) as bucket:
        put_attrs = await put(bucket, "single", data)
        assert (await bucket.attrs("single")).crc32c is None
        head = await whole_read_attrs(bucket, "single")
        assert head.md5 == put_attrs.md5 == hashlib.md5(data).hexdigest()
        crc = base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode()
        assert head.crc32c in (crc, None) and put_attrs.crc32c == head.crc32c
        if backend.name == "seaweedfs":
            assert head.crc32c == crc  # SeaweedFS keeps x-amz-checksum-crc32c
        multi_data = payload(PART + 1, seed=12)
        multi = await put(bucket, "multi", multi_data, part_size=PART)
        multi_head = await whole_read_attrs(bucket, "multi")
        assert multi.md5 is None and multi_head.md5 is None
        if backend.name == "seaweedfs":
            assert multi.crc32c == multi_head.crc32c == crc32c_b64(multi_data)
        else:
            assert backend.name == "rgw" and "multipart_unverified" in backend.quirks
            assert multi.crc32c is None and multi_head.crc32c is None


async def test_parts_sent_out_of_order_give_the_whole_object_crc32c(s3_server: S3Server) -> None:
    """The whole-object CRC32C is combined in part-number order, not in the order the parts
    were sent or finished: parts 3, 1, 2 sent concurrently in that order still complete to
    the CRC32C of the object, which the server checks and stores."""
    from aiobucket.providers.base import PutOptions

    data = payload(2 * PART + 12_345, seed=14)
    pieces = {n: data[(n - 1) * PART : n * PART] for n in (1, 2, 3)}
    with bucket_on(s3_server) as bucket:
        provider = s3_provider(bucket)
        key = prefix_of(bucket) + "ooo"
        upload = await provider.start_multipart(key, PutOptions("application/octet-stream"))
        sent = await asyncio.gather(*(upload.put_part(n, pieces[n]) for n in (3, 1, 2)))
        attrs = await upload.complete(list(sent))
        assert attrs.crc32c == crc32c_b64(data)
        assert (await whole_read_attrs(bucket, "ooo")).crc32c == crc32c_b64(data)
        assert await bucket.download("ooo").read() == data


NO_ACLOSE_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    import aiobucket

    async def main() -> None:
        aiobucket.configure({"b": json.loads(sys.argv[1])})
        bucket = aiobucket.Bucket("b")
        await bucket.upload("k").close()
        try:
            await bucket.download("missing").read()
        except aiobucket.ObjectNotFound:
            print("not found, as expected")
        # no aiobucket.aclose(): a script that forgot it

    asyncio.run(main())
    """
)


def test_no_unclosed_session_noise_without_aclose(s3_server: S3Server) -> None:
    """Issue 12 item 8: forgetting aclose() after an error prints nothing about sessions."""
    settings = s3_server.settings(False, key_prefix=f"noise-{uuid.uuid4().hex[:8]}/")
    out = subprocess.run(
        [sys.executable, "-c", NO_ACLOSE_SCRIPT, json.dumps(settings)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "not found, as expected" in out.stdout
    assert "Unclosed" not in out.stderr and "unclosed" not in out.stderr, out.stderr


@pytest.mark.parametrize("list_pages", [2, 0], ids=["listed", "headed"])
async def test_delete_many_reports_missing_keys_in_their_slots(
    s3_server: S3Server, list_pages: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One DeleteObjects per batch; a missing key is ObjectNotFound in its slot (found by a
    listing of the batch's prefix, or by HEADs when the listing does not cover it)."""
    from aiobucket.providers.s3 import _batch

    monkeypatch.setattr(_batch, "_LIST_PAGES", list_pages)
    with through_proxy(s3_server) as (bucket, proxy):
        for k in ("d/a", "d/b", "d/c"):
            await put(bucket, k, k.encode())
        provider = s3_provider(bucket)
        prefix = prefix_of(bucket)
        keys = [prefix + k for k in ("d/a", "d/missing", "d/c", "d/b", "d/nope")]
        proxy.clear()
        results = await provider.delete_many(keys)
        assert [type(r).__name__ if r else None for r in results] == [
            None, "ObjectNotFound", None, None, "ObjectNotFound"
        ]  # fmt: skip
        assert results[1] is not None and results[1].key == keys[1]
        await proxy.settled()
        assert len(proxy.matching(method="POST", query="delete")) == 1
        heads = proxy.matching(method="HEAD")
        assert (len(heads) == 5) if list_pages == 0 else not heads
        for k in ("d/a", "d/b", "d/c"):
            assert not await bucket.exists(k)
        [again] = await provider.delete_many([prefix + "d/a"])
        assert isinstance(again, aiobucket.ObjectNotFound)


@pytest.mark.parametrize("provider", ["aws", "other"])
@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_every_upload_body_carries_a_verified_checksum(scheme: str, provider: str) -> None:
    """Which checksum headers each kind of body gets (no I/O: explicit endpoint and keys).

    Where the store verifies x-amz-checksum-crc32c (aws), that CRC32C is the check and each
    byte is hashed once more only over http (the signed SHA-256); the MD5 is made only for
    a conditional write (keep_md5). Elsewhere (other) every body carries Content-MD5."""
    import base64
    import hashlib

    from aiobucket.config import BucketSettings
    from aiobucket.providers.s3 import create

    provider_ = create(
        BucketSettings(
            url=f"s3://b?endpoint={scheme}://s3.example.invalid&region=eu-west-1&provider={provider}",
            options={"access_key_id": "a", "secret_access_key": "s"},
        ),
        "b",
        aiobucket.BucketConfig(),
    )
    assert isinstance(provider_, S3Provider)
    data = payload(2 * MiB, seed=13)
    md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
    sha = hashlib.sha256(data).hexdigest()
    crc = {"x-amz-checksum-crc32c": crc32c_b64(data)}
    whole, md5_hex, whole_hash = await provider_.body_hashes(memoryview(data), whole=True)
    part, _, part_hash = await provider_.body_hashes(memoryview(data), whole=False)
    kept, kept_hex, _ = await provider_.body_hashes(memoryview(data), whole=True, keep_md5=True)
    assert whole_hash == part_hash == (sha if scheme == "http" else "UNSIGNED-PAYLOAD")
    assert kept["content-md5"] == md5 and kept_hex == hashlib.md5(data).hexdigest()
    if provider == "aws":
        assert whole == {**crc, "x-amz-sdk-checksum-algorithm": "CRC32C"} and part == crc and md5_hex is None
    else:
        assert whole == part == {"content-md5": md5} and md5_hex == hashlib.md5(data).hexdigest()


async def test_conditional_get_raises_not_modified_with_full_attrs(backend: S3Server) -> None:
    from datetime import UTC, datetime, timedelta

    from aiobucket.providers.base import GetOptions

    with bucket_on(backend) as bucket:
        stored = await put(
            bucket, "cached", b"cache me", attrs=aiobucket.UploadAttrs(content_type="text/x-c")
        )
        provider = s3_provider(bucket)
        key = prefix_of(bucket) + "cached"
        for opts in (
            GetOptions(if_none_match=stored.etag),
            GetOptions(if_none_match=f'"{stored.etag}"'),
            GetOptions(if_modified_since=datetime.now(UTC) + timedelta(hours=1)),
        ):
            with pytest.raises(aiobucket.NotModified) as info:
                await provider.get(key, opts)
            attrs = info.value.attrs
            assert isinstance(attrs, aiobucket.ObjectAttrs)
            assert (attrs.etag, attrs.size, attrs.content_type) == (stored.etag, 8, "text/x-c")
        attrs, body = await provider.get(key, GetOptions(if_none_match="0123456789abcdef0123456789abcdef"))
        assert b"".join([c async for c in body]) == b"cache me"
        await body.aclose()
        old = datetime.now(UTC) - timedelta(days=1)
        attrs, body = await provider.get(key, GetOptions(if_modified_since=old))
        assert b"".join([c async for c in body]) == b"cache me"
        await body.aclose()


async def test_credentials_from_the_aws_chain(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without access_key_id the standard chain (here: environment variables) signs the
    data plane; aiobotocore resolves it, and the credentials are frozen per request."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    settings = s3_server.settings(False, key_prefix=f"chain-{uuid.uuid4().hex[:8]}/")
    del settings["access_key_id"], settings["secret_access_key"]
    name = f"t-{uuid.uuid4().hex[:12]}"
    with config.override({name: settings}):
        bucket = aiobucket.Bucket(name)
        await put(bucket, "k", b"signed by the chain")
        assert await bucket.download("k").read() == b"signed by the chain"
        provider = s3_provider(bucket)
        assert provider._ep is not None and provider._ep.static is None  # from the chain
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")  # resolved once: still signs
        await bucket.remove("k")
