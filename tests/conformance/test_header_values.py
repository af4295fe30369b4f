"""Header-bound attributes: one rule on every backend.

Content type, cache control, content disposition and metadata travel as HTTP
headers on S3 and GCS. Whatever one backend would refuse or alter, every backend
refuses (InvalidArgument, before any I/O); whatever is accepted reads back the
same everywhere.
"""

from __future__ import annotations

import re
import string
from urllib.parse import quote, unquote

import pytest

from aiobucket import InvalidArgument, UploadAttrs
from conformance.conftest import get, names, put

pytestmark = pytest.mark.anyio

BAD_VALUES = {
    "LF": ("line1\nline2", "control character '\\n'"),
    "CR": ("a\rb", "control character '\\r'"),
    "header injection": ("x\r\nx-amz-acl: public-read", "control character '\\r'"),
    "NUL": ("a\x00", "control character '\\x00'"),
    "TAB": ("a\tb", "control character '\\t'"),
    "DEL": ("a\x7f", "control character '\\x7f'"),
    "C1": ("a\x85", "non-ASCII character"),
    "accent": ("café", "non-ASCII character 'é'"),
    "emoji": ("\U0001f600", "non-ASCII character"),
    "leading space": (" a", "starts or ends with a space"),
    "trailing space": ("a ", "starts or ends with a space"),
}
FIELDS = ("metadata", "content_type", "cache_control", "content_disposition")


def _attrs(field: str, value: str) -> UploadAttrs:
    if field == "metadata":
        return UploadAttrs(metadata={"note": value})
    return UploadAttrs(**{field: value})


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
async def test_bad_header_values_are_refused_before_any_io(backend, case):
    b = backend.bucket()
    await put(b, "keep", b"precious")
    value, message = BAD_VALUES[case]
    for field in FIELDS:
        with pytest.raises(InvalidArgument, match=re.escape(message)) as info:
            _attrs(field, value)
        assert ("note" if field == "metadata" else field) in str(info.value)
    # Nothing reached the backend: the attributes cannot even be built.
    assert await names(b) == ["keep"]
    assert await get(b, "keep") == b"precious"


async def test_bad_metadata_keys_and_empty_values_are_refused(backend):
    b = backend.bucket()
    for bad in ({"": "v"}, {"a b": "v"}, {"a:b": "v"}, {"a(b)": "v"}, {"é": "v"}, {"a\n": "v"}):
        with pytest.raises(InvalidArgument, match="metadata key"):
            UploadAttrs(metadata=bad)
    with pytest.raises(InvalidArgument, match="differ only in case"):
        UploadAttrs(metadata={"Owner": "a", "owner": "b"})
    with pytest.raises(InvalidArgument, match="empty"):
        UploadAttrs(metadata={"m": ""})
    assert await names(b) == []


PRINTABLE = string.printable[:95].strip() + " inside"  # every printable ASCII character, '!' .. '~'


@pytest.mark.quirk("azure_metadata_identifiers")
async def test_accepted_values_read_back_the_same_everywhere(backend):
    b = backend.bucket()
    text = "Grüße, 東京 & café"
    attrs = UploadAttrs(
        content_type='text/plain; charset="utf-8"',
        cache_control="public,  max-age=60",  # inner spaces are kept
        content_disposition=f"attachment; filename*=UTF-8''{quote('résumé.pdf')}",
        metadata={
            "printable": PRINTABLE,
            "encoded": quote(text),  # the documented way to carry non-ASCII text
            "looks-encoded": "=?UTF-8?B?w6k=?=",  # stored as given, never decoded
            "Mixed-Case": "v",
        },
    )
    written = await put(b, "k", b"data", attrs=attrs)
    for got in (written, await b.attrs("k"), await b.download("k").attrs()):
        assert got.content_type == 'text/plain; charset="utf-8"'
        assert got.cache_control == "public,  max-age=60"
        assert got.content_disposition == "attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf"
        assert dict(got.metadata) == {
            "printable": PRINTABLE,
            "encoded": quote(text),
            "looks-encoded": "=?UTF-8?B?w6k=?=",
            "mixed-case": "v",  # keys are lower-cased everywhere, as S3 does
        }
        assert unquote(got.metadata["encoded"]) == text


async def test_empty_strings_mean_not_set(backend):
    b = backend.bucket()
    written = await put(
        b, "k.txt", b"x", attrs=UploadAttrs(content_type="", cache_control="", content_disposition="")
    )
    for got in (written, await b.attrs("k.txt")):
        assert (got.content_type, got.cache_control, got.content_disposition) == ("text/plain", None, None)
