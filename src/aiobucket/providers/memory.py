"""In-memory backend for tests: versioned, conditional, safe under concurrency.

Stores live in a process-wide registry keyed by (namespace, name), so the same
bucket is shared across event loops, and ``memory://name?ns=X`` gives a test its
own isolated namespace. Every mutation happens under one lock with no await
inside it, which makes each operation atomic.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import threading
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Literal
from urllib.parse import parse_qs, urlsplit

from .._checksum import crc32c_b64
from ..errors import BucketError, NotSupported
from ..types import BucketConfig, ListEntry, ObjectAttrs, UploadForm
from .base import (
    Capabilities,
    CopyOptions,
    GetOptions,
    MiB,
    Part,
    PartOrder,
    PostPolicy,
    Provider,
    PutOptions,
    check_preconditions,
    check_read,
    copy_put_options,
    delete_each,
    new_object_attrs,
    not_found,
)

if TYPE_CHECKING:
    from ..config import BucketSettings

CHUNK = MiB
CAPABILITIES = Capabilities(signed_urls=False, parallel_parts=False)
OPTIONS: tuple[str, ...] = ()  # memory:// buckets take no config options


@dataclass(slots=True)
class _Version:
    data: bytes
    attrs: ObjectAttrs


@dataclass(slots=True)
class _Key:
    versions: list[_Version] = field(default_factory=list)  # oldest first
    deleted: bool = False  # a delete marker sits on top (versioned buckets)

    def current(self) -> _Version | None:
        return None if self.deleted or not self.versions else self.versions[-1]


class MemoryStore:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.keys: dict[str, _Key] = {}
        self.sorted: list[bytes] = []  # UTF-8 keys in byte order, for listing

    def current(self, key: str) -> ObjectAttrs | None:
        entry = self.keys.get(key)
        cur = entry.current() if entry else None
        return cur.attrs if cur else None

    def find(self, key: str, version: str | None) -> _Version:
        entry = self.keys.get(key)
        if entry is not None:
            if version is None:
                cur = entry.current()
                if cur is not None:
                    return cur
            else:
                for v in entry.versions:
                    if v.attrs.version == version:
                        return v
        raise not_found(key, version)

    def commit(
        self, key: str, data: bytes, opts: PutOptions, versioned: bool, etag: str, crc32c: str | None
    ) -> ObjectAttrs:
        """Store ``data`` as the key's object. The etag is the MD5 of ``data`` (or, for a
        copy, the source's, which is the same); ``crc32c`` is stored for read checks."""
        attrs = new_object_attrs(key, opts, size=len(data), md5=etag, crc32c=crc32c, versioned=versioned)
        with self.lock:
            check_preconditions(self.current(key), opts.preconditions, key)
            entry = self.keys.get(key)
            if entry is None:
                entry = self.keys[key] = _Key()
                bisect.insort(self.sorted, key.encode())
            if versioned:
                entry.versions.append(_Version(data, attrs))
            else:
                entry.versions = [_Version(data, attrs)]
            entry.deleted = False
        return attrs

    def delete(self, key: str, version: str | None, versioned: bool) -> None:
        with self.lock:
            entry = self.keys.get(key)
            if version is None:
                if entry is None or entry.current() is None:
                    raise not_found(key)
                if versioned:
                    entry.deleted = True
                else:
                    entry.versions.clear()
            else:
                self.find(key, version)
                assert entry is not None
                entry.versions = [v for v in entry.versions if v.attrs.version != version]
            if entry is not None and not entry.versions:
                del self.keys[key]
                self.sorted.pop(bisect.bisect_left(self.sorted, key.encode()))

    def snapshot(self, prefix: str, start_after: str | None) -> list[tuple[str, _Key]]:
        """A consistent copy of the keys to list, so iteration never holds the lock."""
        lo = prefix.encode()
        with self.lock:
            i = bisect.bisect_left(self.sorted, lo)
            if start_after is not None:
                i = max(i, bisect.bisect_right(self.sorted, start_after.encode()))
            out = []
            for raw in itertools.islice(self.sorted, i, None):
                if not raw.startswith(lo):
                    break
                k = raw.decode()
                e = self.keys[k]
                out.append((k, _Key(list(e.versions), e.deleted)))
            return out


_stores: dict[tuple[str, str], MemoryStore] = {}
_stores_lock = threading.Lock()


def store(namespace: str, name: str) -> MemoryStore:
    with _stores_lock:
        return _stores.setdefault((namespace, name), MemoryStore())


def drop_namespace(namespace: str) -> None:
    """Forget every store of a namespace (used by aiobucket.testing)."""
    with _stores_lock:
        for k in [k for k in _stores if k[0] == namespace]:
            del _stores[k]


