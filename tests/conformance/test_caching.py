"""HTTP caching: conditional downloads (if_none_match, if_modified_since) on every backend.

A matching condition raises NotModified with the object's attrs, and no byte of the
body reaches the caller (the trace span of the download records none). A condition
that does not match is an ordinary download. RFC 9110 rules: if_modified_since is
ignored when if_none_match is given; ``*`` matches any existing object; an etag
matches with or without quotes and as a weak ``W/"..."`` validator.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import aiobucket
from aiobucket import tracing
from aiobucket.http import serve
from aiobucket.tracing import TraceEvent
from conformance.conftest import get, put

pytestmark = pytest.mark.anyio

DATA = b"cacheable bytes " * 1000


@pytest.fixture
def downloads() -> Iterator[list[TraceEvent]]:
    """The end events of every download span."""
    seen: list[TraceEvent] = []
    remove = tracing.add_listener(
        lambda e: seen.append(e) if e.phase == "end" and e.operation.startswith("download") else None
    )
    yield seen
    remove()


async def _not_modified(bucket: aiobucket.Bucket, key: str, **kw: object) -> aiobucket.NotModified:
    with pytest.raises(aiobucket.NotModified) as info:
        await get(bucket, key, **kw)
    return info.value


@pytest.mark.parametrize("form", ["bare", "quoted", "weak"])
async def test_if_none_match_current_etag_is_not_modified(backend, downloads, form):
    b = backend.bucket()
    stored = await put(b, "page.html", DATA, attrs=aiobucket.UploadAttrs(cache_control="max-age=60"))
    etag = {"bare": stored.etag, "quoted": f'"{stored.etag}"', "weak": f'W/"{stored.etag}"'}[form]
    err = await _not_modified(b, "page.html", if_none_match=etag)
    assert isinstance(err.attrs, aiobucket.ObjectAttrs)
    assert err.attrs.name == "page.html"
    assert err.attrs.etag == stored.etag
    assert err.attrs.last_modified is not None
    assert err.key == "page.html" and err.bucket == b.name
    [end] = downloads
    assert isinstance(end.error, aiobucket.NotModified)
    assert end.attributes.get("bytes", 0) == 0  # no byte of the body was handed out


async def test_not_modified_attrs_carry_what_a_304_needs(backend):
    b = backend.bucket()
    attrs = aiobucket.UploadAttrs(content_type="text/css", cache_control="public, max-age=600")
    stored = await put(b, "site.css", DATA, attrs=attrs)
    err = await _not_modified(b, "site.css", if_none_match=stored.etag)
    assert isinstance(err.attrs, aiobucket.ObjectAttrs)
    assert err.attrs.cache_control == "public, max-age=600"
    assert err.attrs.size == len(DATA)


async def test_if_none_match_other_etag_downloads(backend):
    b = backend.bucket()
    await put(b, "k", DATA)
    assert await get(b, "k", if_none_match="0123456789abcdef0123456789abcdef") == DATA
    async with b.download("k", if_none_match='"not-the-etag"') as r:
        assert (await r.attrs()).size == len(DATA)
        assert await r.read() == DATA


async def test_if_none_match_star_matches_any_object(backend):
    b = backend.bucket()
    await put(b, "k", DATA)
    await _not_modified(b, "k", if_none_match="*")


async def test_missing_object_is_not_found_not_not_modified(backend):
    b = backend.bucket()
    with pytest.raises(aiobucket.ObjectNotFound):
        await get(b, "absent", if_none_match="*")
    with pytest.raises(aiobucket.ObjectNotFound):
        await get(b, "absent", if_modified_since=datetime.now(UTC))


async def test_if_modified_since(backend):
    b = backend.bucket()
    stored = await put(b, "k", DATA)
    assert stored.last_modified is not None or (await b.attrs("k")).last_modified is not None
    modified = (await b.attrs("k")).last_modified
    assert modified is not None
    # Unchanged since a time at or after its last modification: not modified.
    await _not_modified(b, "k", if_modified_since=modified)
    await _not_modified(b, "k", if_modified_since=modified + timedelta(hours=1))
    # Changed since a time before it: the body.
    assert await get(b, "k", if_modified_since=modified - timedelta(hours=1)) == DATA


async def test_if_none_match_overrides_if_modified_since(backend):
    b = backend.bucket()
    stored = await put(b, "k", DATA)
    future = datetime.now(UTC) + timedelta(days=1)
    # The etag differs, so the object is sent although it is older than the date.
    assert await get(b, "k", if_none_match="other", if_modified_since=future) == DATA
    # The etag matches, so it is not modified although the date alone says it changed.
    past = datetime(2000, 1, 1, tzinfo=UTC)
    await _not_modified(b, "k", if_none_match=stored.etag, if_modified_since=past)


async def test_conditions_apply_to_ranged_and_empty_reads(backend):
    b = backend.bucket()
    stored = await put(b, "k", DATA)
    await _not_modified(b, "k", if_none_match=stored.etag, offset=10, length=5)
    await _not_modified(b, "k", if_none_match=stored.etag, length=0)
    assert await get(b, "k", if_none_match="other", offset=10, length=5) == DATA[10:15]


async def test_after_an_overwrite_the_old_etag_downloads_the_new_object(backend):
    b = backend.bucket()
    old = await put(b, "k", DATA)
    await put(b, "k", b"new bytes")
    assert await get(b, "k", if_none_match=old.etag) == b"new bytes"


async def test_parallel_download_and_download_to_honour_the_conditions(backend, tmp_path: Path):
    b = backend.bucket()
    stored = await put(b, "k", DATA)
    with pytest.raises(aiobucket.NotModified) as info:
        await b.download("k", concurrency=3, part_size=4096, if_none_match=stored.etag).read()
    assert isinstance(info.value.attrs, aiobucket.ObjectAttrs) and info.value.attrs.etag == stored.etag
    out = tmp_path / "out"
    out.mkdir()
    target = out / "copy"
    with pytest.raises(aiobucket.NotModified):
        await b.download_to("k", target, concurrency=3, part_size=4096, if_none_match=stored.etag)
    assert list(out.iterdir()) == []  # nothing written, not even a temporary file
    await b.download_to("k", target, concurrency=3, part_size=4096, if_none_match="other")
    assert target.read_bytes() == DATA


@pytest.mark.quirk("no_versions")
async def test_versioned_read_of_an_old_version_is_conditional_too(backend):
    b = backend.bucket(versioned=True)
    first = await put(b, "k", b"first")
    await put(b, "k", b"second")
    assert first.version is not None
    await _not_modified(b, "k", version=first.version, if_none_match=first.etag)
    assert await get(b, "k", version=first.version, if_none_match="other") == b"first"


async def test_bad_conditions_are_invalid_arguments(backend):
    b = backend.bucket()
    with pytest.raises(aiobucket.InvalidArgument, match="timezone-aware"):
        b.download("k", if_modified_since=datetime(2020, 1, 1))  # naive: which zone?
    with pytest.raises(aiobucket.InvalidArgument, match="if_none_match"):
        b.download("k", if_none_match="")
    with pytest.raises(aiobucket.InvalidArgument, match="if_none_match"):
        b.download("k", if_none_match=b"etag")  # type: ignore[arg-type]


# -- aiobucket.http.serve: a GET answered in one call, on every backend ---------------------


async def test_serve_answers_200_304_206_and_416(backend):
    b = backend.bucket()
    stored = await put(b, "a.css", DATA, attrs=aiobucket.UploadAttrs(content_type="text/css"))
    resp = await serve(b, "a.css", {}, cache_control="no-cache")
    assert resp.status == 200 and resp.reader is not None
    assert b"".join([c async for c in resp.body()]) == DATA
    assert resp.headers["ETag"] == f'"{stored.etag}"'
    assert resp.headers["Cache-Control"] == "no-cache"
    assert resp.headers["Content-Type"] == "text/css"
    assert resp.headers["Content-Length"] == str(len(DATA))
    last_modified = resp.headers["Last-Modified"]

    # Header names in any case, from any mapping; a list of etags; a weak one.
    for headers in (
        {"if-none-match": f'"{stored.etag}"'},
        {"If-None-Match": f'"x", W/"{stored.etag}"'},
        {"IF-MODIFIED-SINCE": last_modified},
    ):
        nm = await serve(b, "a.css", headers, cache_control="no-cache")
        assert nm.status == 304 and nm.reader is None, headers
        assert nm.headers == {
            "ETag": f'"{stored.etag}"',
            "Last-Modified": last_modified,
            "Cache-Control": "no-cache",
        }

    part = await serve(b, "a.css", {"Range": "bytes=-5", "If-None-Match": '"x"'})
    assert (
        part.status == 206
        and part.headers["Content-Range"] == f"bytes {len(DATA) - 5}-{len(DATA) - 1}/{len(DATA)}"
    )
    assert b"".join([c async for c in part.body()]) == DATA[-5:]
    beyond = await serve(b, "a.css", {"Range": f"bytes={len(DATA)}-"})
    assert beyond.status == 416 and beyond.headers == {"Content-Range": f"bytes */{len(DATA)}"}


async def test_serve_prefers_the_objects_own_cache_control(backend):
    b = backend.bucket()
    await put(b, "logo.png", DATA, attrs=aiobucket.UploadAttrs(cache_control="public, max-age=86400"))
    resp = await serve(b, "logo.png", {}, cache_control="no-cache")
    await resp.aclose()
    assert resp.headers["Cache-Control"] == "public, max-age=86400"
    with pytest.raises(aiobucket.ObjectNotFound):
        await serve(b, "nothing.png", {"If-None-Match": '"x"'})
