"""The one key-prefix layer (object_store's PrefixStore): every key is stored under a prefix.

A URL's ``?prefix=`` and the ``key_prefix`` setting both end here (config turns the
first into the second), so a prefix is applied in exactly one place. Invariants:

* every key going down gets the prefix; every name coming up (attrs, list entries)
  and every error's key (a response body's too) loses it, so callers never see the prefix;
* every Provider method is wrapped, including the multipart handle's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Sequence
from datetime import timedelta
from typing import Literal, TypeVar

from .._frozen import replace
from ..errors import BucketError, InvalidArgument
from ..keys import MAX_KEY_BYTES
from ..types import ListEntry, ObjectAttrs, UploadForm
from .base import (
    Body,
    Capabilities,
    CopyOptions,
    GetOptions,
    MultipartUpload,
    Part,
    PostPolicy,
    Provider,
    PutOptions,
)

T = TypeVar("T")


class _PrefixedUpload:
    def __init__(self, inner: MultipartUpload, outer: PrefixedProvider, key: str) -> None:
        self._inner = inner
        self._outer = outer
        self._key = key

    async def put_part(self, number: int, data: bytes | bytearray | memoryview) -> Part:
        return await self._outer._call(self._key, self._inner.put_part(number, data))

    async def complete(self, parts: list[Part]) -> ObjectAttrs:
        return self._outer._strip_attrs(await self._outer._call(self._key, self._inner.complete(parts)))

    async def abort(self) -> None:
        await self._outer._call(self._key, self._inner.abort())


class _PrefixedBody:
    """A response body whose errors (a cut connection, say) name the caller's key."""

    def __init__(self, inner: Body, outer: PrefixedProvider, key: str) -> None:
        self._inner = inner
        self._outer = outer
        self._key = key
        self.decoded = getattr(inner, "decoded", False) is True  # see base.Body

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                yield chunk
        except BucketError as exc:
            raise self._outer._fix(exc, self._key) from exc.__cause__

    async def aclose(self) -> None:
        await self._outer._call(self._key, self._inner.aclose())


class PrefixedProvider:
    def __init__(self, inner: Provider, prefix: str) -> None:
        self.inner = inner
        self.prefix = prefix

    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities

    def _full(self, key: str) -> str:
        full = self.prefix + key
        if len(full.encode()) > MAX_KEY_BYTES:
            raise InvalidArgument(
                f"key is too long once the bucket's key_prefix {self.prefix!r} is added "
                f"(limit {MAX_KEY_BYTES} bytes)",
                key=key,
            )
        return full

    def _strip(self, name: str) -> str:
        return name[len(self.prefix) :] if name.startswith(self.prefix) else name

    def _strip_attrs(self, attrs: ObjectAttrs) -> ObjectAttrs:
        return replace(attrs, name=self._strip(attrs.name))

    def _fix(self, exc: BucketError, key: str | None) -> BucketError:
        if exc.key is not None:
            exc.key = self._strip(exc.key)
        attrs = getattr(exc, "attrs", None)
        if isinstance(attrs, ObjectAttrs):  # NotModified carries the object's attrs
            exc.attrs = self._strip_attrs(attrs)  # type: ignore[attr-defined]
        return exc.with_context(key=key)

    async def _call(self, key: str, op: Awaitable[T]) -> T:
        """Await ``op``, giving any error the caller's (unprefixed) key."""
        try:
            return await op
        except BucketError as exc:
            raise self._fix(exc, key) from exc.__cause__

    async def put(self, key: str, data: bytes, opts: PutOptions) -> ObjectAttrs:
        return self._strip_attrs(await self._call(key, self.inner.put(self._full(key), data, opts)))

    async def start_multipart(self, key: str, opts: PutOptions) -> MultipartUpload:
        inner = await self._call(key, self.inner.start_multipart(self._full(key), opts))
        return _PrefixedUpload(inner, self, key)

    async def get(self, key: str, opts: GetOptions) -> tuple[ObjectAttrs, Body]:
        attrs, body = await self._call(key, self.inner.get(self._full(key), opts))
        return self._strip_attrs(attrs), _PrefixedBody(body, self, key)

    async def head(self, key: str, version: str | None = None, *, checksums: bool = False) -> ObjectAttrs:
        inner = self.inner.head(self._full(key), version, checksums=checksums)
        return self._strip_attrs(await self._call(key, inner))

    async def delete(self, key: str, version: str | None = None) -> None:
        await self._call(key, self.inner.delete(self._full(key), version))

    async def delete_many(self, keys: Sequence[str]) -> list[BucketError | None]:
        results = await self.inner.delete_many([self._full(k) for k in keys])
        return [None if err is None else self._fix(err, key) for err, key in zip(results, keys, strict=True)]

    async def list(
        self,
        prefix: str,
        *,
        start_after: str | None = None,
        delimiter: str | None = None,
        versions: bool = False,
        limit: int | None = None,
    ) -> AsyncIterator[ListEntry]:
        after = None if start_after is None else self.prefix + start_after
        entries = self.inner.list(
            self.prefix + prefix,
            start_after=after,
            delimiter=delimiter,
            versions=versions,
            limit=limit,
        )
        try:
            async for entry in entries:
                yield replace(entry, name=self._strip(entry.name))
        except BucketError as exc:
            raise self._fix(exc, None) from exc.__cause__

    def can_copy_from(self, source: Provider) -> bool:
        return self.inner.can_copy_from(_unwrap(source))

    async def copy(self, source: Provider, src: str, dst: str, opts: CopyOptions) -> ObjectAttrs:
        # The source bucket has its own prefix (or none): it names its own key.
        src_full = source._full(src) if isinstance(source, PrefixedProvider) else src
        op = self.inner.copy(_unwrap(source), src_full, self._full(dst), opts)
        return self._strip_attrs(await self._call(src, op))

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
        op = self.inner.sign_url(
            self._full(key),
            method,
            ttl,
            version,
            content_type=content_type,
            content_length=content_length,
            not_exists=not_exists,
        )
        return await self._call(key, op)

    async def sign_post(self, key: str, policy: PostPolicy) -> UploadForm:
        return await self._call(key, self.inner.sign_post(self._full(key), policy))

    async def aclose(self) -> None:
        await self.inner.aclose()


def _unwrap(provider: Provider) -> Provider:
    return provider.inner if isinstance(provider, PrefixedProvider) else provider
