"""Key and version validation: one rule for every backend, checked before any I/O.

A key that works locally must work in the cloud, so the rule is the strictest
common one: 1..1024 bytes of UTF-8, no control characters, no U+FFFE or U+FFFF
(S3 stores them, but no XML document, so no S3 listing, can carry them), no "." or
".." segment, no leading "/".
"""

from __future__ import annotations

import re

from .errors import InvalidArgument

__all__ = ["MAX_KEY_BYTES", "validate_key", "validate_prefix", "validate_version"]

MAX_KEY_BYTES = 1024

# C0, DEL and C1 control characters; NUL included.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_NOT_XML = re.compile("[\ufffe\uffff]")
_VERSION = re.compile(r"[A-Za-z0-9._\-+=/:]{1,1024}")


def _check_text(value: object, what: str, *, allow_empty: bool) -> str:
    if not isinstance(value, str):
        raise InvalidArgument(f"{what} must be a str, got {type(value).__name__}")
    if not value and not allow_empty:
        raise InvalidArgument(f"{what} must not be empty")
    if value.isascii() and value.isprintable():  # the common case: no control character, 1 byte each
        if len(value) > MAX_KEY_BYTES:
            raise InvalidArgument(f"{what} is {len(value)} bytes of UTF-8; the limit is {MAX_KEY_BYTES}")
        if value.startswith("/"):
            raise InvalidArgument(f"{what} {value!r} must not start with '/'")
        return value
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidArgument(f"{what} {value!r} is not valid UTF-8 (lone surrogate)") from None
    if size > MAX_KEY_BYTES:
        raise InvalidArgument(f"{what} is {size} bytes of UTF-8; the limit is {MAX_KEY_BYTES}")
    match = _CONTROL.search(value)
    if match:
        raise InvalidArgument(
            f"{what} {value!r} contains control character {match.group()!r} "
            f"at index {match.start()}; remove it"
        )
    match = _NOT_XML.search(value)
    if match:
        raise InvalidArgument(
            f"{what} {value!r} contains the noncharacter U+{ord(match.group()):04X} at index "
            f"{match.start()}, which XML (and so S3's listings) cannot carry; remove it"
        )
    if value.startswith("/"):
        raise InvalidArgument(f"{what} {value!r} must not start with '/'")
    return value


def validate_key(key: object) -> str:
    """Return ``key`` if it is a valid object key, else raise InvalidArgument."""
    key = _check_text(key, "key", allow_empty=False)
    if key.startswith(".") or "/." in key:  # only then can a segment be "." or ".."
        for segment in key.split("/"):
            if segment in (".", ".."):
                raise InvalidArgument(f"key {key!r} has a {segment!r} segment; use a plain name")
    return key


def validate_prefix(prefix: object) -> str:
    """A listing prefix: like a key, but may be empty and may end mid-segment."""
    prefix = _check_text(prefix, "prefix", allow_empty=True)
    for segment in prefix.split("/")[:-1]:
        if segment in (".", ".."):
            raise InvalidArgument(f"prefix {prefix!r} has a {segment!r} segment")
    return prefix


def validate_version(version: object) -> str:
    """A version id as a backend hands it out: short, printable, no spaces."""
    if not isinstance(version, str):
        raise InvalidArgument(f"version must be a str, got {type(version).__name__}")
    if not _VERSION.fullmatch(version):
        raise InvalidArgument(
            f"version {version!r} is not a version id; pass ObjectAttrs.version "
            "or ListEntry.version as returned by the bucket"
        )
    return version
