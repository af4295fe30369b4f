"""Public and signed URLs, and copy."""

from __future__ import annotations

from datetime import timedelta

import pytest

from aiobucket import (
    InvalidArgument,
    NotSupported,
    ObjectNotFound,
    PreconditionFailed,
    Preconditions,
    UploadAttrs,
)
from conformance.conftest import get, honours, names, put, refused_before_io

pytestmark = pytest.mark.anyio


async def test_public_url_needs_public_bucket_and_base_url(backend):
    private = backend.bucket()
    with pytest.raises(InvalidArgument, match="public"):
        private.public_url("a b.jpg")
    public = backend.bucket(public=True)
    url = public.public_url("dir/a b.jpg")
    assert url.startswith("https://cdn.example.test/")
    assert url.endswith("dir/a%20b.jpg")


async def test_signed_urls_follow_capability_and_ttl_rules(backend):
    b = backend.bucket()
    await put(b, "k", b"v")
    for ttl in (timedelta(days=8), timedelta(0), -5):
        with pytest.raises(InvalidArgument, match="ttl"):
            await b.signed_download_url("k", ttl=ttl)
    if backend.supports(b).signed_urls:
        url = await b.signed_download_url("k", ttl=timedelta(minutes=5))
        assert url.startswith("http")
        assert await b.signed_upload_url("new") != url
    else:
        with pytest.raises(NotSupported):
            await b.signed_download_url("k")
        with pytest.raises(NotSupported):
            await b.signed_upload_url("k")


async def test_copy_keeps_attrs_by_default(backend):
    b = backend.bucket()
    src = await put(b, "src.txt", b"payload", attrs=UploadAttrs(content_type="text/x", metadata={"a": "1"}))
    copied = await b.copy("src.txt", "dst.txt")
    assert copied.name == "dst.txt"
    assert copied.size == src.size
    got = await b.attrs("dst.txt")
    assert got.content_type == "text/x" and dict(got.metadata) == {"a": "1"}
    assert await get(b, "dst.txt") == b"payload"
    assert await get(b, "src.txt") == b"payload"


async def test_copy_replaces_attrs(backend):
    b = backend.bucket()
    await put(b, "src", b"one", attrs=UploadAttrs(metadata={"a": "1"}))
    await b.copy("src", "dst", attrs=UploadAttrs(content_type="text/plain", metadata={"b": "2"}))
    got = await b.attrs("dst")
    assert got.content_type == "text/plain" and dict(got.metadata) == {"b": "2"}
    with pytest.raises(ObjectNotFound):
        await b.copy("missing", "dst2")
    assert sorted(await names(b)) == ["dst", "src"]


@pytest.mark.quirk("gcs_rewrite_ignores_preconditions")
async def test_copy_if_not_exists(backend):
    b = backend.bucket()
    await put(b, "src", b"one")
    await put(b, "dst", b"existing")
    if not honours(backend.supports(b), copy=True):
        await refused_before_io(
            b, "dst", lambda: b.copy("src", "dst", preconditions=Preconditions(not_exists=True))
        )
        return
    with pytest.raises(PreconditionFailed):
        await b.copy("src", "dst", preconditions=Preconditions(not_exists=True))
    assert await get(b, "dst") == b"existing"
    await b.copy("src", "fresh", preconditions=Preconditions(not_exists=True))
    assert await get(b, "fresh") == b"one"


@pytest.mark.quirk("no_versions")
async def test_copy_a_version(backend):
    b = backend.bucket(versioned=True)
    v1 = await put(b, "src", b"one")
    await put(b, "src", b"two")
    await b.copy("src", "dst", version=v1.version)
    assert await get(b, "dst") == b"one"


async def test_copy_across_buckets_streams(backend):
    src, dst = backend.bucket(), backend.bucket()
    await put(src, "k", b"across", attrs=UploadAttrs(content_type="text/y"))
    await src.copy("k", "k2", dst_bucket=dst)
    assert await get(dst, "k2") == b"across"
    assert (await dst.attrs("k2")).content_type == "text/y"


async def test_copy_through_refs_needs_downloader_and_uploader(backend):
    from typing import Protocol

    from aiobucket import Downloader, PermissionDenied, ReadWriter, Uploader

    class Both(Downloader, Uploader, Protocol): ...

    src, dst = backend.bucket(), backend.bucket()
    await put(src, "k", b"v")
    read_only = src.ref(Downloader)
    with pytest.raises(PermissionDenied, match="upload"):
        await read_only.copy("k", "k2")  # same bucket: needs Uploader on it too
    with pytest.raises(PermissionDenied, match="upload"):
        await read_only.copy("k", "k2", dst_bucket=dst.ref(Downloader))
    with pytest.raises(PermissionDenied, match="copy"):
        await src.ref(Uploader).copy("k", "k2")
    await read_only.copy("k", "k2", dst_bucket=dst.ref(Uploader))
    await src.ref(Both).copy("k", "k3")
    await src.ref(ReadWriter).copy("k", "k4")
    assert await get(dst, "k2") == b"v"
    assert sorted(await names(src)) == ["k", "k3", "k4"]


@pytest.mark.quirk("no_versions")
async def test_copy_across_buckets_of_one_backend_happens_on_the_server(backend, monkeypatch):
    """Two buckets on the same backend and account copy without streaming the bytes."""
    from aiobucket import copying

    async def no_streaming(*args, **kwargs):
        raise AssertionError("copy fell back to streaming")

    monkeypatch.setattr(copying, "_stream_copy", no_streaming)
    src, dst = backend.bucket(versioned=True), backend.bucket(versioned=True)
    v1 = await put(src, "dir/k", b"first", attrs=UploadAttrs(metadata={"m": "1"}))
    await put(src, "dir/k", b"second")
    attrs = await src.copy("dir/k", "copied", dst_bucket=dst, version=v1.version)
    assert attrs.name == "copied" and attrs.size == 5
    assert await get(dst, "copied") == b"first"
    assert dict((await dst.attrs("copied")).metadata) == {"m": "1"}
    assert await names(src) == ["dir/k"]