class _Body:
    def __init__(self, data: memoryview) -> None:
        self._data = data
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for i in range(0, len(self._data), CHUNK):
            if self._closed:
                return
            yield bytes(self._data[i : i + CHUNK])

    async def aclose(self) -> None:
        self._closed = True


class _Upload:
    def __init__(self, provider: MemoryProvider, key: str, opts: PutOptions) -> None:
        self._provider = provider
        self._key = key
        self._opts = opts
        self._buf = bytearray()
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._order = PartOrder()

    async def put_part(self, number: int, data: bytes | bytearray | memoryview) -> Part:
        self._order.take(number)
        self._buf += data
        self._md5.update(data)
        return Part(number, hashlib.md5(data, usedforsecurity=False).hexdigest(), len(data))

    async def complete(self, parts: list[Part]) -> ObjectAttrs:
        p = self._provider
        data, self._buf = bytes(self._buf), bytearray()
        return p.store.commit(
            self._key, data, self._opts, p.versioned, self._md5.hexdigest(), crc32c_b64(data)
        )

    async def abort(self) -> None:
        self._buf = bytearray()


class MemoryProvider:
    capabilities = CAPABILITIES

    def __init__(self, store: MemoryStore, versioned: bool) -> None:
        self.store = store
        self.versioned = versioned

    async def put(self, key: str, data: bytes, opts: PutOptions) -> ObjectAttrs:
        etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
        return self.store.commit(key, bytes(data), opts, self.versioned, etag, crc32c_b64(data))

    async def start_multipart(self, key: str, opts: PutOptions) -> _Upload:
        return _Upload(self, key, opts)

    async def get(self, key: str, opts: GetOptions) -> tuple[ObjectAttrs, _Body]:
        with self.store.lock:
            v = self.store.find(key, opts.version)
        check_read(v.attrs, opts, key)
        size = len(v.data)
        end = size if opts.length is None else min(size, opts.offset + opts.length)
        return v.attrs, _Body(memoryview(v.data)[opts.offset : end])

    async def head(self, key: str, version: str | None = None, *, checksums: bool = False) -> ObjectAttrs:
        with self.store.lock:
            return self.store.find(key, version).attrs

    async def delete(self, key: str, version: str | None = None) -> None:
        self.store.delete(key, version, self.versioned)

    async def delete_many(self, keys: Sequence[str]) -> list[BucketError | None]:
        return await delete_each(self.delete, keys)

    async def list(
        self,
        prefix: str,
        *,
        start_after: str | None = None,
        delimiter: str | None = None,
        versions: bool = False,
        limit: int | None = None,
    ) -> AsyncIterator[ListEntry]:
        last_prefix: str | None = None
        for key, entry in self.store.snapshot(prefix, start_after):
            if delimiter is not None:
                cut = key.find(delimiter, len(prefix))
                if cut >= 0:
                    common = key[: cut + len(delimiter)]
                    if common != last_prefix and (versions or entry.current() is not None):
                        last_prefix = common
                        yield ListEntry(name=common, is_prefix=True)
                    continue
            if versions:
                newest = len(entry.versions) - 1
                for i in range(newest, -1, -1):
                    yield _entry(entry.versions[i].attrs, is_latest=i == newest and not entry.deleted)
            else:
                cur = entry.current()
                if cur is not None:
                    yield _entry(cur.attrs, is_latest=True)

    def can_copy_from(self, source: Provider) -> bool:
        return isinstance(source, MemoryProvider)

    async def copy(self, source: Provider, src: str, dst: str, opts: CopyOptions) -> ObjectAttrs:
        assert isinstance(source, MemoryProvider)
        with source.store.lock:
            found = source.store.find(src, opts.version)
        put = copy_put_options(found.attrs, opts)
        # Bytes are immutable, so the copy shares them.
        return self.store.commit(dst, found.data, put, self.versioned, found.attrs.etag, found.attrs.crc32c)

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
        raise NotSupported("the memory backend cannot sign URLs", key=key)

    async def sign_post(self, key: str, policy: PostPolicy) -> UploadForm:
        raise NotSupported("the memory backend cannot sign upload forms", key=key)

    async def aclose(self) -> None:
        return None


def _entry(a: ObjectAttrs, *, is_latest: bool) -> ListEntry:
    return ListEntry(
        name=a.name,
        size=a.size,
        etag=a.etag,
        version=a.version,
        last_modified=a.last_modified,
        is_latest=is_latest,
    )


def create(settings: BucketSettings, name: str, config: BucketConfig) -> MemoryProvider:
    """``memory://[store-name][?ns=namespace]``; the store name defaults to the bucket name."""
    parts = urlsplit(settings.url)
    namespace = parse_qs(parts.query).get("ns", [""])[0]
    return MemoryProvider(store(namespace, parts.netloc or name), config.versioned)
