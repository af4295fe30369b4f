"""Bucket: the public surface. Declared at module level; does no I/O until used."""

from __future__ import annotations

import os
import re
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
)
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal, TypeVar, cast, overload
from urllib.parse import quote

from . import _download_file, _parallel, _runtime, config
from ._parallel import ParallelReader
from .errors import InvalidArgument, NotSupported, ObjectNotFound
from .keys import validate_prefix
from .listing import ListItem, iterate
from .providers.base import Capabilities, GetOptions, Provider
from .reader import Reader
from .refs import TTL, BucketRef, Uploader
from .removing import RemoveItem, check_keys, remove_many
from .types import BucketConfig, ObjectAttrs, Preconditions, Query, UploadAttrs, UploadForm
from .writer import Writer, check_write_options

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
        size: int | None = None,
    ) -> Writer:
        """Start an upload. Write to the returned writer; ``close()`` commits.

        ``size``, when the total is known (a file's), lets the part size grow so that the
        upload fits the store's ``max_parts`` (1,000 on Scaleway) instead of failing there.
        """
        key = self._key(key)
        return Writer(self._handle, key, attrs, preconditions, part_size, concurrency, size)

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
        decompress: bool = False,
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

    def download(
        self,
        key: str,
        *,
        version: str | None = None,
        offset: int = 0,
        length: int | None = None,
        if_none_match: str | None = None,
        if_modified_since: datetime | None = None,
        concurrency: int | None = None,
        part_size: int | None = None,
        decompress: bool = False,
    ) -> Reader | ParallelReader:
        """Open a streaming read of the object, or of ``length`` bytes from ``offset``.

        ``if_none_match`` (an etag, or ``*``) and ``if_modified_since`` make it conditional,
        as in HTTP caching: opening raises NotModified, with the object's ``attrs``, and
        no body is transferred, when the caller's copy is current.

        ``concurrency=N`` fetches ``part_size`` ranges (8 MiB by default) N at a time,
        pinned to one etag, and yields them in order (a ParallelReader); memory stays
        under ``part_size * (N + 1)``.

        The bytes are the stored ones: an object uploaded with ``content_encoding="gzip"``
        comes back gzip-compressed, verified against its stored checksum. ``decompress=True``
        decodes it on the way (whole-object reads only), still verifying the stored bytes
        as they stream; ``reader.content_encoding()`` says which you got.
        """
        key = self._key(key)
        version = self._version(version, key)
        if offset != 0 or type(offset) is not int:  # the default needs no check (False is refused)
            self._int("offset", offset, 0, key)
        if length is not None:
            self._int("length", length, 0, key)
        cache = self._cache(if_none_match, if_modified_since, key)
        if not isinstance(decompress, bool):
            raise InvalidArgument(
                f"decompress must be True or False, got {decompress!r}", bucket=self.name, key=key
            )
        if decompress and (offset or length is not None or concurrency is not None):
            raise InvalidArgument(
                "decompress=True reads the whole object (a range of the stored bytes cannot be "
                "decoded alone): drop offset, length and concurrency",
                bucket=self.name,
                key=key,
            )
        if concurrency is None:
            if part_size is not None:
                raise InvalidArgument(
                    "part_size= sets the range size of a parallel download: pass concurrency= too",
                    bucket=self.name,
                    key=key,
                )
            return Reader(self._handle, key, version, offset, length, cache, decompress)
        concurrency, part_size = self._parallel(concurrency, part_size, key)
        return ParallelReader(self._handle, key, version, offset, length, concurrency, part_size, cache)

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
    ) -> ObjectAttrs:
        """Download the object into the file ``path``, ``concurrency`` ranges at a time.

        Parts are written in place into a temporary file beside ``path``, which replaces
        ``path`` only once every byte is in (and verified, where the backend keeps a
        checksum); on any failure or cancellation it is removed and ``path`` is untouched.
        ``concurrency`` defaults to the backend's (8), ``part_size`` to 8 MiB; an object
        of one part is one request. ``on_progress(n)`` is called as each ``n`` bytes land.
        Returns the object's attributes.
        """
        key = self._key(key)
        version = self._version(version, key)
        if not isinstance(path, str | os.PathLike):
            raise InvalidArgument(
                f"path must be a str or os.PathLike, got {type(path).__name__}", bucket=self.name, key=key
            )
        if on_progress is not None and not callable(on_progress):
            raise InvalidArgument(
                f"on_progress must be callable, got {type(on_progress).__name__}", bucket=self.name, key=key
            )
        cache = self._cache(if_none_match, if_modified_since, key)
        if concurrency is None:
            provider, settings = self._handle.provider()
            concurrency = settings.concurrency or provider.capabilities.default_concurrency
        concurrency, part_size = self._parallel(concurrency, part_size, key)
        return await _download_file.download_to(
            self._handle,
            key,
            Path(path),
            version=version,
            concurrency=concurrency,
            part_size=part_size,
            cache=cache,
            on_progress=on_progress,
        )

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

    def remove_many(
        self, keys: Iterable[str] | AsyncIterable[str], *, concurrency: int | None = None
    ) -> AsyncGenerator[RemoveItem, None]:
        """Remove many objects: ``(error, key)`` pairs, one per key, in the order the keys came.

        ``keys`` is any iterable or async iterable (a listing's names, for instance), read
        lazily. ``(None, key)`` means removed, ``(ObjectNotFound, key)`` that it was not
        there, ``(InvalidArgument, key)`` that it is not a valid key; an error never stops
        the iteration. Keys go in batches of the backend's ``delete_batch`` (S3: 1,000),
        ``concurrency`` batches at a time (default 4 batches of 1,000, or 16 single
        deletes). Stop early with ``contextlib.aclosing()``: in-flight batches are cancelled.
        """
        keys = check_keys(keys, self.name)
        if concurrency is not None:
            self._int("concurrency", concurrency, 1, None)
        return remove_many(self._handle, keys, concurrency)

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
        check_write_options(attrs, preconditions, self.name, src_key)
        dst = self if dst_bucket is None else dst_bucket
        if not isinstance(getattr(dst, "_bucket", dst), Bucket):
            raise InvalidArgument(
                f"dst_bucket must be a Bucket or a ref of one, got {type(dst).__name__}",
                bucket=self.name,
                key=src_key,
            )
        upload = dst.upload  # a ref without Uploader raises PermissionDenied here
        target = cast(Bucket, getattr(dst, "_bucket", dst))
        dst_key = target._key(dst_key)
        return await copy_object(
            self._handle, src_key, version, target._handle, upload, dst_key, attrs, preconditions
        )

    async def capabilities(self) -> Capabilities:
        """What this bucket's backend honours: declared, plus what it learnt at runtime.

        For S3 that is the store's profile (``provider=`` or the endpoint's host, plus
        overrides). No I/O; ``aiobucket doctor BUCKET`` probes what the store really does.
        """
        async with _runtime.operation("capabilities", self.name, None):
            provider, _ = self._handle.provider()
            return provider.capabilities

    # -- URLs ---------------------------------------------------------------

    def public_url(self, key: str) -> str:
        """The object's URL under the configured ``public_base_url`` (public buckets only).

        On the local backend (``file://``) with no ``public_base_url``, the URL points
        at the dev server, ``aiobucket serve``: ``<dev server>/o/<bucket>/<key>``, where
        the dev server is the bucket option ``dev_server_url``, else the
        ``AIOBUCKET_DEV_SERVER`` environment variable, else ``http://127.0.0.1:8787``.
        No I/O: the local provider leaves a ``public`` marker file in the bucket's root
        when it opens the bucket (first write, or first read of an existing bucket), so
        the server, which cannot see this BucketConfig, serves it without a signature.
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

            base = _signing.dev_server_base(settings.options)
            return _signing.object_url(base, self.name, settings.key_prefix + key)
        if not settings.public_base_url:
            raise InvalidArgument(
                "public_url() needs public_base_url in this bucket's configuration",
                bucket=self.name,
                key=key,
            )
        return settings.public_base_url.rstrip("/") + "/" + quote(settings.key_prefix + key, safe="/~")

    async def signed_upload_url(
        self,
        key: str,
        *,
        ttl: TTL = DEFAULT_TTL,
        content_type: str | None = None,
        content_length: int | None = None,
        preconditions: Preconditions | None = None,
    ) -> str:
        """A URL anyone may PUT the object's bytes to until ``ttl`` passes (1 h default, 7 days max).

        ``content_type`` and ``content_length`` are signed into the URL: the server then
        refuses a PUT with another Content-Type header or another size (S3, the dev
        server; GCS signs ``content_type`` only and raises NotSupported for
        ``content_length``). To cap the size rather than fix it, use signed_upload_form().

        ``preconditions=Preconditions(not_exists=True)`` makes the URL create-only: a PUT
        over an existing object is refused and the object is left as it was. Where that
        needs a header, the header is signed, so a PUT without it is refused too (403):
        S3 signs ``If-None-Match: *`` and GCS ``x-goog-if-generation-match: 0``, which the
        uploader must send; Azure's SAS grants create only (``sp=c``; sending
        ``If-None-Match: *`` as well makes the check atomic with the write) and the dev
        server signs ``create_only=1`` into the URL. See the README's table.
        ``if_match`` cannot be signed into a URL (NotSupported).
        """
        from ._upload_forms import check_content_type, check_size

        try:
            if content_type is not None:
                check_content_type("content_type", content_type)
            if content_length is not None:
                check_size("content_length", content_length)
            check_write_options(None, preconditions, self.name, key)
            if preconditions is not None and preconditions.if_match is not None:
                raise NotSupported(
                    "a signed upload URL cannot carry if_match (no backend signs it); "
                    "only Preconditions(not_exists=True)"
                )
        except (InvalidArgument, NotSupported) as exc:
            raise exc.with_context(bucket=self.name, key=key) from None
        not_exists = preconditions is not None and preconditions.not_exists
        return await self._sign(key, "PUT", ttl, None, content_type, content_length, not_exists)

    async def signed_upload_form(
        self,
        key: str,
        *,
        max_size: int,
        ttl: TTL = DEFAULT_TTL,
        min_size: int = 0,
        content_type: str | None = None,
        content_type_prefix: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> UploadForm:
        """A signed browser upload form for ``key``: the server refuses a file outside
        ``min_size``..``max_size`` bytes, after ``ttl``, or with other fields.

        POST ``form.fields`` and then the file, as the last field named ``file``, as
        ``multipart/form-data`` to ``form.url``. The Content-Type is fixed to
        ``content_type`` (default: guessed from the key, as upload() does); with
        ``content_type_prefix="image/"`` instead, the browser adds a ``Content-Type``
        field (such as ``file.type``) that must start with it. ``metadata`` is stored
        with the object. Works on S3 (a SigV4 POST policy), GCS (a V4 POST policy) and
        the local backend (through ``aiobucket serve``); NotSupported on memory.
        """
        from ._upload_forms import make_policy

        key = self._key(key)
        delta = self._ttl(ttl, key)
        try:
            policy = make_policy(key, delta, max_size, min_size, content_type, content_type_prefix, metadata)
        except InvalidArgument as exc:
            raise exc.with_context(bucket=self.name, key=key) from None

        async def call(p: Provider) -> UploadForm:
            caps = p.capabilities
            if caps.store and not caps.signed_forms:  # a store that has no POST object
                raise NotSupported(
                    f"{caps.store} has no browser upload forms (POST object); nothing was signed. "
                    "Use signed_upload_url(), or set the bucket option post_forms=true if it has",
                    bucket=self.name,
                    key=key,
                )
            return await p.sign_post(key, policy)

        return await self._run("signed_upload_form", key, None, call)

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

    def _int(self, name: str, value: object, low: int, key: str | None) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InvalidArgument(f"{name} must be an int >= {low}, got {value!r}", bucket=self.name, key=key)
        return value

    def _cache(
        self, if_none_match: str | None, if_modified_since: datetime | None, key: str
    ) -> GetOptions | None:
        """The caching conditions of a download, checked (None when there are none)."""
        if if_none_match is None and if_modified_since is None:
            return None
        if if_none_match is not None and (not isinstance(if_none_match, str) or not if_none_match.strip('"')):
            raise InvalidArgument(
                f"if_none_match must be a non-empty etag string (or '*'), got {if_none_match!r}",
                bucket=self.name,
                key=key,
            )
        if if_modified_since is not None and (
            not isinstance(if_modified_since, datetime) or if_modified_since.tzinfo is None
        ):
            raise InvalidArgument(
                "if_modified_since must be a timezone-aware datetime "
                f"(such as datetime.now(timezone.utc)), got {if_modified_since!r}",
                bucket=self.name,
                key=key,
            )
        etag = None if if_none_match is None else if_none_match.strip().removeprefix("W/").strip('"')
        return GetOptions(if_none_match=etag, if_modified_since=if_modified_since)

    def _parallel(self, concurrency: object, part_size: object, key: str) -> tuple[int, int]:
        n = self._int("concurrency", concurrency, 1, key)
        size = _parallel.DEFAULT_PART_SIZE if part_size is None else self._int("part_size", part_size, 1, key)
        return n, size

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

    def _ttl(self, ttl: TTL, key: str) -> timedelta:
        """The one rule for signed URLs and forms: more than 0 and at most 7 days."""
        if isinstance(ttl, bool) or not isinstance(ttl, timedelta | int | float):
            raise InvalidArgument(
                f"ttl must be a timedelta or seconds, got {type(ttl).__name__}", bucket=self.name, key=key
            )
        seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else ttl
        if not 0 < seconds <= MAX_TTL.total_seconds():  # NaN and infinities fail here too
            raise InvalidArgument(
                f"ttl must be more than 0 and at most 7 days, got {ttl!r}", bucket=self.name, key=key
            )
        delta = ttl if isinstance(ttl, timedelta) else timedelta(seconds=ttl)
        if not timedelta(0) < delta <= MAX_TTL:
            raise InvalidArgument(
                f"ttl must be more than 0 and at most 7 days, got {delta}", bucket=self.name, key=key
            )
        return delta

    async def _sign(
        self,
        key: str,
        method: Literal["GET", "PUT"],
        ttl: TTL,
        version: str | None,
        content_type: str | None = None,
        content_length: int | None = None,
        not_exists: bool = False,
    ) -> str:
        key = self._key(key)
        version = self._version(version, key)
        delta = self._ttl(ttl, key)
        op = "signed_upload_url" if method == "PUT" else "signed_download_url"

        def sign(p: Provider) -> Awaitable[str]:
            if not_exists and not p.capabilities.conditional_put:  # nothing would refuse the overwrite
                raise NotSupported(
                    "this backend cannot refuse a write over an existing object "
                    "(Capabilities.conditional_put), so a create-only signed URL would not be",
                    key=key,
                )
            return p.sign_url(
                key,
                method,
                delta,
                version,
                content_type=content_type,
                content_length=content_length,
                not_exists=not_exists,
            )

        return await self._run(op, key, version, sign)

    async def _run(
        self, op: str, key: str | None, version: str | None, call: Callable[[Provider], Awaitable[T]]
    ) -> T:
        async with _runtime.operation(op, self.name, key, version=version):
            provider, _ = self._handle.provider()
            return await call(provider)
