"""Azure's size limits: 4000 MiB blocks, 50,000 of them, 5000 MiB for one Put Blob.

https://learn.microsoft.com/azure/storage/blobs/scalability-targets and
https://learn.microsoft.com/rest/api/storageservices/put-blob. Every refusal here comes
before any request (the endpoint, 127.0.0.1:1, has nothing listening). Bodies above the
limits are sparse anonymous mappings: their size is real, their pages are never touched.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator

import pytest

from aiobucket import Bucket, InvalidArgument, config
from aiobucket.providers.azure._provider import CAPABILITIES, MAX_BLOCK, MAX_PUT_BLOB, AzureProvider
from aiobucket.providers.azure._settings import parse_settings
from aiobucket.providers.base import MiB, PutOptions
from aiobucket.writer import fit_parts

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("clean_config")]

URL = "az://photos?account=acme&endpoint=http://127.0.0.1:1"
KEY = "a2V5"
LARGEST_BLOB = 50_000 * MAX_BLOCK  # about 190.7 TiB


@pytest.fixture
def azure_bucket() -> Iterator[Bucket]:
    with config.override({"az": {"url": URL, "account_key": KEY}}):
        yield Bucket("az")


def _provider() -> AzureProvider:
    return AzureProvider(parse_settings(config.settings_from("b", {"url": URL, "account_key": KEY}), "b"))


@pytest.fixture
def sparse() -> Iterator[mmap.mmap]:
    buf = mmap.mmap(-1, MAX_PUT_BLOB + 1)
    try:
        yield buf
    finally:
        buf.close()


def test_the_capabilities_state_azures_limits() -> None:
    assert (CAPABILITIES.max_parts, CAPABILITIES.max_part_size) == (50_000, 4000 * MiB)
    assert 5000 * MiB == MAX_PUT_BLOB


@pytest.mark.parametrize(
    ("size", "part_size"),
    [
        (0, 8 * MiB),
        (50_000 * 8 * MiB, 8 * MiB),  # the default part size covers 390 GiB
        (50_000 * 8 * MiB + 1, 8 * MiB + 1),
        (1 << 40, -(-(1 << 40) // 50_000)),  # 1 TiB: parts of about 21 MiB
        (LARGEST_BLOB, MAX_BLOCK),
    ],
)
def test_a_known_size_fits_in_50000_blocks(size: int, part_size: int) -> None:
    fitted = fit_parts(8 * MiB, size, CAPABILITIES)
    assert fitted == part_size
    assert fitted <= MAX_BLOCK and -(-size // fitted) <= 50_000


async def test_a_part_size_above_4000_mib_is_refused(azure_bucket: Bucket) -> None:
    w = azure_bucket.upload("k", part_size=MAX_BLOCK + 1)
    with pytest.raises(InvalidArgument, match=f"above this backend's largest part \\({MAX_BLOCK} bytes\\)"):
        await w.write(b"x")


async def test_a_part_size_of_4000_mib_is_taken(azure_bucket: Bucket) -> None:
    w = azure_bucket.upload("k", part_size=MAX_BLOCK)
    await w.write(b"x")  # buffered: no request yet
    await w.abort()


async def test_an_upload_larger_than_the_largest_blob_is_refused(azure_bucket: Bucket) -> None:
    w = azure_bucket.upload("k", size=LARGEST_BLOB + 1)
    with pytest.raises(InvalidArgument, match="above this backend's largest object"):
        await w.write(b"x")


async def test_put_blob_above_5000_mib_is_refused(sparse: mmap.mmap) -> None:
    provider = _provider()
    try:
        with pytest.raises(InvalidArgument, match=f"at most {MAX_PUT_BLOB} bytes"):
            await provider.put("k", sparse, PutOptions(content_type="application/octet-stream"))  # type: ignore[arg-type]
    finally:
        await provider.aclose()


async def test_a_block_above_4000_mib_is_refused(sparse: mmap.mmap) -> None:
    provider = _provider()
    try:
        upload = await provider.start_multipart("k", PutOptions(content_type="application/octet-stream"))
        with pytest.raises(InvalidArgument, match=f"a block takes at most {MAX_BLOCK} bytes"):
            await upload.put_part(1, memoryview(sparse)[: MAX_BLOCK + 1])
    finally:
        await provider.aclose()
