"""Hand-written pieces of the read path, proved equal to the maintained library they stand for.

* ``_decode.Gunzip`` (bounded, chunk-fed) against ``gzip.decompress``;
* the GCS media answer's Last-Modified fast path against ``email.utils.parsedate_to_datetime``.
"""

from __future__ import annotations

import gzip
import random
import zlib
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime

import pytest

from aiobucket import IntegrityError, NotSupported
from aiobucket._decode import OUT_LIMIT, Gunzip, decoder_for
from aiobucket.providers.gcs._download import _http_date


def _decode_in_pieces(blob: bytes, rng: random.Random) -> bytes:
    g = Gunzip()
    out, i = [], 0
    while i < len(blob):
        step = rng.choice((1, 7, 4096, 65536, 300_000))
        g.feed(blob[i : i + step])
        i += step
        while piece := g.take():
            assert len(piece) <= OUT_LIMIT
            out.append(piece)
    g.end()
    return b"".join(out)


@pytest.mark.parametrize("seed", range(6))
def test_gunzip_matches_gzip_decompress(seed: int) -> None:
    rng = random.Random(seed)
    members = [
        rng.randbytes(rng.randrange(0, 200_000)) * rng.randrange(1, 4) for _ in range(rng.randrange(1, 4))
    ]
    blob = b"".join(gzip.compress(m, compresslevel=rng.randrange(1, 10)) for m in members)
    assert _decode_in_pieces(blob, rng) == gzip.decompress(blob)


def test_gunzip_bounds_what_one_chunk_inflates_to() -> None:
    blob = gzip.compress(bytes(20 * OUT_LIMIT))  # 20 MiB of zeros in about 20 KB
    g = Gunzip()
    g.feed(blob)
    sizes = []
    while piece := g.take():
        sizes.append(len(piece))
    g.end()
    assert sum(sizes) == 20 * OUT_LIMIT and max(sizes) <= OUT_LIMIT


def test_gunzip_refuses_what_gzip_refuses() -> None:
    blob = gzip.compress(b"hello world" * 1000)
    for bad in (blob[:-5], b"\x1f\x8b\x08\x00garbage"):
        with pytest.raises((EOFError, OSError, zlib.error)):  # gzip's own errors
            gzip.decompress(bad)
        g = Gunzip()
        with pytest.raises(IntegrityError):
            g.feed(bad)
            while g.take():
                pass
            g.end()


def test_decoder_for_encodings() -> None:
    assert decoder_for(None) is None and decoder_for("identity") is None
    assert isinstance(decoder_for("GZIP"), Gunzip)
    with pytest.raises(NotSupported, match="'br'"):
        decoder_for("br")


def test_last_modified_fast_path_matches_email_utils() -> None:
    rng = random.Random(7)
    start = datetime(1990, 1, 1, tzinfo=UTC)
    for _ in range(2000):
        when = start + timedelta(seconds=rng.randrange(0, 60 * 365 * 24 * 3600))
        text = format_datetime(when, usegmt=True)
        assert _http_date(text) == parsedate_to_datetime(text) == when
    # Other forms take the library's path; nonsense is None.
    assert _http_date("Sunday, 06-Dec-26 03:58:36 GMT") == parsedate_to_datetime(
        "Sunday, 06-Dec-26 03:58:36 GMT"
    )
    assert _http_date("not a date") is None and _http_date(None) is None
