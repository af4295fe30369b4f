"""Versioned buckets: every write keeps a version, on every backend."""

from __future__ import annotations

import pytest

from aiobucket import InvalidArgument, ObjectNotFound, Query
from conformance.conftest import get, put

pytestmark = pytest.mark.anyio


async def _versions(b, prefix=""):
    out = []
    async for err, e in b.list_versions(Query(prefix=prefix)):
        assert err is None, err
        out.append(e)
    return out


async def test_unversioned_bucket_has_no_versions(backend):
    b = backend.bucket()
    attrs = await put(b, "k", b"v")
    assert attrs.version is None
    with pytest.raises(InvalidArgument, match="versioned"):
        await b.attrs("k", version="123")


@pytest.mark.quirk("no_versions")
async def test_every_write_keeps_a_version(backend):
    b = backend.bucket(versioned=True)
    v1 = await put(b, "k", b"one")
    v2 = await put(b, "k", b"two")
    assert v1.version and v2.version and v1.version != v2.version
    assert await get(b, "k") == b"two"
    assert await get(b, "k", version=v1.version) == b"one"
    assert (await b.attrs("k", version=v1.version)).size == 3
    assert (await b.attrs("k")).version == v2.version
    assert await b.exists("k", version=v1.version)
    listed = await _versions(b)
    assert [(e.name, e.version, e.is_latest) for e in listed] == [
        ("k", v2.version, True),
        ("k", v1.version, False),
    ]
    # Plain listing shows only the current object, without version ids.
    async for err, e in b.list():
        assert err is None and (e.name, e.size, e.version) == ("k", 3, None)


@pytest.mark.quirk("no_versions")
async def test_remove_without_version_keeps_history(backend):
    b = backend.bucket(versioned=True)
    v1 = await put(b, "k", b"one")
    await b.remove("k")
    assert not await b.exists("k")
    with pytest.raises(ObjectNotFound):
        await get(b, "k")
    assert await get(b, "k", version=v1.version) == b"one"
    assert [e.is_latest for e in await _versions(b)] == [False]
    with pytest.raises(ObjectNotFound):
        await b.remove("k")  # nothing current to remove


@pytest.mark.quirk("no_versions")
@pytest.mark.quirk("gcs_delete_ignores_generation")
async def test_remove_one_version(backend):
    b = backend.bucket(versioned=True)
    v1 = await put(b, "k", b"one")
    v2 = await put(b, "k", b"two")
    await b.remove("k", version=v1.version)
    assert not await b.exists("k", version=v1.version)
    assert await get(b, "k") == b"two"
    assert [e.version for e in await _versions(b)] == [v2.version]


@pytest.mark.quirk("no_versions")
async def test_unknown_and_malformed_versions(backend):
    b = backend.bucket(versioned=True)
    v1 = await put(b, "k", b"one")
    other = await put(b, "other", b"x")
    unknown = other.version  # a real id, but of another object
    assert unknown and unknown != v1.version
    with pytest.raises(ObjectNotFound):
        await b.attrs("k", version=unknown)
    with pytest.raises(ObjectNotFound):
        await get(b, "k", version=unknown)
    assert not await b.exists("k", version=unknown)
    for bad in ["", "has space", "a\x00b", 12]:
        with pytest.raises(InvalidArgument):
            await b.attrs("k", version=bad)
    assert await get(b, "k") == b"one"
