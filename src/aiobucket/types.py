"""Plain values passed to and returned from the API. All frozen."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from types import MappingProxyType

from ._frozen import fast_init
from .errors import InvalidArgument

__all__ = [
    "BucketConfig",
    "ListEntry",
    "ObjectAttrs",
    "Preconditions",
    "Query",
    "UploadAttrs",
    "UploadForm",
]

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class BucketConfig:
    """What the code says about a bucket. Where it lives is configuration, not code."""

    versioned: bool = False
    """Keep every write as a new version (S3 VersionId, GCS generation)."""
    public: bool = False
    """Objects may be served at ``public_url(key)``."""

    def __post_init__(self) -> None:
        for name in ("versioned", "public"):
            value = getattr(self, name)
            if not isinstance(value, bool):  # "no" or 1 would quietly mean True
                raise InvalidArgument(f"BucketConfig.{name} must be True or False, got {value!r}")


_TOKEN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~")


def _header_value(what: str, value: str) -> None:
    """The one rule for values that S3 and GCS carry in HTTP headers: printable ASCII,
    with no space at either end (HTTP strips it), so every backend stores them alike."""
    bad = next((c for c in value if not " " <= c <= "~"), None)
    if bad is not None and bad.isascii():
        raise InvalidArgument(
            f"{what} contains the control character {bad!r}: header values cannot hold CR, LF, TAB "
            "or other control characters"
        )
    if bad is not None:
        raise InvalidArgument(
            f"{what} contains the non-ASCII character {bad!r}: header values must be ASCII; "
            "percent-encode the text (urllib.parse.quote) and decode it after reading"
        )
    if value != value.strip(" "):
        raise InvalidArgument(f"{what} starts or ends with a space, which HTTP would strip: strip it first")


@dataclass(frozen=True, slots=True)
class UploadAttrs:
    """Attributes of an upload. They travel as HTTP headers on S3 and GCS, so every
    backend accepts the same values: printable ASCII with no space at either end
    (control characters and non-ASCII text raise InvalidArgument before any I/O;
    percent-encode such text yourself). Empty strings mean "not set"."""

    content_type: str | None = None
    """Guessed from the key's extension when left out, else application/octet-stream."""
    cache_control: str | None = None
    content_disposition: str | None = None
    """For a non-ASCII file name use RFC 6266's ``filename*=UTF-8''<percent-encoded>``."""
    metadata: Mapping[str, str] = field(default_factory=dict)
    """User metadata. Keys are HTTP token characters and are stored lower-cased (S3
    lower-cases them); values are non-empty (S3 drops empty ones)."""
    content_encoding: str | None = None
    """How the bytes you upload are encoded, e.g. ``"gzip"`` for bytes you compressed
    yourself. Stored as the object's Content-Encoding; nothing is compressed for you.
    Downloads return the stored bytes unless asked to ``decompress``."""

    def __post_init__(self) -> None:
        for name in ("content_type", "cache_control", "content_disposition", "content_encoding"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise InvalidArgument(f"UploadAttrs.{name} must be a str, got {type(value).__name__}")
            if value == "":
                object.__setattr__(self, name, None)  # S3 and GCS store an empty value as none
            elif value is not None:
                _header_value(f"UploadAttrs.{name}", value)
        if not isinstance(self.metadata, Mapping):
            raise InvalidArgument("UploadAttrs.metadata must be a dict[str, str]")
        meta: dict[str, str] = {}
        for k, v in self.metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise InvalidArgument("UploadAttrs.metadata keys and values must be str")
            if not k or not _TOKEN.issuperset(k):
                raise InvalidArgument(
                    f"metadata key {k!r} must be non-empty ASCII letters, digits or !#$%&'*+-.^_`|~ "
                    "(no spaces, ':' or other separators)"
                )
            if k.lower() in meta:
                raise InvalidArgument(
                    f"metadata keys {k!r} and another differ only in case; keys are lower-cased"
                )
            if not v:
                raise InvalidArgument(
                    f"metadata value for {k!r} is empty (S3 would drop it): leave the key out"
                )
            _header_value(f"metadata value for {k!r}", v)
            meta[k.lower()] = v
        # A private copy, so later changes to the caller's dict do not leak in.
        object.__setattr__(self, "metadata", MappingProxyType(meta))

    @classmethod
    def of(cls, attrs: ObjectAttrs) -> UploadAttrs:
        """The attributes of a stored object, to write another with the same ones."""
        return cls(
            attrs.content_type,
            attrs.cache_control,
            attrs.content_disposition,
            dict(attrs.metadata),
            content_encoding=attrs.content_encoding,
        )


@dataclass(frozen=True, slots=True)
class Preconditions:
    """Conditions the write must meet, checked atomically by the backend."""

    not_exists: bool = False
    """Succeed only if no object exists at the key."""
    if_match: str | None = None
    """Succeed only if the current object's ETag equals this (quotes optional)."""

    def __post_init__(self) -> None:
        if not isinstance(self.not_exists, bool):  # "false" would quietly mean True
            raise InvalidArgument(f"Preconditions.not_exists must be True or False, got {self.not_exists!r}")
        if self.if_match is not None:
            if not isinstance(self.if_match, str) or not self.if_match.strip('"'):
                raise InvalidArgument("Preconditions.if_match must be a non-empty ETag string")
            object.__setattr__(self, "if_match", self.if_match.strip('"'))
        if self.not_exists and self.if_match is not None:
            raise InvalidArgument("Preconditions: not_exists and if_match cannot both be set")

    def __bool__(self) -> bool:
        return self.not_exists or self.if_match is not None


@dataclass(frozen=True, slots=True)
class Query:
    """What to list: keys under ``prefix``, at most ``limit`` entries."""

    prefix: str = ""
    limit: int | None = None
    delimiter: str | None = None
    """Group keys by this separator (usually "/") into prefix entries, like folders."""

    def __post_init__(self) -> None:
        if not isinstance(self.prefix, str):
            raise InvalidArgument(f"Query.prefix must be a str, got {type(self.prefix).__name__}")
        if self.limit is not None and (
            isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 0
        ):
            raise InvalidArgument(f"Query.limit must be a non-negative int or None, got {self.limit!r}")
        if self.delimiter is not None and (not isinstance(self.delimiter, str) or not self.delimiter):
            raise InvalidArgument("Query.delimiter must be a non-empty str or None")


_READ_CHECKS = ("crc32c", "crc64nvme", "crc32", "md5")
"""The whole-object checksums a download may be verified against, in order of preference."""


@fast_init  # built on every read and write: see _frozen.py
@dataclass(frozen=True, slots=True)
class ObjectAttrs:
    name: str
    size: int
    etag: str
    """Unquoted entity tag: an MD5 hex on memory and local, the server's value elsewhere."""
    content_type: str = "application/octet-stream"
    version: str | None = None
    """Set on versioned buckets (S3 VersionId, GCS generation); None otherwise."""
    cache_control: str | None = None
    content_disposition: str | None = None
    metadata: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    last_modified: datetime | None = None
    crc32c: str | None = None
    """The whole object's CRC32C (Castagnoli), base64 of its 4 big-endian bytes, as S3's
    ``x-amz-checksum-crc32c`` and GCS's ``crc32c``; None where the backend keeps none."""
    md5: str | None = None
    """The whole object's MD5 as lower-case hex, where the backend vouches for it (an S3
    single-part ETag, GCS ``md5Hash``); None otherwise. A full download is checked
    against ``verified_by`` and raises IntegrityError on a mismatch."""
    crc32: str | None = None
    """The whole object's CRC32 (zlib's), base64 of its 4 big-endian bytes, as S3's
    full-object ``x-amz-checksum-crc32``; None where the backend keeps none. Other
    S3 clients write it (aiobucket writes CRC32C)."""
    crc64nvme: str | None = None
    """The whole object's CRC64NVME, base64 of its 8 big-endian bytes, as S3's
    ``x-amz-checksum-crc64nvme`` (S3's default for objects other clients wrote since
    2025); None where the backend keeps none."""

    content_encoding: str | None = None
    """The stored Content-Encoding (``"gzip"`` for bytes stored compressed), or None.
    ``size``, ``crc32c`` and ``md5`` describe the stored (encoded) bytes."""

    @property
    def verified_by(self) -> str | None:
        """The stored checksum a whole download of this object is checked against:
        ``"crc32c"``, ``"crc64nvme"``, ``"crc32"`` or ``"md5"`` (the first the object
        has, in that order), or None: the object has no full-object checksum the
        backend vouches for, and its downloads are **not verified** (only counted
        against their length). Ranged reads are never verified. On S3, ``attrs()`` sends
        a plain HEAD, which reports no checksums (asking for them needs kms:Decrypt on
        SSE-KMS objects): the attrs a whole download opens with (``await reader.attrs()``)
        say what that download is verified against."""
        for name in _READ_CHECKS:
            if getattr(self, name):
                return name
        return None

    def to_json(self) -> dict[str, object]:
        """Every field as JSON-ready values (ISO 8601 time, plain dict metadata)."""
        return _jsonable(self)


@dataclass(frozen=True, slots=True)
class UploadForm:
    """A signed browser upload: POST ``fields`` plus the file (as the last field,
    named ``file``) as ``multipart/form-data`` to ``url``."""

    url: str
    fields: Mapping[str, str]

    def to_json(self) -> dict[str, object]:
        return {"url": self.url, "fields": dict(self.fields)}


@fast_init  # built for every entry of a listing
@dataclass(frozen=True, slots=True)
class ListEntry:
    name: str
    size: int = 0
    etag: str = ""
    version: str | None = None
    """Set by list_versions(); None in plain listings (S3 does not report it there)."""
    last_modified: datetime | None = None
    is_latest: bool = True
    """For version listings: whether this version is the object's current one."""
    is_prefix: bool = False
    """For delimiter listings: this entry is a common prefix ("folder"), not an object."""

    def to_json(self) -> dict[str, object]:
        """Every field as JSON-ready values (ISO 8601 time)."""
        return _jsonable(self)


def _jsonable(obj: object) -> dict[str, object]:
    out: dict[str, object] = {}
    for f in fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, f.name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, Mapping):
            value = dict(value)
        out[f.name] = value
    return out
