"""Content-Encoding round trips: stored as given, read back as stored unless asked to decode."""

from __future__ import annotations

import gzip

import pytest

from aiobucket import IntegrityError, InvalidArgument, NotSupported, UploadAttrs
from conformance.conftest import get, payload, put

pytestmark = pytest.mark.anyio

TEXT = payload(300_000, seed=5) * 2  # compresses well, spans several read chunks
GZ = gzip.compress(TEXT, mtime=0)


async def test_content_encoding_round_trip(backend):
    b = backend.bucket()
    written = await put(
        b, "t.json", GZ, attrs=UploadAttrs(content_type="application/json", content_encoding="gzip")
    )
    head = await b.attrs("t.json")
    for a in (written, head):
        assert a.content_encoding == "gzip"
        assert a.size == len(GZ)  # size and checksums describe the stored bytes
    assert head.etag == written.etag
    # Default: the stored bytes, verified against the stored checksum.
    async with b.download("t.json") as r:
        assert (await r.attrs()).content_encoding == "gzip"
        assert await r.content_encoding() == "gzip"
        assert await r.read() == GZ
    assert await get(b, "t.json", offset=10, length=1000) == GZ[10:1010]  # ranges are of stored bytes
    # Decoded on request, checked on the stored bytes as they stream.
    async with b.download("t.json", decompress=True) as r:
        assert await r.content_encoding() is None
        assert await r.read() == TEXT
    chunks = [c async for c in b.download("t.json", decompress=True)]
    assert b"".join(chunks) == TEXT and max(map(len, chunks)) <= 1024 * 1024


async def test_plain_objects_have_no_encoding_and_decompress_is_a_no_op(backend):
    b = backend.bucket()
    written = await put(b, "plain", b"hello")
    assert written.content_encoding is None
    assert (await b.attrs("plain")).content_encoding is None
    assert await get(b, "plain", decompress=True) == b"hello"


async def test_copy_keeps_the_encoding(backend):
    b = backend.bucket()
    await put(b, "src.gz", GZ, attrs=UploadAttrs(content_encoding="gzip"))
    copied = await b.copy("src.gz", "dst.gz")
    assert copied.content_encoding == "gzip"
    assert (await b.attrs("dst.gz")).content_encoding == "gzip"
    assert await get(b, "dst.gz", decompress=True) == TEXT


async def test_bad_gzip_and_unknown_encodings_are_typed_errors(backend):
    b = backend.bucket()
    await put(b, "bad.gz", b"not gzip at all", attrs=UploadAttrs(content_encoding="gzip"))
    assert await get(b, "bad.gz") == b"not gzip at all"  # stored bytes are still readable
    with pytest.raises(IntegrityError, match="not valid gzip"):
        await get(b, "bad.gz", decompress=True)
    await put(b, "cut.gz", gzip.compress(TEXT, mtime=0)[:-20], attrs=UploadAttrs(content_encoding="gzip"))
    with pytest.raises(IntegrityError, match="ends in the middle"):
        await get(b, "cut.gz", decompress=True)
    await put(b, "x.br", b"\x0b\x02\x80hi\x03", attrs=UploadAttrs(content_encoding="br"))
    assert (await b.attrs("x.br")).content_encoding == "br"
    with pytest.raises(NotSupported, match="'br'"):
        await get(b, "x.br", decompress=True)


async def test_decompress_refuses_ranges_and_bad_values(backend):
    b = backend.bucket()
    with pytest.raises(InvalidArgument, match="whole object"):
        b.download("k", decompress=True, offset=1)
    with pytest.raises(InvalidArgument, match="whole object"):
        b.download("k", decompress=True, concurrency=2)
    with pytest.raises(InvalidArgument, match="True or False"):
        b.download("k", decompress="yes")  # type: ignore[call-overload]
    with pytest.raises(InvalidArgument, match="content_encoding"):
        UploadAttrs(content_encoding="gz\nip")
