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

import itertools
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

import anyio

from .._frozen import fast_init
from ..errors import (
    BucketError,
    InvalidArgument,
    NotModified,
    ObjectNotFound,
    PreconditionFailed,
    RangeNotSatisfiable,
)
from ..types import BucketConfig, ListEntry, ObjectAttrs, Preconditions, UploadForm

if TYPE_CHECKING:
    from ..config import BucketSettings

__all__ = [
    "Body",
    "Capabilities",
    "CopyOptions",
    "GetOptions",
    "GiB",
    "KiB",
    "MiB",
    "MultipartUpload",
    "Part",
    "Provider",
    "ProviderFactory",
    "PostPolicy",
    "PutOptions",
    "check_preconditions",
    "check_read",
    "same_etag",
    "copy_put_options",
    "delete_each",
    "new_object_attrs",
    "new_version_id",
    "not_found",
    "put_options_from",
    "PartOrder",
]

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend can do. The conformance suite checks each claim both ways."""

    versioning: bool = True
    conditional_put: bool = True
    """not_exists and if_match on a single put."""
    conditional_multipart: bool = True
    """not_exists and if_match on a multipart upload's completion."""
    conditional_copy: bool = True
    """not_exists and if_match on a server-side copy's destination."""
    signed_urls: bool = False
    signed_forms: bool = False
    """sign_post() makes browser upload forms whose limits the server enforces."""
    signed_url_length: bool = False
    """A signed PUT URL can fix ``content_length`` (else sign_url raises NotSupported for it)."""
    server_side_copy: bool = True
    parallel_parts: bool = False
    """Parts may be uploaded concurrently and out of order (S3). When False the
    writer sends parts one at a time, in order, so a provider can append."""
    min_part_size: int = 1
    """Smallest part except the last (S3: 5 MiB; GCS: 256 KiB granularity)."""
    part_size_multiple: int = 1
    """Part sizes must be a multiple of this (GCS resumable: 256 KiB)."""
    max_parts: int = 10_000
    max_part_size: int | None = None
    """Largest part a store takes (Azure Put Block: 4000 MiB); None: no limit of its own.
    A larger part_size is InvalidArgument, and a known size is fitted below it."""
    default_part_size: int = 8 * MiB
    default_concurrency: int = 8
    delete_batch: int = 1
    """How many keys one delete_many() call takes (S3 DeleteObjects: 1000)."""
    listing_order: Literal["utf-8", "utf-16"] = "utf-8"
    """The order of list(): UTF-8 bytes of the key, or UTF-16 code units (Azure), which
    differ only for keys with characters from U+E000 to U+FFFF beside ones above U+FFFF."""
    key_restrictions: tuple[str, ...] = ()
    """Keys this backend refuses (InvalidArgument) beyond aiobucket's own rules, by name:
    "segment_ends_with_dot" and "backslash" on Azure, which would store them under
    another name. A portable application avoids them."""
    served_cache_control: bool = False
    """A read's attrs carry the Cache-Control the server serves, which may be its default
    rather than the stored value (GCS: ``public, max-age=3600`` for a public object without
    one), so a copy that keeps the source's attributes reads them with head()."""
    store: str = ""
    """Where one backend speaks to many stores, the store's profile name (S3: ``provider=``)."""


@fast_init  # one per write
@dataclass(frozen=True, slots=True)
class PutOptions:
    """Everything about a write except the bytes. Attributes are already resolved."""

    content_type: str
    cache_control: str | None = None
    content_disposition: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    preconditions: Preconditions = field(default_factory=Preconditions)
    content_encoding: str | None = None
    """Stored as the object's Content-Encoding; the bytes are stored as given."""


@fast_init  # one per ranged or conditional read
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
    if_none_match: str | None = None
    """HTTP caching: raise NotModified (no body) when the object's etag equals this."""
    if_modified_since: datetime | None = None
    """HTTP caching: raise NotModified (no body) unless the object changed after this
    (compared at one-second resolution, as HTTP dates are). Ignored when
    ``if_none_match`` is set, as RFC 9110 says."""


@dataclass(frozen=True, slots=True)
class CopyOptions:
    version: str | None = None
    """Copy this version of the source instead of the current one."""
    replace: PutOptions | None = None
    """New attributes for the destination; None keeps the source's."""
    preconditions: Preconditions = field(default_factory=Preconditions)
    """Checked against the destination."""


@dataclass(frozen=True, slots=True)
class PostPolicy:
    """What a signed browser upload form allows (S3 / GCS POST policy, dev-server HMAC)."""

    ttl: timedelta
    min_size: int = 0
    max_size: int | None = None
    content_type: str | None = None
    """Exact Content-Type the form must send."""
    content_type_prefix: str | None = None
    """Or a prefix it must start with, such as ``image/``."""
    metadata: Mapping[str, str] = field(default_factory=dict)


