"""A provider layer that stores every key under a fixed prefix (object_store's PrefixStore)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Literal

from ..errors import BucketError, InvalidArgument
from ..keys import MAX_KEY_BYTES
from ..types import ListEntry, ObjectAttrs
from .base import Body, Capabilities, CopyOptions, GetOptions, MultipartUpload, Part, Provider, PutOptions


class _PrefixedUpload:
    def __init__(self, inner: MultipartUpload, outer: PrefixedProvider) -> None:
        self._inner = inner
        self._outer = outer

    async def put_part(self, number: int, data: bytes | bytearray) -> Part:
        return await self._inner.put_part(number, data)

    async def complete(self, parts: list[Part]) -> ObjectAttrs:
        return self._outer._strip_attrs(await self._inner.complete(parts))

    async def abort(self) -> None:
        await self._inner.abort()


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
        return dataclasses.replace(attrs, name=self._strip(attrs.name))

    def _fix(self, exc: BucketError, key: str) -> BucketError:
        if exc.key is not None:
            exc.key = self._strip(exc.key)
        return exc.with_context(key=key)

    async def put(self, key: str, data: bytes, opts: PutOptions) -> ObjectAttrs:
        try:
            return self._strip_attrs(await self.inner.put(self._full(key), data, opts))
        except BucketError as exc:
            raise self._fix(exc, key) from exc.__cause__

    async def start_multipart(self, key: str, opts: PutOptions) -> MultipartUpload:
        return _PrefixedUpload(await self.inner.start_multipart(self._full(key), opts), self)

    async def get(self, key: str, opts: GetOptions) -> tuple[ObjectAttrs, Body]:
        try:
            attrs, body = await self.inner.get(self._full(key), opts)
        except BucketError as exc:
            raise self._fix(exc, key) from exc.__cause__
        return self._strip_attrs(attrs), body

    async def head(self, key: str, version: str | None = None) -> ObjectAttrs:
        try:
            return self._strip_attrs(await self.inner.head(self._full(key), version))
        except BucketError as exc:
            raise self._fix(exc, key) from exc.__cause__

    async def delete(self, key: str, version: str | None = None) -> None:
        try:
            await self.inner.delete(self._full(key), version)
        except BucketError as exc:
            raise self._fix(exc, key) from exc.__cause__

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
        async for entry in entries:
            yield dataclasses.replace(entry, name=self._strip(entry.name))

    async def copy(self, src: str, dst: str, opts: CopyOptions) -> ObjectAttrs:
        source = opts.source
        if source is None:
            src = self._full(src)
        elif isinstance(source, PrefixedProvider):  # the other bucket has its own prefix
            src, source = source._full(src), source.inner
        try:
            attrs = await self.inner.copy(src, self._full(dst), dataclasses.replace(opts, source=source))
        except BucketError as exc:
            raise self._fix(exc, src) from exc.__cause__
        return self._strip_attrs(attrs)

    async def sign_url(
        self, key: str, method: Literal["GET", "PUT"], ttl: timedelta, version: str | None = None
    ) -> str:
        return await self.inner.sign_url(self._full(key), method, ttl, version)

    async def aclose(self) -> None:
        await self.inner.aclose()
