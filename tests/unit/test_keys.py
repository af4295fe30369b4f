"""Key, prefix and version validation: one rule for every backend, checked before any I/O."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiobucket import InvalidArgument
from aiobucket.keys import MAX_KEY_BYTES, validate_key, validate_prefix, validate_version

# -- keys: every bad class, each with the words that tell the caller what to fix ---------------

BAD_KEYS = [
    pytest.param("", "must not be empty", id="empty"),
    pytest.param("a" * 1025, "1025 bytes of UTF-8; the limit is 1024", id="1025-ascii"),
    # 1023 ASCII bytes + a 2-byte character: 1024 characters would fit, 1025 bytes do not.
    pytest.param("a" * 1023 + "é", "1025 bytes of UTF-8; the limit is 1024", id="1025-multibyte-2"),
    pytest.param("a" * 1021 + "😀", "1025 bytes of UTF-8; the limit is 1024", id="1025-multibyte-4"),
    pytest.param("é" * 513, "1026 bytes of UTF-8; the limit is 1024", id="513-two-byte-chars"),
    pytest.param("a\x00b", "contains control character '\\x00' at index 1; remove it", id="nul"),
    pytest.param("a\nb", "contains control character '\\n' at index 1; remove it", id="c0-newline"),
    pytest.param("\tx", "contains control character '\\t' at index 0; remove it", id="c0-tab"),
    pytest.param("x\x1f", "contains control character '\\x1f' at index 1; remove it", id="c0-last"),
    pytest.param("x\x7f", "contains control character '\\x7f' at index 1; remove it", id="del"),
    pytest.param("x\x80", "contains control character '\\x80' at index 1; remove it", id="c1-first"),
    pytest.param("x\x85y", "contains control character '\\x85' at index 1; remove it", id="c1-nel"),
    pytest.param("x\x9f", "contains control character '\\x9f' at index 1; remove it", id="c1-last"),
    pytest.param(".", "has a '.' segment; use a plain name", id="dot"),
    pytest.param("..", "has a '..' segment; use a plain name", id="dotdot"),
    pytest.param("a/./b", "has a '.' segment; use a plain name", id="inner-dot"),
    pytest.param("a/../b", "has a '..' segment; use a plain name", id="inner-dotdot"),
    pytest.param("a/..", "has a '..' segment; use a plain name", id="trailing-dotdot"),
    pytest.param("a/.", "has a '.' segment; use a plain name", id="trailing-dot"),
    pytest.param("./a", "has a '.' segment; use a plain name", id="leading-dot"),
    pytest.param("/a", "must not start with '/'", id="leading-slash"),
    pytest.param("//a", "must not start with '/'", id="leading-double-slash"),
    pytest.param("a\ud800b", "is not valid UTF-8 (lone surrogate)", id="lone-high-surrogate"),
    pytest.param("\udfff", "is not valid UTF-8 (lone surrogate)", id="lone-low-surrogate"),
    # S3 stores these two, but XML 1.0 cannot carry them: no S3 listing could return the key.
    pytest.param("a\ufffeb", "noncharacter U+FFFE at index 1", id="u+fffe"),
    pytest.param("\uffff", "noncharacter U+FFFF at index 0", id="u+ffff"),
]


@pytest.mark.parametrize(("key", "hint"), BAD_KEYS)
def test_bad_key_raises_invalid_argument_saying_what_to_fix(key: str, hint: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        validate_key(key)
    assert hint in info.value.message
    assert info.value.message.startswith("key")
    # InvalidArgument is also a ValueError, so generic handlers catch it.
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("value", "type_name"),
    [(None, "NoneType"), (b"abc", "bytes"), (123, "int"), (["a"], "list"), (bytearray(b"a"), "bytearray")],
)
def test_non_str_key_raises_naming_the_type(value: object, type_name: str) -> None:
    with pytest.raises(InvalidArgument, match=rf"key must be a str, got {type_name}$"):
        validate_key(value)


GOOD_KEYS = [
    "a",
    "photos/2024/cat.jpg",
    "ünïcödé/日本語/ключ",
    "emoji-😀",
    "a//b",
    "dir/",
    "...",
    "a/.../b",
    ".hidden",
    "a/.hidden/..x",
    "..a",
    "a b c",
    "a" * MAX_KEY_BYTES,
    "a" * 1022 + "é",  # exactly 1024 bytes, multibyte at the end
    "a" * 1020 + "😀",  # exactly 1024 bytes, 4-byte character at the end
    "é" * 512,
    "\xa0nbsp-is-not-a-control-char",
]


@pytest.mark.parametrize("key", GOOD_KEYS)
def test_good_key_is_returned_unchanged(key: str) -> None:
    assert validate_key(key) is key


def test_max_key_bytes_is_1024() -> None:
    assert MAX_KEY_BYTES == 1024
    assert len(("a" * 1022 + "é").encode()) == 1024


# -- prefixes -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "hint"),
    [
        pytest.param("/a", "must not start with '/'", id="leading-slash"),
        pytest.param("../", "has a '..' segment", id="dotdot-segment"),
        pytest.param("a/./", "has a '.' segment", id="dot-segment"),
        pytest.param("a\x00", "contains control character", id="nul"),
        pytest.param("a\x9f", "contains control character", id="c1"),
        pytest.param("a" * 1025, "the limit is 1024", id="too-long"),
        pytest.param("\ud800", "lone surrogate", id="surrogate"),
    ],
)
def test_bad_prefix_raises(prefix: str, hint: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        validate_prefix(prefix)
    assert hint in info.value.message
    assert info.value.message.startswith("prefix")


@pytest.mark.parametrize("value", [None, 1, b"a/"])
def test_non_str_prefix_raises(value: object) -> None:
    with pytest.raises(InvalidArgument, match="prefix must be a str"):
        validate_prefix(value)


@pytest.mark.parametrize("prefix", ["", "a", "a/", "photos/20", ".", "..", "a/..", "a/.hid", "..x/", "日本/"])
def test_good_prefix_passes(prefix: str) -> None:
    # The last segment may be cut mid-name, so a trailing "." or ".." is only a partial name.
    assert validate_prefix(prefix) is prefix


# -- versions -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "version",
    ["", "has space", "tab\t", "a" * 1025, "ünïcode", "semi;colon", "new\nline", 'quo"te'],
)
def test_bad_version_raises_with_hint(version: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        validate_version(version)
    assert "is not a version id" in info.value.message
    assert "pass ObjectAttrs.version or ListEntry.version" in info.value.message


@pytest.mark.parametrize("value", [None, 1, b"v1"])
def test_non_str_version_raises(value: object) -> None:
    with pytest.raises(InvalidArgument, match="version must be a str"):
        validate_version(value)


@pytest.mark.parametrize(
    "version",
    ["1", "0000000001a2b3c4d", "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY", "a.b_c-d+e=f/g:h", "1712345678901234"],
)
def test_good_version_passes(version: str) -> None:
    assert validate_version(version) is version


# -- properties -------------------------------------------------------------------------------------

# Every code point, lone surrogates included (hypothesis leaves them out by default).
any_text = st.text(st.characters(exclude_categories=()), max_size=1100)
any_value = st.one_of(
    any_text, st.binary(max_size=20), st.integers(), st.none(), st.floats(), st.lists(any_text)
)


@given(any_value)
def test_validate_key_raises_nothing_but_invalid_argument(value: object) -> None:
    try:
        out = validate_key(value)
    except InvalidArgument as exc:
        assert exc.message  # always says something
    else:
        # Whatever passes satisfies the rule.
        assert out is value
        assert isinstance(out, str)
        assert 1 <= len(out.encode("utf-8")) <= MAX_KEY_BYTES
        assert not out.startswith("/")
        assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in out)
        assert "." not in out.split("/") and ".." not in out.split("/")


@given(any_value)
def test_validate_prefix_and_version_raise_nothing_but_invalid_argument(value: object) -> None:
    for fn in (validate_prefix, validate_version):
        with contextlib.suppress(InvalidArgument):
            assert fn(value) is value


@given(st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=50))
def test_keys_without_control_chars_or_dot_segments_pass(name: str) -> None:
    key = "k/" + name.replace("/", "_")
    if key.split("/")[1] in (".", ".."):
        key += "x"
    assert validate_key(key) == key
