"""``aiobucket serve``, run for real: the console script in a subprocess on 127.0.0.1.

The library in this process and the server share one AIOBUCKET_CONFIG (file://
buckets under tmp_path) and AIOBUCKET_DEV_SERVER points the library's URLs at
the server's port. The server is stopped with SIGINT (Ctrl-C) in teardown and
must exit 0 without logging a traceback or a ResourceWarning (an unclosed reader).
No test asserts on the clock: expiry is observed by a bounded poll.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest

import aiobucket
from aiobucket import Bucket, BucketConfig, Preconditions, UploadAttrs, config

pytestmark = pytest.mark.anyio

SCRIPT = shutil.which("aiobucket", path=os.path.dirname(sys.executable))
_URL = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")
HOSTILE = "<script>alert(1)</script>.txt"
SECRET = b"top secret, outside every bucket root"


class Server:
    def __init__(self, workdir: Path, *args: str) -> None:
        assert SCRIPT is not None, "the aiobucket console script is not installed in this venv"
        self.workdir = workdir
        self.log_path = workdir / "serve.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIOBUCKET")}
        env.update(
            AIOBUCKET_CONFIG=str(workdir / "aiobucket.toml"),
            PYTHONUNBUFFERED="1",
            PYTHONWARNINGS="always::ResourceWarning",
        )
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [SCRIPT, "serve", "--port", "0", *args],
                cwd=workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.url = ""

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_listening(self) -> str:
        for _ in range(600):  # bounded: it prints its URL once it listens
            if m := _URL.search(self.log()):
                self.url = m.group(1)
                return self.url
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"aiobucket serve did not start (exit {self.proc.poll()}):\n{self.log()}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"aiobucket serve ignored SIGINT:\n{self.log()}") from None

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def status(self, field: str) -> int:
        """A /proc/PID/status memory field (VmRSS, VmHWM) in bytes."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise AssertionError(field)


def write_config(tmp_path: Path) -> Path:
    store = tmp_path / "store"
    cfg = tmp_path / "aiobucket.toml"
    cfg.write_text(
        f'default = "file://{tmp_path / "default"}"\n'
        "[buckets.priv]\n"
        f'url = "file://{store / "priv"}"\n'
        'key_prefix = "pp/"\n'
        "[buckets.pub]\n"
        f'url = "file://{store / "pub"}"\n'
        "public = true\n"
        "[buckets.ver]\n"
        f'url = "file://{store / "ver"}"\n'
        "versioned = true\n"
        "[buckets.decl]\n"
        f'url = "file://{store / "decl"}"\n'
        "[buckets]\n"
        'scratch = "memory://"\n'
    )
    (tmp_path / "secret.txt").write_bytes(SECRET)
    return cfg


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    cfg = write_config(tmp_path)
    srv = Server(tmp_path)
    try:
        url = srv.wait_listening()
        monkeypatch.setenv("AIOBUCKET_CONFIG", str(cfg))
        monkeypatch.setenv("AIOBUCKET_DEV_SERVER", url)
        config.reset()
        yield srv
    finally:
        rc = srv.stop()
        config.reset()
        log = srv.log()
        print(f"----- aiobucket serve log (exit {rc}) -----\n{log}")
    assert rc == 0, f"exit {rc}"
    for bad in ("Traceback", "ResourceWarning", "Exception ignored", "Error handling request"):
        assert bad not in log, f"the server logged {bad!r}"


