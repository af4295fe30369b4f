"""Permission Protocols and bucket refs: a bucket narrowed to what a caller may do.

``bucket.ref(Downloader)`` returns an object that type checkers see as a
Downloader and that raises PermissionDenied for anything else. Combine
permissions with a Protocol of your own::

    class AvatarStore(Downloader, Uploader, Protocol): ...
    store = ProfilePictures.ref(AvatarStore)
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, overload

from .errors import InvalidArgument, PermissionDenied

if TYPE_CHECKING:
    from ._parallel import ParallelReader
    from .listing import ListItem
    from .reader import Reader
    from .removing import RemoveItem
    from .types import ObjectAttrs, Preconditions, Query, UploadAttrs, UploadForm
    from .writer import Writer

__all__ = [
    "Attrser",
    "BucketRef",
    "Downloader",
    "Lister",
    "PublicURLer",
    "ReadWriter",
    "Remover",
    "SignedDownloader",
    "SignedUploader",
    "Uploader",
]

TTL = timedelta | float


class Uploader(Protocol):
    def upload(
        self,
        key: str,
        *,
        attrs: UploadAttrs | None = None,
        preconditions: Preconditions | None = None,
        part_size: int | None = None,
        concurrency: int | None = None,
    ) -> Writer: ...


class Downloader(Protocol):
    @overload
    def download(
        self,
        key: str,
        *,
        version: str | None = None,
        offset: int = 0,
        length: int | None = None,
        if_none_match: str | None = None,
        if_modified_since: datetime | None = None,
        concurrency: None = None,
        part_size: None = None,
    ) -> Reader: ...

    @overload
    def download(
        self,
        key: str,
        *,
        version: str | None = None,
        offset: int = 0,
        length: int | None = None,
        if_none_match: str | None = None,
        if_modified_since: datetime | None = None,
        concurrency: int,
        part_size: int | None = None,
    ) -> ParallelReader: ...

    async def download_to(
        self,
        key: str,
        path: str | os.PathLike[str],
        *,
        version: str | None = None,
        concurrency: int | None = None,
        part_size: int | None = None,
        if_none_match: str | None = None,
        if_modified_since: datetime | None = None,
        on_progress: Callable[[int], object] | None = None,
    ) -> ObjectAttrs: ...

    async def copy(
        self,
        src_key: str,
        dst_key: str,
        *,
        dst_bucket: Uploader | None = None,
        version: str | None = None,
        attrs: UploadAttrs | None = None,
        preconditions: Preconditions | None = None,
    ) -> ObjectAttrs:
        """Copy needs Downloader here and Uploader on the destination (this ref when
        ``dst_bucket`` is None): a ref without both raises PermissionDenied."""
        ...


class Lister(Protocol):
    def list(self, query: Query | None = None) -> AsyncIterator[ListItem]: ...

    def list_versions(self, query: Query | None = None) -> AsyncIterator[ListItem]: ...


class Attrser(Protocol):
    async def attrs(self, key: str, *, version: str | None = None) -> ObjectAttrs: ...

    async def exists(self, key: str, *, version: str | None = None) -> bool: ...


class Remover(Protocol):
    async def remove(self, key: str, *, version: str | None = None) -> None: ...

    def remove_many(
        self, keys: Iterable[str] | AsyncIterable[str], *, concurrency: int | None = None
    ) -> AsyncGenerator[RemoveItem, None]: ...


class SignedUploader(Protocol):
    async def signed_upload_url(
        self,
        key: str,
        *,
        ttl: TTL = ...,
        content_type: str | None = None,
        content_length: int | None = None,
        preconditions: Preconditions | None = None,
    ) -> str: ...

    async def signed_upload_form(
        self,
        key: str,
        *,
        max_size: int,
        ttl: TTL = ...,
        min_size: int = 0,
        content_type: str | None = None,
        content_type_prefix: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> UploadForm: ...


class SignedDownloader(Protocol):
    async def signed_download_url(self, key: str, *, ttl: TTL = ..., version: str | None = None) -> str: ...


class PublicURLer(Protocol):
    def public_url(self, key: str) -> str: ...


class ReadWriter(Uploader, Downloader, Lister, Attrser, Remover, SignedUploader, SignedDownloader, Protocol):
    """Every permission except PublicURLer."""


def permitted(perm: type) -> frozenset[str]:
    """The method names a permission Protocol (or a combination of them) allows."""
    if not getattr(perm, "_is_protocol", False):
        raise InvalidArgument(
            f"ref() takes a permission Protocol such as Downloader or ReadWriter, got {perm!r}; "
            "combine permissions with 'class Mine(Downloader, Uploader, Protocol): ...'"
        )
    names: set[str] = set()
    for cls in perm.__mro__:
        if cls is Protocol or not getattr(cls, "_is_protocol", False):
            continue
        names.update(n for n in vars(cls) if not n.startswith("_"))
    if not names:
        raise InvalidArgument(
            f"ref() takes a permission Protocol such as Downloader or ReadWriter, got {perm!r}"
        )
    return frozenset(names)


class BucketRef:
    """A bucket seen through a set of permissions."""

    __slots__ = ("_allowed", "_bucket", "_perm")

    def __init__(self, bucket: Any, perm: type) -> None:
        allowed = permitted(perm)
        unknown = sorted(n for n in allowed if not callable(getattr(type(bucket), n, None)))
        if unknown:
            raise InvalidArgument(f"ref(): {perm.__name__} declares methods buckets do not have: {unknown}")
        self._bucket = bucket
        self._allowed = allowed
        self._perm = perm

    @property
    def name(self) -> str:
        name: str = self._bucket.name
        return name

    def __getattr__(self, attr: str) -> Any:
        if attr == "copy" and attr in self._allowed:
            return self._copy
        if attr in self._allowed:
            return getattr(self._bucket, attr)
        if not attr.startswith("_") and callable(getattr(type(self._bucket), attr, None)):
            raise PermissionDenied(
                f"{attr}() is not permitted by this {self._perm.__name__} ref; "
                f"take a ref with a Protocol that includes it",
                bucket=self.name,
            )
        raise AttributeError(attr)

    async def _copy(self, src_key: str, dst_key: str, *, dst_bucket: Any = None, **kw: Any) -> Any:
        # The destination defaults to this ref, not the bucket behind it, so
        # copying within the bucket also needs this ref's Uploader permission.
        return await self._bucket.copy(
            src_key, dst_key, dst_bucket=self if dst_bucket is None else dst_bucket, **kw
        )

    def __repr__(self) -> str:
        return f"<BucketRef {self.name!r} as {self._perm.__name__}>"
