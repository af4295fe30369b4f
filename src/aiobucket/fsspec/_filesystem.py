"""AiobucketFileSystem: fsspec's async filesystem over the public ``Bucket`` API.

Invariants:

* Paths are ``aiobucket://<bucket>/<key>``; the bucket name is resolved through
  aiobucket's configuration on every call, so the same name means the same bucket
  as everywhere else in the process. ``buckets=`` passes declared ``Bucket``
  objects, whose ``BucketConfig`` (versioned, public) then applies.
* Nothing here is bound to an event loop: every call goes through a ``Bucket``,
  whose provider is cached per loop. So the filesystem works from fsspec's IO
  thread (sync calls), with ``asynchronous=True`` under any loop (zarr's, two
  ``asyncio.run`` calls in a row), and in a forked child (``loop`` is looked up
  again after a fork instead of refusing, as fsspec's base class does). It
  pickles as its constructor arguments.
* Writes stream through one ``Writer`` (bounded memory, abort on error: never a
  partial object); ``mode="create"`` is ``Preconditions(not_exists=True)``,
  checked atomically by the backend. Whole reads are verified like any download.
* Versions as s3fs reads them: ``version_id=`` or ``<path>?versionId=<id>`` reads
  that version (on a bucket declared ``BucketConfig(versioned=True)``; elsewhere
  the ``Bucket`` refuses with InvalidArgument, never answering with the current
  bytes). ``version_aware=True`` also pins each read file to the version seen at
  open, so it keeps reading that version after an overwrite instead of expiring.
* The dircache stays coherent with what this filesystem does: every write, copy
  and delete invalidates the paths it touched, their parents and (for deletes)
  anything cached under them. Writes made elsewhere are seen after
  ``invalidate_cache()``, or at once by calls that do not use the cache
  (``cat_file``, ``open``, ``info(refresh=True)``).
"""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import AsyncIterator, Iterable
from typing import Any

import anyio
import fsspec.asyn
from fsspec.asyn import AsyncFileSystem, sync_wrapper
from fsspec.callbacks import DEFAULT_CALLBACK
from fsspec.utils import tokenize

from .. import config
from ..bucket import Bucket
from ..errors import NotSupported, ObjectNotFound, RangeNotSatisfiable
from ..types import ListEntry, ObjectAttrs, Preconditions, Query
from ._errors import FileExpired, os_errors
from ._files import AiobucketFile, AiobucketStreamedFile, read_all, write_mode

__all__ = ["AiobucketFileSystem"]

PUT_CHUNK = 4 * 1024 * 1024
"""Bytes read from a local file per write in ``put_file``: the writer re-cuts them into parts."""
VERSION_QUERY = "?versionId="
"""How a path names a version, as in s3fs."""
SUFFIX_ATTEMPTS = 3
"""Tries of a read whose range depends on the size (negative start or end), should the
object change between the HEAD that gives the size and the ranged GET."""


