"""crc32c_combine against google-crc32c: the CRC32C of a split stream, combined from
its pieces' CRCs, is the CRC32C of the whole, for any split and any order of hashing."""

from __future__ import annotations

import base64
import functools
import itertools

import google_crc32c
from hypothesis import given, settings
from hypothesis import strategies as st

from aiobucket._checksum import crc32c_b64, crc32c_combine


@given(a=st.binary(max_size=3000), b=st.binary(max_size=3000))
def test_two_pieces(a: bytes, b: bytes) -> None:
    combined = crc32c_combine(google_crc32c.value(a), google_crc32c.value(b), len(b))
    assert combined == google_crc32c.value(a + b)


@settings(max_examples=200)
@given(data=st.binary(min_size=0, max_size=20_000), cuts=st.lists(st.integers(0, 20_000), max_size=12))
def test_random_splits_folded_in_order(data: bytes, cuts: list[int]) -> None:
    bounds = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    pieces = [data[i:j] for i, j in itertools.pairwise(bounds)]
    # Hash the pieces in reverse (as parts finishing out of order would), fold them in order.
    crcs = {i: google_crc32c.value(p) for i, p in reversed(list(enumerate(pieces)))}
    whole = functools.reduce(
        lambda crc, i: crc32c_combine(crc, crcs[i], len(pieces[i])), range(len(pieces)), 0
    )
    assert base64.b64encode(whole.to_bytes(4, "big")).decode() == crc32c_b64(data)


@given(a=st.binary(max_size=64), zeros=st.integers(0, 40_000), tail=st.binary(max_size=64))
def test_long_runs_and_empty_pieces(a: bytes, zeros: int, tail: bytes) -> None:
    """Lengths far above the test bytes' (through a zero run) and empty pieces on either side."""
    b = bytes(zeros) + tail
    crc_a, crc_b = google_crc32c.value(a), google_crc32c.value(b)
    assert crc32c_combine(crc_a, crc_b, len(b)) == google_crc32c.value(a + b)
    assert crc32c_combine(google_crc32c.value(a), 0, 0) == google_crc32c.value(a)
    assert crc32c_combine(0, google_crc32c.value(b), len(b)) == google_crc32c.value(b)


def test_a_part_sized_split() -> None:
    """8 MiB parts: the length term uses the high powers of x that small tests never reach."""
    part = bytes(range(256)) * (32 * 1024)  # 8 MiB
    last = b"tail"
    crc = crc32c_combine(google_crc32c.value(part), google_crc32c.value(part), len(part))
    crc = crc32c_combine(crc, google_crc32c.value(last), len(last))
    assert crc == google_crc32c.value(part + part + last)
