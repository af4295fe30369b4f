"""Preconditions: not_exists and if_match, on single puts and multipart uploads."""

from __future__ import annotations

import asyncio

import pytest

from aiobucket import InvalidArgument, PreconditionFailed, Preconditions
from conformance.conftest import get, honours, part_size_for, payload, put, refused_before_io

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("multipart", [False, True])
async def test_not_exists(backend, multipart):
    b = backend.bucket()
    ps = part_size_for(backend.supports(b))
    data = payload(ps * 2 + 1 if multipart else 10)
    if not honours(backend.supports(b), multipart=multipart):

        def write():
            return put(b, "k", data, preconditions=Preconditions(not_exists=True), part_size=ps)

        await refused_before_io(b, "k", write)
        return
    await put(b, "k", data, preconditions=Preconditions(not_exists=True), part_size=ps)
    with pytest.raises(PreconditionFailed) as info:
        await put(b, "k", b"other", preconditions=Preconditions(not_exists=True), part_size=ps)
    assert "k" in str(info.value)
    assert await get(b, "k") == data


@pytest.mark.quirk("if_match")
@pytest.mark.parametrize("multipart", [False, True])
async def test_if_match(backend, multipart):
    b = backend.bucket()
    ps = part_size_for(backend.supports(b))
    first = await put(b, "k", b"v1")
    data = payload(ps * 2 + 1 if multipart else 10)
    if not honours(backend.supports(b), multipart=multipart):

        def write():
            return put(b, "k", data, preconditions=Preconditions(if_match=first.etag), part_size=ps)

        await refused_before_io(b, "k", write)
        return
    second = await put(b, "k", data, preconditions=Preconditions(if_match=first.etag), part_size=ps)
    with pytest.raises(PreconditionFailed):
        await put(b, "k", b"v3", preconditions=Preconditions(if_match=first.etag), part_size=ps)
    assert await get(b, "k") == data
    # Quoted etags are accepted too.
    await put(b, "k", b"v4", preconditions=Preconditions(if_match=f'"{second.etag}"'))
    assert await get(b, "k") == b"v4"


async def test_if_match_on_missing_object_fails(backend):
    b = backend.bucket()
    if not honours(backend.supports(b)):

        def write():
            return put(b, "missing", b"x", preconditions=Preconditions(if_match="0123456789abcdef"))

        await refused_before_io(b, "missing", write)
        return
    with pytest.raises(PreconditionFailed):
        await put(b, "missing", b"x", preconditions=Preconditions(if_match="0123456789abcdef"))
    assert not await b.exists("missing")


@pytest.mark.parametrize(
    "multipart",
    [
        False,
        pytest.param(
            True,
            marks=[
                pytest.mark.quirk("gcs_resumable_upload_ignores_preconditions"),
                pytest.mark.quirk("not_exists_race"),
                pytest.mark.quirk("multipart_not_exists"),
            ],
        ),
    ],
)
async def test_not_exists_race_has_exactly_one_winner(backend, multipart):
    b = backend.bucket()
    ps = part_size_for(backend.supports(b))
    size = ps + 100 if multipart else 100
    if not honours(backend.supports(b), multipart=multipart):

        def write():
            return put(b, "race", payload(size), preconditions=Preconditions(not_exists=True), part_size=ps)

        await refused_before_io(b, "race", write)
        return

    async def attempt(key: str, i: int) -> bool:
        try:
            await put(
                b, key, payload(size, seed=i), preconditions=Preconditions(not_exists=True), part_size=ps
            )
        except PreconditionFailed:
            return False
        return True

    # Several rounds: a server that checks non-atomically shows it in at least one.
    for round_ in range(12):
        key = f"race/{round_}"
        results = await asyncio.gather(*(attempt(key, i) for i in range(8)))
        assert sum(results) == 1, f"round {round_}: {sum(results)} writers won"
        assert await get(b, key) == payload(size, seed=results.index(True))


def test_invalid_preconditions():
    with pytest.raises(InvalidArgument):
        Preconditions(not_exists=True, if_match="abc")
    with pytest.raises(InvalidArgument):
        Preconditions(if_match="")
