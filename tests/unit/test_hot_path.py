"""The per-operation shortcuts give the same answers as the slow paths they skip."""

from __future__ import annotations

import mimetypes

import pytest

from aiobucket.keys import validate_key
from aiobucket.writer import _guess_type

KEYS = [
    "a.txt",
    "dir/photo-17.JPG",
    "dir/archive.tar.gz",
    "x.tgz",
    "a.b.c.json",
    ".bashrc",
    "dir/..hidden.txt",
    "dir/.txt",
    "noext",
    "dir.d/noext",
    "data:text/plain,hello",
    "http://example.com/a.png",
    "a:.txt",
    "weird..html",
    "trailing.",
    "dir/file.svgz",
    "ünï/cödé.pdf",
]


@pytest.mark.parametrize("key", KEYS)
def test_content_type_guess_matches_mimetypes(key: str) -> None:
    expected = mimetypes.guess_type(key)[0] or "application/octet-stream"
    assert _guess_type(key) == expected
    assert _guess_type(key) == expected  # cached answer too


@pytest.mark.parametrize(
    "key", ["a/./b", "./a", "a/..", "..", ".", "a/../b", "a/.b/..", "/a", "a\x7fb", "a\tb", "x" * 1025]
)
def test_ascii_fast_path_still_rejects(key: str) -> None:
    with pytest.raises(Exception, match=r"segment|start with|control|limit"):
        validate_key(key)


@pytest.mark.parametrize("key", ["a/.b", "a/..b/c", ".a", "..a", "a/b.", "x" * 1024, "a b"])
def test_ascii_fast_path_accepts(key: str) -> None:
    assert validate_key(key) == key