@fast_init  # one per part
@dataclass(frozen=True, slots=True)
class Part:
    number: int
    """1-based, in stream order."""
    etag: str
    size: int


class Body(Protocol):
    """A streaming response body. Always ``aclose()``d by the reader, even after EOF.

    A body whose bytes the server decoded on the way (GCS decompressive transcoding)
    has ``decoded = True``: they are not the stored bytes, so no stored checksum applies.
    """

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None:
        """Release the body. Its first step runs in the reader's task and the rest, if it
        suspends, in a shielded one (``_aio.release``): release without suspending when
        possible (no task is made then), and enter no timeout before the first ``await``."""
        ...


class MultipartUpload(Protocol):
    """One in-progress upload. Exactly one of complete() or abort() ends it."""

    async def put_part(self, number: int, data: bytes | bytearray | memoryview) -> Part:
        """Upload one part. ``data`` is one of the writer's pooled part buffers (a
        bytearray, or a memoryview of one for a short last part): it is the writer's
        again once this returns or raises, so a provider that keeps bytes copies them."""
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
        """Open a read. The attrs describe the whole object, not the range.

        Raises NotModified (with ``attrs`` set where known) when ``if_none_match``
        or ``if_modified_since`` says the caller's copy is current.
        """
        ...

    async def head(self, key: str, version: str | None = None, *, checksums: bool = False) -> ObjectAttrs:
        """The object's attrs. ``checksums``: a whole read will be verified against them,
        so report every stored full-object checksum; otherwise a backend may leave out
        those that cost more to ask for (on S3, ``x-amz-checksum-mode`` makes a HEAD of
        an SSE-KMS object need kms:Decrypt, which plain HEADs do not)."""
        ...

    async def delete(self, key: str, version: str | None = None) -> None:
        """Remove the object (or one version); ObjectNotFound if it is not there.

        Without a version on a versioned bucket, older versions are kept.
        """
        ...

    async def delete_many(self, keys: Sequence[str]) -> list[BucketError | None]:
        """Delete up to ``capabilities.delete_batch`` keys: one result per key, in order.

        A missing key is ObjectNotFound in its slot, never a failure of the batch.
        Backends without a batch call use :func:`delete_each`.
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

    def can_copy_from(self, source: Provider) -> bool:
        """Whether copy() can read ``source``'s objects on the server (``source`` may be self).

        The layer above asks first and streams the bytes itself when the answer is no.
        """
        ...

    async def copy(self, source: Provider, src: str, dst: str, opts: CopyOptions) -> ObjectAttrs:
        """Server-side copy of ``source``'s ``src`` to this bucket's ``dst``.

        Only called when ``can_copy_from(source)`` said yes.
        """
        ...

    async def sign_url(
        self,
        key: str,
        method: Literal["GET", "PUT"],
        ttl: timedelta,
        version: str | None = None,
        *,
        content_type: str | None = None,
        content_length: int | None = None,
        not_exists: bool = False,
    ) -> str:
        """A presigned URL. For PUT, ``content_type`` and ``content_length`` are signed
        into it where the backend can enforce them (NotSupported where it cannot), and
        ``not_exists`` makes it create-only: the server refuses a PUT over an existing
        object (NotSupported, before signing, where the backend cannot enforce that)."""
        ...

    async def sign_post(self, key: str, policy: PostPolicy) -> UploadForm:
        """A signed browser upload form for ``key`` under ``policy``; NotSupported where
        the backend has no such thing."""
        ...

    async def aclose(self) -> None:
        """Release clients, sessions and file handles. Idempotent."""
        ...


class ProviderFactory(Protocol):
    """How config builds a provider: ``module:create`` registered per URL scheme.

    ``settings.url`` and ``settings.options`` carry the provider's own settings;
    ``config.versioned`` tells memory and local whether to keep versions.
    """

    def __call__(self, settings: BucketSettings, name: str, config: BucketConfig) -> Provider: ...


def same_etag(a: str | None, b: str | None) -> bool:
    """Whether two unquoted ETags name the same object. Compared case-insensitively,
    wherever aiobucket compares them: ETags are hex digests, and stores and proxies
    differ in their case."""
    return a is not None and b is not None and (a == b or a.lower() == b.lower())


def check_preconditions(current: ObjectAttrs | None, pre: Preconditions, key: str) -> None:
    """The shared rule for backends that check preconditions themselves.

    ``current`` is the live object (None when absent or deleted). if_match on a
    missing object fails, as it does on S3 and GCS.
    """
    if pre.not_exists and current is not None:
        raise PreconditionFailed("precondition not_exists failed: the object exists", key=key)
    if pre.if_match is not None and (current is None or not same_etag(current.etag, pre.if_match)):
        found = "the object does not exist" if current is None else f"its etag is {current.etag!r}"
        raise PreconditionFailed(f"precondition if_match={pre.if_match!r} failed: {found}", key=key)


def check_read(attrs: ObjectAttrs, opts: GetOptions, key: str) -> None:
    """The shared checks on a read, made against the object it found.

    Order as on S3: If-Match (PreconditionFailed), then the caching conditions
    (NotModified), then the range (RangeNotSatisfiable when ``offset`` is at or
    past the end of a non-empty object).
    """
    if opts.if_match is not None and not same_etag(attrs.etag, opts.if_match):
        raise PreconditionFailed(f"object changed: etag is now {attrs.etag!r}", key=key)
    if opts.if_none_match is not None:
        if opts.if_none_match == "*" or same_etag(opts.if_none_match.strip('"'), attrs.etag):
            raise _not_modified(attrs, key)
    elif (
        opts.if_modified_since is not None
        and attrs.last_modified is not None
        and int(attrs.last_modified.timestamp()) <= int(opts.if_modified_since.timestamp())
    ):
        raise _not_modified(attrs, key)
    if opts.offset and opts.offset >= attrs.size:
        raise RangeNotSatisfiable(
            f"offset {opts.offset} is at or past the end of the object ({attrs.size} bytes)", key=key
        )


def _not_modified(attrs: ObjectAttrs, key: str) -> NotModified:
    err = NotModified("not modified: the caller's copy is current", key=key)
    err.attrs = attrs
    return err


def put_options_from(attrs: ObjectAttrs, preconditions: Preconditions | None = None) -> PutOptions:
    """Write options that keep a source object's attributes (copy without ``attrs``)."""
    return PutOptions(
        content_type=attrs.content_type,
        cache_control=attrs.cache_control,
        content_disposition=attrs.content_disposition,
        metadata=attrs.metadata,
        preconditions=preconditions or Preconditions(),
        content_encoding=attrs.content_encoding,
    )


