"""The provider contract: a few async primitives each backend translates.

Everything a user can observe (part cutting, abort on cancel, key validation,
content-type guessing, tracing, limits, prefixing) is decided above this layer,
so a provider only maps its backend's calls and errors onto these.

Rules every provider follows:

* Keys arrive validated and already carry the bucket's key prefix.
* Errors are raised as ``aiobucket.errors`` types, never as driver exceptions:
  a missing object or version is ObjectNotFound, a failed condition is
  PreconditionFailed, a dropped body stream is ConnectionLost, anything else
  BackendError with the original chained.
* Nothing is created at import or construction time that binds to an event
  loop: clients are made lazily on first use (a provider instance is only ever
  used from the loop it was first used on; the bucket layer makes one per loop).
* Etags are returned unquoted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from ..errors import PreconditionFailed
from ..types import BucketConfig, ListEntry, ObjectAttrs, Preconditions

if TYPE_CHECKING:
    from ..config import BucketSettings

__all__ = [
    "Body",
    "Capabilities",
    "CopyOptions",
    "GetOptions",
    "MultipartUpload",
    "Part",
    "Provider",
    "ProviderFactory",
    "PutOptions",
    "check_preconditions",
]

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend can do. The conformance suite checks each claim both ways."""

    versioning: bool = True
    conditional_put: bool = True
    """not_exists and if_match on put and on multipart complete."""
    signed_urls: bool = False
    server_side_copy: bool = True
    parallel_parts: bool = False
    """Parts may be uploaded concurrently and out of order (S3). When False the
    writer sends parts one at a time, in order, so a provider can append."""
    min_part_size: int = 1
    """Smallest part except the last (S3: 5 MiB; GCS: 256 KiB granularity)."""
    part_size_multiple: int = 1
    """Part sizes must be a multiple of this (GCS resumable: 256 KiB)."""
    max_parts: int = 10_000
    default_part_size: int = 8 * MiB
    default_concurrency: int = 8


@dataclass(frozen=True, slots=True)
class PutOptions:
    """Everything about a write except the bytes. Attributes are already resolved."""

    content_type: str
    cache_control: str | None = None
    content_disposition: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    preconditions: Preconditions = field(default_factory=Preconditions)


@dataclass(frozen=True, slots=True)
class GetOptions:
    version: str | None = None
    offset: int = 0
    length: int | None = None
    """None reads to the end. Providers raise RangeNotSatisfiable when
    ``offset`` is at or past the end of a non-empty object."""
    if_match: str | None = None
    """Pin the read to this etag (used to resume a dropped body): raise
    PreconditionFailed if the object changed."""


@dataclass(frozen=True, slots=True)
class CopyOptions:
    version: str | None = None
    """Copy this version of the source instead of the current one."""
    replace: PutOptions | None = None
    """New attributes for the destination; None keeps the source's."""
    preconditions: Preconditions = field(default_factory=Preconditions)
    """Checked against the destination."""
    source: Provider | None = None
    """The provider (another bucket) the source key lives in; None means this one.
    A provider that cannot copy from it on the server raises NotSupported, and
    the layer above streams the bytes instead."""


@dataclass(frozen=True, slots=True)
class Part:
    number: int
    """1-based, in stream order."""
    etag: str
    size: int


class Body(Protocol):
    """A streaming response body. Always ``aclose()``d by the reader, even after EOF."""

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class MultipartUpload(Protocol):
    """One in-progress upload. Exactly one of complete() or abort() ends it."""

    async def put_part(self, number: int, data: bytes | bytearray) -> Part:
        """Upload one part. A bytearray is handed over by the writer, which never
        touches it again, so the provider may keep or send it without copying."""
        ...

    async def complete(self, parts: list[Part]) -> ObjectAttrs:
        """Commit the parts (sorted by number) as the object, checking preconditions."""
        ...

    async def abort(self) -> None:
        """Throw everything away; must be safe to call after a failed put_part."""
        ...


@runtime_checkable
class Provider(Protocol):
    """One bound bucket on one backend."""

    @property
    def capabilities(self) -> Capabilities: ...

    async def put(self, key: str, data: bytes, opts: PutOptions) -> ObjectAttrs: ...

    async def start_multipart(self, key: str, opts: PutOptions) -> MultipartUpload: ...

    async def get(self, key: str, opts: GetOptions) -> tuple[ObjectAttrs, Body]:
        """Open a read. The attrs describe the whole object, not the range."""
        ...

    async def head(self, key: str, version: str | None = None) -> ObjectAttrs: ...

    async def delete(self, key: str, version: str | None = None) -> None:
        """Remove the object (or one version); ObjectNotFound if it is not there.

        Without a version on a versioned bucket, older versions are kept.
        """
        ...

    def list(
        self,
        prefix: str,
        *,
        start_after: str | None = None,
        delimiter: str | None = None,
        versions: bool = False,
        limit: int | None = None,
    ) -> AsyncIterator[ListEntry]:
        """Entries in UTF-8 byte order of key, then newest version first.

        ``limit`` is a page-size hint; the layer above enforces the real limit.
        With a delimiter, common prefixes come as entries with is_prefix=True.
        """
        ...

    async def copy(self, src: str, dst: str, opts: CopyOptions) -> ObjectAttrs:
        """Server-side copy into this bucket, from it or from ``opts.source``;
        NotSupported if the backend cannot (the layer above then streams)."""
        ...

    async def sign_url(
        self, key: str, method: Literal["GET", "PUT"], ttl: timedelta, version: str | None = None
    ) -> str: ...

    async def aclose(self) -> None:
        """Release clients, sessions and file handles. Idempotent."""
        ...


class ProviderFactory(Protocol):
    """How config builds a provider: ``module:create`` registered per URL scheme.

    ``settings.url`` and ``settings.options`` carry the provider's own settings;
    ``config.versioned`` tells memory and local whether to keep versions.
    """

    def __call__(self, settings: BucketSettings, name: str, config: BucketConfig) -> Provider: ...


def check_preconditions(current: ObjectAttrs | None, pre: Preconditions, key: str) -> None:
    """The shared rule for backends that check preconditions themselves.

    ``current`` is the live object (None when absent or deleted). if_match on a
    missing object fails, as it does on S3 and GCS.
    """
    if pre.not_exists and current is not None:
        raise PreconditionFailed("precondition not_exists failed: the object exists", key=key)
    if pre.if_match is not None and (current is None or current.etag != pre.if_match):
        found = "the object does not exist" if current is None else f"its etag is {current.etag!r}"
        raise PreconditionFailed(
            f"precondition if_match={pre.if_match!r} failed: {found}", key=key
        )
