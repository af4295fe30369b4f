"""Multipart copies are cut into parts that S3 accepts, up to its 5 TiB object limit (issue 18, item 8)."""

from __future__ import annotations

import pytest

from aiobucket.providers.base import GiB, MiB
from aiobucket.providers.s3._multipart import MAX_PARTS, copy_part_size

TiB = 1024 * GiB
PREFERRED = 512 * MiB


@pytest.mark.parametrize(
    "size", [5 * GiB + 1, 4 * TiB, 10_000 * PREFERRED, 10_000 * PREFERRED + 1, int(4.9 * TiB), 5 * TiB]
)
def test_parts_stay_within_s3_limits(size: int) -> None:
    step = copy_part_size(size, PREFERRED)
    parts = -(-size // step)
    assert parts <= MAX_PARTS
    assert 5 * MiB <= step <= 5 * GiB  # S3's part size limits (the last part may be smaller)
    assert step % MiB == 0
    assert step == PREFERRED or -(-size // (step - MiB)) > MAX_PARTS  # the smallest whole MiB that fits


def test_the_preferred_size_is_kept_while_it_fits() -> None:
    assert copy_part_size(4 * TiB, PREFERRED) == PREFERRED
    assert copy_part_size(5 * TiB, PREFERRED) == 525 * MiB  # 5 TiB / 10,000 = 524.3 MiB
