"""Bucket: the public surface. Declared at module level; does no I/O until used."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Literal, TypeVar, cast
from urllib.parse import quote, urlsplit

from . import _runtime, config
from .errors import InvalidArgument, ObjectNotFound
from .keys import validate_prefix
from .listing import ListItem, iterate
from .providers.base import Provider
from .reader import Reader
from .refs import TTL, BucketRef, Uploader
from .types import BucketConfig, ObjectAttrs, Preconditions, Query, UploadAttrs
from .writer import Writer

__all__ = ["Bucket"]

T = TypeVar("T")
P = TypeVar("P")

NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
"""What a bucket name may be; the CLI and the dev server match names with it too."""
DEFAULT_TTL = timedelta(hours=1)
MAX_TTL = timedelta(days=7)


class Bucket:
    """A named collection of objects. Where it lives is configuration (see ``aiobucket.configure``)."""

    __slots__ = ("_handle", "config", "name")

    def __init__(self, name: str, config: BucketConfig | None = None) -> None:
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise InvalidArgument(
                f"bucket name {name!r} must be 1-63 characters of a-z, 0-9, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        if config is not None and not isinstance(config, BucketConfig):
            raise InvalidArgument(f"config must be a BucketConfig, got {type(config).__name__}", bucket=name)
        self.name = name
        self.config = config or BucketConfig()
        self._handle = _runtime.Handle(self.name, self.config)

    def __repr__(self) -> str:
        return f"Bucket({self.name!r}, {self.config!r})"

    # -- streaming ----------------------------------------------------------

    def upload(
        self,
        key: str,
        *,
        attrs: UploadAttrs | None = None,
        preconditions: Preconditions | None = None,
        part_size: int | None = None,
        concurrency: int | None = None,
    ) -> Writer:
        """Start an upload. Write to the returned writer; ``close()`` commits."""
        key = self._key(key)
        return Writer(self._handle, key, attrs, preconditions, part_size, concurrency)

    def download(
        self, key: str, *, version: str | None = None, offset: int = 0, length: int | None = None
    ) -> Reader:
        """Open a streaming read of the object, or of ``length`` bytes from ``offset``."""
        key = self._key(key)
        version = self._version(version, key)
        for name, value, low in (("offset", offset, 0), ("length", length, 0)):
            if value is None and name == "length":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InvalidArgument(
                    f"{name} must be an int >= {low}, got {value!r}", bucket=self.name, key=key
                )
        return Reader(self._handle, key, version, offset, length)

    # -- listing ------------------------------------------------------------

    def list(self, query: Query | None = None) -> AsyncIterator[ListItem]:
        """Iterate ``(error, entry)`` pairs in key order; stops after an error."""
        return iterate(self._handle, self._query(query), versions=False)

    def list_versions(self, query: Query | None = None) -> AsyncIterator[ListItem]:
        """Like list(), but every version of every object, newest first per key."""
        return iterate(self._handle, self._query(query), versions=True)

    # -- single operations --------------------------------------------------

    async def remove(self, key: str, *, version: str | None = None) -> None:
        """Delete the object (or one version). Raises ObjectNotFound if it is not there."""
        key = self._key(key)
        version = self._version(version, key)
        await self._run("remove", key, version, lambda p: p.delete(key, version))

    async def attrs(self, key: str, *, version: str | None = None) -> ObjectAttrs:
        key = self._key(key)
        version = self._version(version, key)
        return await self._run("attrs", key, version, lambda p: p.head(key, version))

    async def exists(self, key: str, *, version: str | None = None) -> bool:
        key = self._key(key)
        version = self._version(version, key)

        async def call(p: Provider) -> bool:
            try:
                await p.head(key, version)
            except ObjectNotFound:
                return False
            return True

        return await self._run("exists", key, version, call)

    async def copy(
        self,
        src_key: str,
        dst_key: str,
        *,
        dst_bucket: Bucket | Uploader | None = None,
        version: str | None = None,
        attrs: UploadAttrs | None = None,
        preconditions: Preconditions | None = None,
    ) -> ObjectAttrs:
        """Copy an object, on the server where the backend can, else by streaming.

        ``attrs`` None keeps the source's attributes; ``preconditions`` apply to
        the destination (not_exists gives copy-if-not-exists).
        """
        from .copying import copy_object

        src_key = self._key(src_key)
        version = self._version(version, src_key)
        dst = self if dst_bucket is None else dst_bucket
        upload = dst.upload  # a ref without Uploader raises PermissionDenied here
        target = cast(Bucket, getattr(dst, "_bucket", dst))
        dst_key = target._key(dst_key)
        return await copy_object(
            self._handle, src_key, version, target._handle, upload, dst_key, attrs, preconditions
        )

    # -- URLs ---------------------------------------------------------------

    def public_url(self, key: str) -> str:
        """The object's URL under the configured ``public_base_url`` (public buckets only).

        On the local backend (``file://``) with no ``public_base_url``, the URL points
        at the dev server, ``aiobucket serve``: ``<dev server>/o/<bucket>/<key>``, where
        the dev server is the bucket option ``dev_server_url``, else the
        ``AIOBUCKET_DEV_SERVER`` environment variable, else ``http://127.0.0.1:8787``.
        The bucket's root then gets a ``public`` marker file so the server, which
        cannot see this BucketConfig, serves it without a signature.
        """
        key = self._key(key)
        settings = config.resolve(self.name)
        if not self.config.public:
            raise InvalidArgument(
                "public_url() needs a public bucket: declare it with BucketConfig(public=True)",
                bucket=self.name,
                key=key,
            )
        if not settings.public_base_url and settings.scheme == "file":
            from .providers.local import _signing

            _signing.mark_public(Path(urlsplit(settings.url).path))
            base = _signing.dev_server_base(settings.options)
            return _signing.object_url(base, self.name, settings.key_prefix + key)
        if not settings.public_base_url:
            raise InvalidArgument(
                "public_url() needs public_base_url in this bucket's configuration",
                bucket=self.name,
                key=key,
            )
        return settings.public_base_url.rstrip("/") + "/" + quote(settings.key_prefix + key, safe="/~")

    async def signed_upload_url(self, key: str, *, ttl: TTL = DEFAULT_TTL) -> str:
        """A URL anyone may PUT the object's bytes to until ``ttl`` passes (1 h default, 7 days max)."""
        return await self._sign(key, "PUT", ttl, None)

    async def signed_download_url(
        self, key: str, *, ttl: TTL = DEFAULT_TTL, version: str | None = None
    ) -> str:
        """A URL anyone may GET the object from until ``ttl`` passes (1 h default, 7 days max)."""
        return await self._sign(key, "GET", ttl, version)

    # -- refs ---------------------------------------------------------------

    def ref(self, perm: Callable[..., P]) -> P:
        """This bucket narrowed to a permission Protocol (Downloader, Uploader, ..., ReadWriter).

        Typed as ``Callable[..., P]`` rather than ``type[P]`` because mypy refuses
        Protocol classes where ``type[P]`` is expected.
        """
        if not isinstance(perm, type):
            raise InvalidArgument(
                f"ref() takes a permission Protocol such as Downloader, got {perm!r}", bucket=self.name
            )
        try:
            return cast(P, BucketRef(self, perm))
        except InvalidArgument as exc:
            raise exc.with_context(bucket=self.name) from None

    # -- internals ----------------------------------------------------------

    def _key(self, key: str) -> str:
        return self._handle.key(key)

    def _version(self, version: str | None, key: str) -> str | None:
        return self._handle.version(version, key)

    def _query(self, query: Query | None) -> Query:
        if query is None:
            return Query()
        if not isinstance(query, Query):
            raise InvalidArgument(f"list() takes a Query, got {type(query).__name__}", bucket=self.name)
        try:
            validate_prefix(query.prefix)
        except InvalidArgument as exc:
            raise exc.with_context(bucket=self.name) from None
        return query

    async def _sign(self, key: str, method: Literal["GET", "PUT"], ttl: TTL, version: str | None) -> str:
        key = self._key(key)
        version = self._version(version, key)
        if isinstance(ttl, bool) or not isinstance(ttl, timedelta | int | float):
            raise InvalidArgument(
                f"ttl must be a timedelta or seconds, got {type(ttl).__name__}", bucket=self.name, key=key
            )
        delta = ttl if isinstance(ttl, timedelta) else timedelta(seconds=ttl)
        if not timedelta(0) < delta <= MAX_TTL:
            raise InvalidArgument(
                f"ttl must be more than 0 and at most 7 days, got {delta}", bucket=self.name, key=key
            )
        op = "signed_upload_url" if method == "PUT" else "signed_download_url"
        return await self._run(op, key, version, lambda p: p.sign_url(key, method, delta, version))

    async def _run(
        self, op: str, key: str | None, version: str | None, call: Callable[[Provider], Awaitable[T]]
    ) -> T:
        async with _runtime.operation(op, self.name, key, version=version):
            provider, _ = self._handle.provider()
            return await call(provider)