def copy_put_options(source: ObjectAttrs, opts: CopyOptions) -> PutOptions:
    """What a copy writes: the caller's replacement attributes, else the source's; either
    way under the copy's preconditions (for backends that copy by writing)."""
    if opts.replace is None:
        return put_options_from(source, opts.preconditions)
    return replace(opts.replace, preconditions=opts.preconditions)


def new_object_attrs(
    key: str, opts: PutOptions, *, size: int, md5: str, crc32c: str | None, versioned: bool
) -> ObjectAttrs:
    """The attributes of an object a backend stores itself (memory, local): the etag is
    the MD5 of its bytes, the version a new_version_id() when the bucket keeps versions."""
    return ObjectAttrs(
        name=key,
        size=size,
        etag=md5,
        content_type=opts.content_type,
        version=new_version_id() if versioned else None,
        cache_control=opts.cache_control,
        content_disposition=opts.content_disposition,
        metadata=dict(opts.metadata),
        last_modified=datetime.now(UTC),
        crc32c=crc32c,
        md5=md5,
        content_encoding=opts.content_encoding,
    )


def not_found(key: str, version: str | None = None) -> ObjectNotFound:
    """The one error for a missing object, or a missing version of one."""
    what = "object not found" if version is None else "object version not found"
    return ObjectNotFound(what, key=key, version=version)


class PartOrder:
    """Guard for backends that append parts: they must arrive 1, 2, 3 ... in order."""

    __slots__ = ("next",)

    def __init__(self) -> None:
        self.next = 1

    def take(self, number: int) -> None:
        if number != self.next:
            raise InvalidArgument(f"parts must arrive in order: expected {self.next}, got {number}")
        self.next += 1


_version_counter = itertools.count(1)


def new_version_id() -> str:
    """A version id for backends that make their own: sortable by creation, opaque to users."""
    return f"{next(_version_counter):012x}{secrets.token_hex(4)}"


async def delete_each(
    delete: Callable[[str], Awaitable[None]], keys: Sequence[str], concurrency: int = 16
) -> list[BucketError | None]:
    """delete_many() for backends without a batch call: concurrent single deletes.

    Storage errors land in their key's slot; anything else (a bug, a cancel) propagates.
    """
    results: list[BucketError | None] = [None] * len(keys)
    limit = anyio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with limit:
            try:
                await delete(keys[i])
            except BucketError as exc:
                results[i] = exc

    async with anyio.create_task_group() as tg:
        for i in range(len(keys)):
            tg.start_soon(one, i)
    return results