@pytest.fixture
async def http(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client
    await aiobucket.aclose()


async def put(
    bucket: Bucket, key: str, data: bytes, content_type: str | None = None
) -> aiobucket.ObjectAttrs:
    async with bucket.upload(key, attrs=UploadAttrs(content_type=content_type)) as w:
        await w.write(data)
    return await w.close()


def with_query(url: str, **changes: str | None) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    for k, v in changes.items():
        if v is None:
            query.pop(k, None)
        else:
            query[k] = v
    return urlunsplit(parts._replace(query=urlencode(query)))


def raw_request(
    port: int, method: str, target: str, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """Send the request line exactly as given: no client-side normalisation of ``..``."""
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", "Content-Length: 3"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + b"pwn")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


# -- signed URLs ------------------------------------------------------------------------


async def test_signed_upload_then_download_roundtrip(server: Server, http: httpx.AsyncClient) -> None:
    b = Bucket("priv")
    key = "dir/ä b+c%.txt"
    put_url = await b.signed_upload_url(key, ttl=timedelta(minutes=5))
    assert put_url.startswith(server.url + "/o/priv/pp/dir/")  # the stored key, key_prefix included
    r = await http.put(put_url, content=b"hello, signed world", headers={"Content-Type": "text/x-greeting"})
    assert r.status_code == 200, r.text
    attrs = await b.attrs(key)  # stored through the public API, under the bucket's key
    assert (attrs.size, attrs.content_type) == (19, "text/x-greeting")
    assert r.headers["etag"] == f'"{attrs.etag}"'

    get_url = await b.signed_download_url(key, ttl=60)
    r = await http.get(get_url)
    assert r.status_code == 200 and r.content == b"hello, signed world"
    assert r.headers["content-type"] == "text/x-greeting"
    assert r.headers["content-length"] == "19" and r.headers["accept-ranges"] == "bytes"
    assert r.headers["etag"] == f'"{attrs.etag}"' and r.headers["last-modified"].endswith("GMT")
    assert (await http.get(get_url, headers={"If-None-Match": f'"{attrs.etag}"'})).status_code == 304

    # Signed PUT URLs cannot GET, signed GET URLs cannot PUT.
    assert (await http.get(put_url)).status_code == 403
    assert (await http.put(get_url, content=b"x")).status_code == 403
    # A missing object behind a valid signature is a 404; the key file exists since the first sign.
    assert (await http.get(await b.signed_download_url("nope"))).status_code == 404
    assert (server.workdir / "store" / "priv" / "signing.key").stat().st_mode & 0o777 == 0o600


async def test_create_only_urls_are_signed_and_refuse_overwrites(
    server: Server, http: httpx.AsyncClient
) -> None:
    b = Bucket("priv")
    url = await b.signed_upload_url("once.txt", preconditions=Preconditions(not_exists=True))
    assert "create_only=1" in url
    # The condition is signed: dropping it, or adding it to a plain URL, breaks the signature.
    assert (await http.put(with_query(url, create_only=None), content=b"x")).status_code == 403
    plain = await b.signed_upload_url("once.txt")
    assert (await http.put(with_query(plain, create_only="1"), content=b"x")).status_code == 403
    assert not await b.exists("once.txt")
    assert (await http.put(url, content=b"first")).status_code == 200
    r = await http.put(url, content=b"second")  # no header needed: the URL says create-only
    assert r.status_code == 412, r.text
    assert await b.download("once.txt").read() == b"first"
    assert (await http.put(plain, content=b"replaced")).status_code == 200  # a plain URL overwrites
    assert await b.download("once.txt").read() == b"replaced"


async def test_signed_put_streams_with_bounded_memory(server: Server, http: httpx.AsyncClient) -> None:
    size = 96 * 1024 * 1024
    block = os.urandom(1024 * 1024)

    async def body() -> AsyncIterator[bytes]:
        for _ in range(size // len(block)):
            yield block

    rss_before = server.status("VmRSS")
    url = await Bucket("priv").signed_upload_url("big.bin")
    r = await http.put(url, content=body(), headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 200, r.text
    got = 0
    async with http.stream("GET", await Bucket("priv").signed_download_url("big.bin")) as resp:
        assert resp.status_code == 200
        async for chunk in resp.aiter_bytes():
            got += len(chunk)
    assert got == size
    growth = server.status("VmHWM") - rss_before
    assert growth < 48 * 1024 * 1024, f"the server's peak RSS grew by {growth / 2**20:.0f} MiB"


async def test_signed_urls_expire(server: Server, http: httpx.AsyncClient) -> None:
    b = Bucket("priv")
    await put(b, "k", b"v")
    url = await b.signed_download_url("k", ttl=1)
    statuses = []
    for _ in range(200):  # bounded poll; no assumption about how long one second takes
        statuses.append((await http.get(url)).status_code)
        if statuses[-1] == 403:
            break
        await asyncio.sleep(0.05)
    assert statuses[-1] == 403, statuses
    assert set(statuses[:-1]) <= {200}, statuses
    assert "expired" in (await http.get(url)).text


async def test_tampering_with_any_signed_component_is_403(server: Server, http: httpx.AsyncClient) -> None:
    b = Bucket("priv")
    await put(b, "a/k.txt", b"data")
    await put(b, "a/other.txt", b"other")
    await put(Bucket("pub"), "pp/a/k.txt", b"public twin")
    url = await b.signed_download_url("a/k.txt")
    assert (await http.get(url)).status_code == 200
    q = dict(parse_qsl(urlsplit(url).query))
    sig, exp = q["signature"], int(q["expires"])
    flipped = ("0" if sig[0] != "0" else "1") + sig[1:]
    tampered = {
        "signature": with_query(url, signature=flipped),
        "signature (truncated)": with_query(url, signature=sig[:-2]),
        "no signature": with_query(url, signature=None),
        "no expiry": with_query(url, expires=None),
        "expiry later": with_query(url, expires=str(exp + 3600)),
        "expiry earlier": with_query(url, expires=str(exp - 1)),
        "version added": with_query(url, version="v1"),
        "key": url.replace("/a/k.txt", "/a/other.txt"),
        "key case": url.replace("/a/k.txt", "/a/K.txt"),
        "bucket": url.replace("/o/priv/", "/o/ver/"),
    }
    for what, bad in tampered.items():
        r = await http.get(bad)
        assert r.status_code == 403, (what, r.status_code, r.text)
        assert r.headers["access-control-allow-origin"] == "*"  # a browser app can read the 403
    # The method is signed too: the GET URL cannot PUT, the PUT URL cannot GET or PUT elsewhere.
    assert (await http.put(url, content=b"overwrite")).status_code == 403
    put_url = await b.signed_upload_url("a/k.txt")
    assert (await http.put(put_url.replace("/a/k.txt", "/a/other.txt"), content=b"x")).status_code == 403
    assert await b.download("a/other.txt").read() == b"other"
    assert await b.download("a/k.txt").read() == b"data"
    # A bucket that never signed anything has no key: nothing validates there.
    r = await http.get(url.replace("/o/priv/", "/o/pub/"))  # pub is public, but the signature is bad
    assert r.status_code == 403


async def test_versions_are_signed(server: Server, http: httpx.AsyncClient) -> None:
    b = Bucket("ver", BucketConfig(versioned=True))
    v1 = await put(b, "k", b"first")
    v2 = await put(b, "k", b"second")
    assert v1.version and v2.version and v1.version != v2.version
    url = await b.signed_download_url("k", version=v1.version)
    r = await http.get(url)
    assert r.status_code == 200 and r.content == b"first"
    assert (await http.get(with_query(url, version=v2.version))).status_code == 403
    assert (await http.get(with_query(url, version=None))).status_code == 403
    # Uploads through the server keep history on a bucket configured `versioned = true`.
    r = await http.put(await b.signed_upload_url("k"), content=b"third")
    assert r.status_code == 200
    assert await b.download("k", version=v1.version).read() == b"first"


# -- HTTP semantics ---------------------------------------------------------------------


async def test_ranges_and_head(server: Server, http: httpx.AsyncClient) -> None:
    b = Bucket("priv")
    data = bytes(range(256)) * 4  # 1024 bytes
    await put(b, "r.bin", data)
    await put(b, "empty", b"")
    url = await b.signed_download_url("r.bin")

    async def get(rng: str) -> httpx.Response:
        return await http.get(url, headers={"Range": rng})

    cases = {
        "bytes=0-9": (206, data[:10], "bytes 0-9/1024"),
        "bytes=1000-": (206, data[1000:], "bytes 1000-1023/1024"),
        "bytes=-24": (206, data[-24:], "bytes 1000-1023/1024"),
        "bytes=-5000": (206, data, "bytes 0-1023/1024"),
        "bytes=1020-5000": (206, data[1020:], "bytes 1020-1023/1024"),
        "bytes=1023-1023": (206, data[-1:], "bytes 1023-1023/1024"),
    }
    for rng, (status, body, content_range) in cases.items():
        r = await get(rng)
        assert (r.status_code, r.content, r.headers.get("content-range")) == (status, body, content_range), (
            rng
        )
        assert r.headers["content-length"] == str(len(body))
    for rng in ("bytes=1024-", "bytes=5000-6000", "bytes=-0"):
        r = await get(rng)
        assert r.status_code == 416, rng
        assert r.headers["content-range"] == "bytes */1024"
    for rng in ("bytes=0-1,5-6", "items=0-1", "bytes=9-3"):  # ignored: the whole object
        r = await get(rng)
        assert (r.status_code, r.content) == (200, data), rng

    head = await http.head(url)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == "1024" and head.headers["etag"]
    head = await http.head(url, headers={"Range": "bytes=10-19"})
    assert head.status_code == 206 and head.headers["content-range"] == "bytes 10-19/1024"
    assert head.headers["content-length"] == "10"

    empty = await b.signed_download_url("empty")
    r = await http.get(empty)
    assert (r.status_code, r.content, r.headers["content-length"]) == (200, b"", "0")
    r = await http.get(empty, headers={"Range": "bytes=0-"})
    assert r.status_code == 416 and r.headers["content-range"] == "bytes */0"


async def test_cors_preflight_and_headers(server: Server, http: httpx.AsyncClient) -> None:
    b = Bucket("priv")
    url = await b.signed_upload_url("cors.txt")
    r = await http.options(
        url,
        headers={
            "Origin": "http://app.example.test",
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "content-type, x-custom",
        },
    )
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == "*"
    assert {"GET", "HEAD", "PUT"} <= {m.strip() for m in r.headers["access-control-allow-methods"].split(",")}
    assert r.headers["access-control-allow-headers"] == "content-type, x-custom"
    r = await http.put(url, content=b"abc", headers={"Origin": "http://app.example.test"})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "*"
    r = await http.get(await b.signed_download_url("cors.txt"), headers={"Origin": "http://app.example.test"})
    assert r.headers["access-control-allow-origin"] == "*"
    exposed = {h.strip().lower() for h in r.headers["access-control-expose-headers"].split(",")}
    assert {"etag", "content-range", "content-length"} <= exposed
    # The browser's admin routes grant no CORS at all.
    r = await http.options(f"{server.url}/api/b/priv/o/x", headers={"Origin": "http://evil.test"})
    assert "access-control-allow-origin" not in r.headers


async def test_public_bucket_serves_unsigned_reads_only(server: Server, http: httpx.AsyncClient) -> None:
    await put(Bucket("pub"), "img/a b.txt", b"public bytes", "text/plain")
    await put(Bucket("priv"), "img/a b.txt", b"private bytes")
    r = await http.get(f"{server.url}/o/pub/img/a%20b.txt")
    assert (r.status_code, r.content, r.headers["content-type"]) == (200, b"public bytes", "text/plain")
    assert (await http.head(f"{server.url}/o/pub/img/a%20b.txt")).status_code == 200
    assert (await http.put(f"{server.url}/o/pub/img/a%20b.txt", content=b"x")).status_code == 403
    assert (await http.get(f"{server.url}/o/pub/missing")).status_code == 404
    assert (await http.get(f"{server.url}/o/priv/pp/img/a%20b.txt")).status_code == 403
    assert (await http.head(f"{server.url}/o/priv/pp/img/a%20b.txt")).status_code == 403
    assert (await http.get(f"{server.url}/o/priv/img/a%20b.txt")).status_code in (403, 404)
    assert (await http.get(f"{server.url}/o/scratch/k")).status_code == 404  # memory://: not served


async def test_public_url_of_a_declared_public_local_bucket_works(
    server: Server, http: httpx.AsyncClient
) -> None:
    decl = Bucket("decl", BucketConfig(public=True))
    root = server.workdir / "store" / "decl"
    url = decl.public_url("logo.svg")  # no I/O: the root is not even created
    assert url == f"{server.url}/o/decl/logo.svg"
    assert not root.exists()
    assert (await http.get(url)).status_code == 403  # nothing says it is public yet
    # The first write through the declared bucket records it for the server.
    await put(decl, "logo.svg", b"<svg/>", "image/svg+xml")
    r = await http.get(url)
    assert (r.status_code, r.content) == (200, b"<svg/>")
    with pytest.raises(aiobucket.InvalidArgument, match="public"):
        Bucket("priv").public_url("k")  # not declared public: unchanged


async def test_path_traversal_is_refused_and_never_escapes_the_root(
    server: Server, http: httpx.AsyncClient
) -> None:
    b = Bucket("priv")
    await put(b, "ok.txt", b"fine")
    await put(Bucket("pub"), "ok.txt", b"fine")
    # A valid signature from the library, for the key the attacks try to reach.
    url = await b.signed_download_url("ok.txt")
    query = urlsplit(url).query
    before = sorted((p, p.stat().st_mtime_ns) for p in server.workdir.rglob("*") if "store" not in p.parts)
    targets = [
        "/o/pub/../../secret.txt",
        "/o/pub/%2e%2e/%2e%2e/secret.txt",
        "/o/pub/%2E%2E%2F%2E%2E%2Fsecret.txt",
        "/o/pub/..%5c..%5csecret.txt",
        "/o/pub/a\\..\\..\\secret.txt",
        "/o/pub/%5c..%5csecret.txt",
        "/o/pub/ok.txt%00.png",
        "/o/pub/%00",
        "/o/pub//etc/passwd",
        "/o/pub/%2Fetc%2Fpasswd",
        f"/o/pub/{server.workdir}/secret.txt",
        "/o/../secret.txt",
        "/o/%2e%2e/secret.txt",
        "/o/..%2fsecret.txt/x",
        f"/o/priv/pp/../../secret.txt?{query}",
        f"/o/priv/pp/%2e%2e/ok.txt?{query}",
        "/o/pub/.",
        "/o/pub/a/./b",
        "/o/pub/%ff%fe",
        "/static/..%2f__init__.py",
        "/static/../_signing.py",
        "/b/..%2f..%2fetc",
    ]
    for target in targets:
        for method in ("GET", "PUT", "HEAD"):
            status, body = raw_request(server.port, method, target)
            assert status in (400, 403, 404, 405), (method, target, status, body)
            assert SECRET not in body and b"def " not in body, (method, target)
    # The admin routes, with a valid browser token, refuse them as well.
    token = re.search(r'name="aiobucket-token" content="([^"]+)"', (await http.get(server.url + "/")).text)
    assert token is not None
    for target in (
        "/api/b/pub/o/../../secret.txt",
        "/api/b/pub/o/%2e%2e/secret.txt",
        "/api/b/pub/o/a%5c..%5cb",
        "/api/b/pub/o/%00",
        "/api/b/pub/o//etc/passwd",
        "/api/b/../o/secret.txt",
    ):
        for method in ("GET", "PUT", "DELETE"):
            status, body = raw_request(server.port, method, target, {"X-Aiobucket-Token": token[1]})
            assert status in (400, 403, 404), (method, target, status, body)
            assert SECRET not in body
    after = sorted((p, p.stat().st_mtime_ns) for p in server.workdir.rglob("*") if "store" not in p.parts)
    after = [(p, m) for p, m in after if p.name != "serve.log"]
    assert after == [(p, m) for p, m in before if p.name != "serve.log"]
    assert (server.workdir / "secret.txt").read_bytes() == SECRET
    # ... and the buckets hold exactly what they held.
    assert [e.name async for _, e in b.list() if e] == ["ok.txt"]
    assert [e.name async for _, e in Bucket("pub").list() if e] == ["ok.txt"]


async def test_client_disconnect_closes_the_reader(server: Server, http: httpx.AsyncClient) -> None:
    b = Bucket("priv")
    await put(b, "big", os.urandom(16 * 1024 * 1024))
    url = await b.signed_download_url("big")
    assert len((await http.get(url)).content) == 16 * 1024 * 1024  # warm up: index open, etc.
    baseline = server.fds()
    target = url[len(server.url) :]
    for _ in range(5):
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
            s.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            assert s.recv(65536).startswith(b"HTTP/1.1 200")
        # closed with unread data: the server sees a reset mid-body
    for _ in range(400):  # bounded poll
        if server.fds() <= baseline:
            break
        await asyncio.sleep(0.05)
    assert server.fds() <= baseline, "the server kept file handles after clients went away"
    assert (await http.get(url, headers={"Range": "bytes=0-0"})).status_code == 206


# -- the bucket browser -----------------------------------------------------------------


async def test_browser_pages_render_and_escape_hostile_keys(server: Server, http: httpx.AsyncClient) -> None:
    b = Bucket("priv")
    await put(b, HOSTILE, b"xss?", "text/html")
    await put(b, "dir/<img src=x onerror=alert(1)>/f.txt", b"deep")
    await put(b, "dir/q\"uote's & amp.txt", b"q")

    index = await http.get(server.url + "/")
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
    for name in ("priv", "pub", "ver", "decl"):
        assert f'href="/b/{name}"' in index.text
    assert "scratch" not in index.text  # memory:// is not served

    page = await http.get(server.url + "/b/priv")
    assert page.status_code == 200
    assert "<script>alert(1)" not in page.text
    # "/" makes "<script>alert(1)</" a folder, shown escaped and linked percent-encoded.
    assert 'href="/b/priv?prefix=%3Cscript%3Ealert%281%29%3C%2F">&lt;script&gt;alert(1)&lt;/</a>' in page.text
    assert 'href="/b/priv?prefix=dir%2F"' in page.text  # a folder, not its objects
    assert "f.txt" not in page.text

    inside = await http.get(server.url + "/b/priv", params={"prefix": "<script>alert(1)</"})
    assert "<script>alert(1)" not in inside.text
    assert 'data-key="&lt;script&gt;alert(1)&lt;/script&gt;.txt"' in inside.text
    assert "%3Cscript%3Ealert%281%29%3C/script%3E.txt?download=1" in inside.text
    assert ">script&gt;.txt</a>" in inside.text
    assert "text/html" in inside.text and "4 B" in inside.text  # attrs: content type, size

    sub = await http.get(server.url + "/b/priv", params={"prefix": "dir/"})
    assert "&lt;img src=x onerror=alert(1)&gt;/" in sub.text and "<img" not in sub.text
    assert "q&quot;uote&#x27;s &amp; amp.txt" in sub.text
    deeper = await http.get(server.url + "/b/priv", params={"prefix": "dir/<img src=x onerror=alert(1)>/"})
    assert "f.txt" in deeper.text and "<img" not in deeper.text
    assert (await http.get(server.url + "/b/unused")).status_code == 200  # under the default root
    assert not (server.workdir / "default" / "unused").exists()  # looking creates nothing
    assert (await http.get(server.url + "/b/scratch")).status_code == 404
    assert (await http.get(server.url + "/b/priv", params={"prefix": "../x"})).status_code == 404


async def test_browser_admin_routes_are_guarded(server: Server, http: httpx.AsyncClient) -> None:
    page = await http.get(server.url + "/b/pub")  # sets the SameSite=Strict cookie
    m = re.search(r'name="aiobucket-token" content="([^"]+)"', page.text)
    assert m is not None
    token = m[1]
    api = f"{server.url}/api/b/pub/o/up/%3Cx%3E.txt"
    async with httpx.AsyncClient(timeout=30) as stranger:  # no cookie, no token
        assert (await stranger.put(api, content=b"x")).status_code == 403
        assert (await stranger.get(api)).status_code == 403
    assert (await http.put(api, content=b"x")).status_code == 403  # the cookie alone cannot write
    hdr = {"X-Aiobucket-Token": token}
    assert (
        await http.put(api, content=b"x", headers={**hdr, "Origin": "http://evil.test"})
    ).status_code == 403
    assert (await http.put(api, content=b"x", headers={**hdr, "Host": "evil.test"})).status_code == 403
    assert (await http.get(server.url + "/", headers={"Host": "rebound.evil.test"})).status_code == 403
    r = await http.put(
        api, content=b"uploaded", headers={**hdr, "Content-Type": "text/plain", "Origin": server.url}
    )
    assert r.status_code == 200
    assert await Bucket("pub").download("up/<x>.txt").read() == b"uploaded"
    r = await http.get(api + "?download=1")  # the cookie is enough to read
    assert r.status_code == 200 and r.content == b"uploaded"
    assert r.headers["content-disposition"].startswith("attachment;")
    assert (await http.delete(api)).status_code == 403
    assert (await http.delete(api, headers=hdr)).status_code == 204
    assert (await http.delete(api, headers=hdr)).status_code == 404
    assert not await Bucket("pub").exists("up/<x>.txt")


# -- the command ----------------------------------------------------------------------------


def test_serving_a_non_local_bucket_is_one_clear_error(tmp_path: Path) -> None:
    write_config(tmp_path)
    srv = Server(tmp_path, "scratch")
    assert srv.proc.wait(timeout=60) == 1
    log = srv.log()
    assert log.startswith("aiobucket: error: ") and log.count("\n") == 1 and "file://" in log, log


def test_named_buckets_only(tmp_path: Path) -> None:
    write_config(tmp_path)
    srv = Server(tmp_path, "pub")
    try:
        url = srv.wait_listening()
        with httpx.Client(timeout=30) as http:
            assert 'href="/b/pub"' in http.get(url + "/").text
            assert 'href="/b/priv"' not in http.get(url + "/").text
            assert http.get(url + "/o/priv/pp/x").status_code == 404
            assert http.get(url + "/o/pub/x").status_code == 404  # served; just no such object
    finally:
        assert srv.stop() == 0, srv.log()
    assert "Traceback" not in srv.log()


# -- the signing helpers, without a server ----------------------------------------------------


def test_signing_key_is_created_once_atomically_and_privately(tmp_path: Path) -> None:
    import concurrent.futures

    from aiobucket.providers.local import _signing

    root = tmp_path / "bucket"
    assert _signing.load_key(root, create=False) is None
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        keys = set(pool.map(lambda _: _signing.load_key(root), range(64)))
    assert len(keys) == 1 and len(keys.pop()) == 64  # every racer sees the winner's key
    assert (root / "signing.key").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in root.iterdir()) == ["signing.key"]  # no temp files left


def test_verify_names_the_reason() -> None:
    from aiobucket.providers.local import _signing

    secret = b"k" * 64
    now = 1_000_000.0
    url = _signing.signed_url("http://h", secret, "GET", "b", "a/k", None, 60, now=now)
    q = dict(parse_qsl(urlsplit(url).query))
    exp, sig = q["expires"], q["signature"]

    def check(**kw: object) -> str | None:
        args: dict[str, object] = dict(method="GET", bucket="b", key="a/k", version=None, expires=exp)
        args.update(kw)
        return _signing.verify(
            secret,
            str(args["method"]),
            str(args["bucket"]),
            str(args["key"]),
            args["version"],  # type: ignore[arg-type]
            args["expires"],  # type: ignore[arg-type]
            str(kw.get("signature", sig)),
            now=float(kw.get("now", now)),  # type: ignore[arg-type]
        )

    assert check() is None
    assert check(now=now + 60) is None and check(now=now + 61) == "the URL has expired"
    for change in ({"method": "PUT"}, {"bucket": "c"}, {"key": "a/K"}, {"version": "v"},
                   {"expires": str(int(exp) + 1)}, {"signature": "0" * 64}):  # fmt: skip
        assert check(**change) == "signature mismatch", change
    assert check(expires=None) == "the URL is not signed"
    assert check(expires="-5") == "bad expiry"
    far = str(int(now) + 30 * 86400)
    far_sig = _signing.sign(secret, "GET", "b", "a/k", None, int(far))
    assert check(expires=far, signature=far_sig) == "the expiry is too far in the future"
