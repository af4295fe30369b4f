"""The whole-object checksums a download is verified against: CRC32C, CRC64NVME, CRC32, MD5.

CRC64NVME comes from awscrt (AWS's C runtime, which botocore's CRT extra uses), CRC32 from
zlib; both are checked here against the published check values of the CRC catalogue
(https://reveng.sourceforge.io/crc-catalogue/17plus.htm: CRC-64/NVME check=0xae8b14860a799888,
CRC-32/ISO-HDLC check=0xcbf43926, CRC-32/ISCSI check=0xe3069283 for b"123456789").
"""

from __future__ import annotations

import base64
import hashlib
import random

import pytest

from aiobucket import IntegrityError, ObjectAttrs
from aiobucket._checksum import Crc32, Crc32c, Crc64Nvme, WholeObjectCheck

CHECK = b"123456789"


@pytest.mark.parametrize(
    ("kind", "value"), [(Crc64Nvme, 0xAE8B14860A799888), (Crc32, 0xCBF43926), (Crc32c, 0xE3069283)]
)
def test_catalogue_check_values_in_any_pieces(kind: type, value: int) -> None:
    whole = kind()
    whole.update(CHECK)
    assert whole.value == value
    pieces = kind()
    for i in range(0, len(CHECK), 2):
        pieces.update(memoryview(CHECK)[i : i + 2])
    assert pieces.value == value
    width = 8 if kind is Crc64Nvme else 4
    assert base64.b64decode(whole.b64()) == value.to_bytes(width, "big")


def attrs_for(data: bytes, **sums: str | None) -> ObjectAttrs:
    return ObjectAttrs(name="k", size=len(data), etag="e", **sums)  # type: ignore[arg-type]


def b64(kind: type, data: bytes) -> str:
    crc = kind()
    crc.update(data)
    return str(crc.b64())


def test_verified_by_prefers_crc32c_then_crc64nvme_then_crc32_then_md5() -> None:
    data = random.Random(1).randbytes(3000)
    md5 = hashlib.md5(data).hexdigest()
    every = attrs_for(
        data, crc32c=b64(Crc32c, data), crc64nvme=b64(Crc64Nvme, data), crc32=b64(Crc32, data), md5=md5
    )
    assert every.verified_by == "crc32c"
    assert (
        attrs_for(data, crc64nvme=b64(Crc64Nvme, data), crc32=b64(Crc32, data), md5=md5).verified_by
        == "crc64nvme"
    )
    assert attrs_for(data, crc32=b64(Crc32, data), md5=md5).verified_by == "crc32"
    assert attrs_for(data, md5=md5).verified_by == "md5"
    assert attrs_for(data).verified_by is None
    assert WholeObjectCheck.for_read(attrs_for(data), 0, None) is None


@pytest.mark.parametrize(("field", "kind"), [("crc64nvme", Crc64Nvme), ("crc32", Crc32)])
def test_a_flipped_byte_fails_the_check(field: str, kind: type) -> None:
    data = random.Random(2).randbytes(5000)
    attrs = attrs_for(data, **{field: b64(kind, data)})
    good = WholeObjectCheck(attrs)
    good.update(data[:1234])
    good.update(data[1234:])
    good.end()
    bad = WholeObjectCheck(attrs)
    bad.update(data[:100])
    with pytest.raises(IntegrityError, match=field):
        bad.update(bytes([data[100] ^ 1]) + data[101:])
