"""A forgotten ``await w.write(...)`` never stores a short object, on any backend.

The writer is shared, but what it hands the backend is not: a single PUT on one
side, a multipart upload (or a resumable session) with parts in flight on the
other. Either way the commit is refused with InvalidArgument, the upload is
aborted, and the object that was there before is untouched.
"""

from __future__ import annotations

import gc
import warnings

import pytest

from aiobucket import InvalidArgument, ObjectNotFound
from conformance.conftest import get, leaked_tasks, part_size_for, payload, put

pytestmark = pytest.mark.anyio


async def test_a_forgotten_await_on_a_single_put_stores_nothing(backend):
    b = backend.bucket()
    await put(b, "k", b"old")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(InvalidArgument, match=r"^1 write\(\) call was never awaited") as info:
            async with b.upload("k") as w:
                w.write(b"new bytes")  # the mistake
        gc.collect()
    assert f"(bucket '{b.name}', key 'k')" in str(info.value)
    assert [str(w.message) for w in caught if "never awaited" in str(w.message)] == []
    assert await get(b, "k") == b"old"
    assert leaked_tasks() == []


async def test_a_forgotten_await_mid_multipart_aborts_it(backend):
    b = backend.bucket()
    part = part_size_for(backend.supports(b))
    w = b.upload("k", part_size=part)
    await w.write(payload(part + 10))  # one part is on its way
    w.write(b"lost")
    with pytest.raises(InvalidArgument, match=r"^1 write\(\) call was never awaited"):
        await w.close()
    assert w.closed
    with pytest.raises(ObjectNotFound):
        await get(b, "k")
    assert leaked_tasks() == []