class AiobucketFileSystem(AsyncFileSystem):  # type: ignore[misc]  # fsspec is untyped
    """``aiobucket://<bucket>/<key>`` for pandas, pyarrow, polars, duckdb, zarr, dask ...

    ``buckets``: declared ``Bucket`` objects whose ``BucketConfig`` should apply; any
    other bucket name is ``Bucket(name)`` with the default config. Where the buckets
    live is aiobucket's configuration (``AIOBUCKET_CONFIG``, ``aiobucket.configure``).
    """

    protocol = ("aiobucket",)
    root_marker = ""

    def __init__(
        self, buckets: Iterable[Bucket] | None = None, version_aware: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.version_aware = bool(version_aware)
        declared: dict[str, Bucket] = {}
        for b in buckets or ():
            if not isinstance(b, Bucket):
                raise TypeError(f"buckets= takes aiobucket.Bucket objects, got {type(b).__name__}")
            declared[b.name] = b
        self._buckets = declared

    # -- loops, fork --------------------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        # fsspec's base class refuses after a fork; nothing of ours is bound to the old
        # loop, so the child simply uses fsspec's (new) IO loop.
        if self._pid != os.getpid():  # type: ignore[has-type]
            self._pid = os.getpid()
            if not self.asynchronous:
                self._loop = fsspec.asyn.get_loop()
        return self._loop  # type: ignore[no-any-return]

    # -- paths ----------------------------------------------------------------

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        stripped: str = super()._strip_protocol(path)
        return stripped.lstrip("/")

    def split_path(self, path: str) -> tuple[str, str]:
        """``(bucket name, key)``; the key is "" for the bucket itself."""
        bucket, _, key = self._strip_protocol(path).partition("/")
        return bucket, key

    def bucket(self, name: str) -> Bucket:
        """The ``Bucket`` a path's first segment names."""
        found = self._buckets.get(name)
        if found is None:
            found = self._buckets[name] = Bucket(name)
        return found

    @staticmethod
    def _get_kwargs_from_urls(path: str) -> dict[str, Any]:
        # A URL naming a version makes the filesystem version-aware, as in s3fs.
        return {"version_aware": True} if VERSION_QUERY in path else {}

    @staticmethod
    def _split_version(path: str, version_id: str | None = None) -> tuple[str, str | None]:
        """``(path, version)`` of ``<path>?versionId=<id>`` and/or ``version_id=``."""
        path, _, in_path = path.partition(VERSION_QUERY)
        if in_path and version_id and in_path != version_id:
            raise ValueError(f"version_id={version_id!r} differs from the path's versionId={in_path!r}")
        return path, in_path or version_id or None

    def _versioned_target(self, path: str, version_id: str | None) -> tuple[Bucket, str, str, str | None]:
        """``(bucket, key, stripped path, version)`` of a path that must name an object."""
        path, version = self._split_version(path, version_id)
        return (*self._target(path), version)

    def _target(self, path: str) -> tuple[Bucket, str, str]:
        """``(bucket, key, stripped path)`` of a path that must name an object."""
        name, key = self.split_path(path)
        full = f"{name}/{key}" if key else name
        if not name:
            raise IsADirectoryError(f"{path!r} is the root of all buckets, not an object")
        if not key:
            raise IsADirectoryError(f"{path!r} is a bucket, not an object")
        return self.bucket(name), key, full

    # -- info, listing ----------------------------------------------------------

    @staticmethod
    def _file(bucket: str, item: ObjectAttrs | ListEntry) -> dict[str, Any]:
        info: dict[str, Any] = {
            "name": f"{bucket}/{item.name}",
            "size": item.size,
            "type": "file",
            "ETag": item.etag,
            "LastModified": item.last_modified,
        }
        if item.version is not None:
            info["VersionId"] = item.version
        if isinstance(item, ObjectAttrs):
            info["ContentType"] = item.content_type
        return info

    @staticmethod
    def _dir(name: str) -> dict[str, Any]:
        return {"name": name, "size": 0, "type": "directory"}

    async def _entries(
        self, bucket: Bucket, query: Query, versions: bool = False
    ) -> AsyncIterator[ListEntry]:
        async for err, entry in (bucket.list_versions if versions else bucket.list)(query):
            if err is not None:
                raise err
            assert entry is not None
            yield entry

    async def _info(
        self, path: str, refresh: bool = False, version_id: str | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        path, version = self._split_version(path, version_id)
        if version is not None:
            bucket, key, full = self._target(path)
            with os_errors(full):
                return self._file(bucket.name, await bucket.attrs(key, version=version))
        name, key = self.split_path(path)
        if not name:
            return self._dir("")
        if not key:
            return self._dir(name)
        full = f"{name}/{key}"
        if not refresh:
            cached = self._ls_from_cache(full)  # FileNotFoundError when the parent is cached without it
            if cached is not None:
                matches = [o for o in cached if o["name"] == full]
                return matches[0] if matches else self._dir(full)
        bucket = self.bucket(name)
        with os_errors(full):
            try:
                return self._file(name, await bucket.attrs(key))
            except ObjectNotFound:
                pass
            async for _ in self._entries(bucket, Query(prefix=key + "/", limit=1)):
                return self._dir(full)
        raise FileNotFoundError(full)

    async def _ls(self, path: str, detail: bool = True, refresh: bool = False, **kwargs: Any) -> list[Any]:
        full = self._strip_protocol(path)
        entries: list[dict[str, Any]] | None = None if refresh else self.dircache.get(full)
        if entries is None:
            entries = await self._list_dir(full)
        return entries if detail else [e["name"] for e in entries]

    async def _list_dir(self, full: str) -> list[dict[str, Any]]:
        name, key = self.split_path(full)
        if not name:  # the root: the buckets this process knows by name
            names = sorted({*config.configured_buckets(), *self._buckets})
            return [self._dir(n) for n in names]
        bucket = self.bucket(name)
        prefix = key + "/" if key else ""
        out = []
        with os_errors(full):
            async for entry in self._entries(bucket, Query(prefix=prefix, delimiter="/")):
                if entry.is_prefix:
                    out.append(self._dir(f"{name}/{entry.name.rstrip('/')}"))
                elif entry.name != prefix:  # a "folder marker" object written by another tool
                    out.append(self._file(name, entry))
            if out or not key:
                self.dircache[full] = out
                return out
            try:  # ls of a file lists the file, as on every fsspec filesystem
                return [self._file(name, await bucket.attrs(key))]
            except ObjectNotFound:
                raise FileNotFoundError(full) from None

    async def _find(
        self,
        path: str,
        maxdepth: int | None = None,
        withdirs: bool = False,
        detail: bool = False,
        **kwargs: Any,
    ) -> Any:
        name, key = self.split_path(path)
        if maxdepth is not None or not name:
            return await super()._find(path, maxdepth=maxdepth, withdirs=withdirs, detail=detail, **kwargs)
        # One flat listing instead of a walk of delimiter listings.
        bucket = self.bucket(name)
        full = f"{name}/{key}" if key else name
        prefix = key + "/" if key else ""
        out: dict[str, dict[str, Any]] = {}
        with os_errors(full):
            async for entry in self._entries(bucket, Query(prefix=prefix)):
                if entry.name.endswith("/"):
                    continue  # a "folder marker" object written by another tool
                info = self._file(name, entry)
                out[info["name"]] = info
                if withdirs:
                    parent = self._parent(info["name"])
                    while len(parent) > len(full) and parent not in out:
                        out[parent] = self._dir(parent)
                        parent = self._parent(parent)
        if key and not out:
            try:
                found = await self._info(full, refresh=True)
            except FileNotFoundError:
                found = None
            if found is not None and found["type"] == "file":
                out[full] = found
        elif withdirs and out:
            out[full] = self._dir(full)
        names = sorted(out)
        return {n: out[n] for n in names} if detail else names

    async def _modified(self, path: str) -> Any:
        info = await self._info(path)
        if info["type"] != "file" or info.get("LastModified") is None:
            raise (
                IsADirectoryError(path)
                if info["type"] != "file"
                else NotSupported(f"the backend reports no modification time for {path!r}")
            )
        return info["LastModified"]

    modified = sync_wrapper(_modified)

    def ukey(self, path: str) -> str:
        """A key that changes whenever the object does: its ETag (and version)."""
        info = self.info(path)
        return str(tokenize(info.get("ETag"), info.get("VersionId"), info["type"]))

    def checksum(self, path: str) -> int:
        return int(self.ukey(path), 16)

    async def _object_version_info(self, path: str, **kwargs: Any) -> list[dict[str, Any]]:
        """Every version of the object, newest first, as ``info()`` dicts with
        ``VersionId`` and ``IsLatest`` (s3fs's ``object_version_info``, in fsspec's keys)."""
        bucket, key, full = self._target(self._split_version(path)[0])
        with os_errors(full):
            return [
                {**self._file(bucket.name, entry), "IsLatest": entry.is_latest}
                async for entry in self._entries(bucket, Query(prefix=key), versions=True)
                if entry.name == key
            ]

    object_version_info = sync_wrapper(_object_version_info)

    # -- reads ----------------------------------------------------------------

    async def _cat_file(
        self,
        path: str,
        start: int | None = None,
        end: int | None = None,
        version_id: str | None = None,
        **kwargs: Any,
    ) -> bytes:
        """``data[start:end]`` as Python slices it: negative values count from the end,
        and a range past the end is b"". A whole-object read is verified."""
        bucket, key, full, version = self._versioned_target(path, version_id)
        with os_errors(full):
            try:
                return await self._slice(bucket, key, version, start, end, full)
            except ObjectNotFound:
                if version is None and await self._is_folder(bucket, key):
                    raise IsADirectoryError(errno.EISDIR, "a folder, not an object", full) from None
                raise

    async def _slice(
        self, bucket: Bucket, key: str, version: str | None, start: int | None, end: int | None, full: str
    ) -> bytes:
        if not start and end is None:
            return await self._download(bucket, key, version, 0, None)
        if (start or 0) < 0 or (end is not None and end < 0):
            return await self._cat_relative(bucket, key, version, start, end, full)
        start = start or 0
        if end is not None and end <= start:
            await bucket.attrs(key, version=version)  # b"" for an object that exists; FileNotFoundError else
            return b""
        try:
            return await self._download(bucket, key, version, start, None if end is None else end - start)
        except RangeNotSatisfiable:
            return b""

    @staticmethod
    async def _download(
        bucket: Bucket, key: str, version: str | None, offset: int, length: int | None
    ) -> bytes:
        """One download's bytes; a large one filled into one buffer as it arrives (read_all)."""
        async with bucket.download(key, version=version, offset=offset, length=length) as reader:
            left = (await reader.attrs()).size - offset  # the answer's headers: no extra request
            return await read_all(reader, left if length is None else min(length, left))

    async def _is_folder(self, bucket: Bucket, key: str) -> bool:
        """Whether objects live under ``key/`` (asked only once a read found no object)."""
        async for _ in self._entries(bucket, Query(prefix=key.rstrip("/") + "/", limit=1)):
            return True
        return False

    async def _cat_relative(
        self, bucket: Bucket, key: str, version: str | None, start: int | None, end: int | None, full: str
    ) -> bytes:
        """A range counted from the end (a zarr shard index, a parquet footer): the size
        comes from a HEAD, and the GET must answer for the same ETag, else it is retried."""
        for _ in range(SUFFIX_ATTEMPTS):
            attrs = await bucket.attrs(key, version=version)
            lo, hi, _step = slice(start, end).indices(attrs.size)
            if hi <= lo:
                return b""
            reader = bucket.download(key, version=version, offset=lo, length=hi - lo)
            try:
                data = await reader.read()
            except RangeNotSatisfiable:
                continue  # it shrank meanwhile
            if (await reader.attrs()).etag == attrs.etag:
                return data
        raise FileExpired(full, None)  # it changed under every attempt

    async def _get_file(
        self,
        rpath: str,
        lpath: str,
        callback: Any = DEFAULT_CALLBACK,
        version_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        if await anyio.Path(lpath).is_dir():
            return
        if not self.split_path(rpath)[1]:  # a bucket: a folder
            await anyio.Path(lpath).mkdir(parents=True, exist_ok=True)
            return
        bucket, key, full, version = self._versioned_target(rpath, version_id)
        with os_errors(full):
            try:
                attrs = await bucket.download_to(
                    key, lpath, version=version, on_progress=callback.relative_update
                )
            except ObjectNotFound:
                if version is None and (await self._info(full, refresh=True))["type"] == "directory":
                    await anyio.Path(lpath).mkdir(parents=True, exist_ok=True)
                    return
                raise
        callback.set_size(attrs.size)

    # -- writes ---------------------------------------------------------------

    async def _pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        bucket, key, full = self._target(path)
        with os_errors(full):
            async with bucket.upload(key, preconditions=self._preconditions(mode)) as w:
                await w.write(value)
        self.invalidate_cache(full)

    async def _put_file(
        self, lpath: str, rpath: str, callback: Any = DEFAULT_CALLBACK, mode: str = "overwrite", **kwargs: Any
    ) -> None:
        local = anyio.Path(lpath)
        if await local.is_dir():
            return  # folders exist by their objects
        bucket, key, full = self._target(rpath)
        callback.set_size((await local.stat()).st_size)
        writer = bucket.upload(key, preconditions=self._preconditions(mode))
        with os_errors(full):
            async with await anyio.open_file(lpath, "rb") as f, writer:
                while chunk := await f.read(PUT_CHUNK):
                    await writer.write(chunk)
                    callback.relative_update(len(chunk))
        self.invalidate_cache(full)

    @staticmethod
    def _preconditions(mode: str) -> Preconditions | None:
        if mode == "overwrite":
            return None
        if mode == "create":
            return Preconditions(not_exists=True)
        raise ValueError(f"mode must be 'overwrite' or 'create', got {mode!r}")

    async def _cp_file(self, path1: str, path2: str, version_id: str | None = None, **kwargs: Any) -> None:
        if not self.split_path(path1)[1]:  # a bucket: a folder, as fsspec's recursive copy expects
            raise FileNotFoundError(path1)
        src, src_key, full1, version = self._versioned_target(path1, version_id)
        dst, dst_key, full2 = self._target(path2)
        with os_errors(full1):
            await src.copy(src_key, dst_key, dst_bucket=dst, version=version)
        self.invalidate_cache(full2)

    async def _rm_file(self, path: str, version_id: str | None = None, **kwargs: Any) -> None:
        bucket, key, full, version = self._versioned_target(path, version_id)
        with os_errors(full):
            await bucket.remove(key, version=version)
        self.invalidate_cache(full)

    async def _rm(
        self,
        path: Any,
        recursive: bool = False,
        batch_size: int | None = None,
        maxdepth: int | None = None,
        **kwargs: Any,
    ) -> None:
        paths = await self._expand_path(path, recursive=recursive, maxdepth=maxdepth)
        by_bucket: dict[str, list[str]] = {}
        for p in paths:
            name, key = self.split_path(p)
            if key:  # a bucket itself is never removed
                by_bucket.setdefault(name, []).append(key)
        try:
            for name, keys in by_bucket.items():
                concurrency = batch_size if batch_size and batch_size > 0 else None
                async for err, key in self.bucket(name).remove_many(keys, concurrency=concurrency):
                    # Folders come back as not found (they are no objects); so does a key
                    # another client removed first, which is what was asked.
                    if err is not None and not isinstance(err, ObjectNotFound):
                        with os_errors(f"{name}/{key}"):
                            raise err
        finally:
            for p in paths:
                self.invalidate_cache(p, children=True)

    async def _mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        pass  # folders are key prefixes: they exist once an object is under them

    async def _makedirs(self, path: str, exist_ok: bool = False) -> None:
        pass

    async def _rmdir(self, path: str) -> None:
        pass

    def invalidate_cache(self, path: str | None = None, children: bool = False) -> None:
        if path is None:
            self.dircache.clear()
            return
        full = self._strip_protocol(path)
        if children:
            for cached in [p for p in self.dircache if p.startswith(full + "/")]:
                self.dircache.pop(cached, None)
        while full:
            self.dircache.pop(full, None)
            full = self._parent(full)
        self.dircache.pop("", None)

    # -- URLs -------------------------------------------------------------------

    async def _sign(self, path: str, expiration: int = 100, **kwargs: Any) -> str:
        bucket, key, full = self._target(path)
        with os_errors(full):
            return await bucket.signed_download_url(key, ttl=expiration)

    sign = sync_wrapper(_sign)

    # -- files ------------------------------------------------------------------

    async def _pin(self, bucket: Bucket, full: str, version: str | None) -> tuple[dict[str, Any], str | None]:
        """What a read file pins at open: the object's info (its ETag, its size; never
        from the cache) and the version it reads: the one asked for, else, on a
        version-aware filesystem over a versioned bucket, the current one (s3fs's rule)."""
        info = await self._info(full, refresh=True, version_id=version)
        if info["type"] != "file":
            raise IsADirectoryError(full)
        if version is None and self.version_aware and bucket.config.versioned:
            version = info.get("VersionId")
        return info, version

    _pin_sync = sync_wrapper(_pin)

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> AiobucketFile:
        return AiobucketFile(
            self,
            path,
            mode,
            block_size=block_size,
            autocommit=autocommit,
            cache_options=cache_options,
            **kwargs,
        )

    async def open_async(
        self, path: str, mode: str = "rb", version_id: str | None = None, **kwargs: Any
    ) -> AiobucketStreamedFile:
        """A streamed file on the running loop: ``await f.read(n)`` over one pinned,
        verified download, or ``await f.write(data)`` into one writer that ``close()``
        commits and an exception inside ``async with`` aborts."""
        bucket, key, full, version = self._versioned_target(path, version_id)
        if write_mode(mode) and version is not None:
            raise ValueError(f"a version is read, never written: drop version_id for mode {mode!r}")
        if mode == "rb":
            info, version = await self._pin(bucket, full, version)
            return AiobucketStreamedFile(
                self, bucket, key, full, mode, etag=info["ETag"], size=info["size"], version=version
            )
        if mode == "xb" and await self._exists(full, refresh=True):
            raise FileExistsError(full)
        return AiobucketStreamedFile(self, bucket, key, full, mode)
