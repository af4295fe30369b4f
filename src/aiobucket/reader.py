"""The streaming download reader.

It opens lazily on first use, never holds more than one chunk beyond what the
caller asked for, always releases the response body (at EOF, on error, on
cancellation and on ``aclose``), and resumes once if the connection drops
mid-body, pinned to the object's etag so two versions are never spliced.
A read of the whole object is checked against its stored checksum (see
``_checksum.WholeObjectCheck``): a mismatch raises IntegrityError instead of
handing out the chunk that completes the object, or instead of EOF.

It returns the stored bytes. With ``decompress=True`` a gzip-encoded object is
decoded on the way (``_decode.py``); the check and a resume still work on the
stored bytes. A body the server decoded already (GCS decompressive transcoding,
``body.decoded``) is handed out as it came: its stored checksum cannot apply.
"""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator
from dataclasses import replace
from types import TracebackType
from typing import TYPE_CHECKING, Self

from . import _runtime
from ._aio import release
from ._checksum import WholeObjectCheck
from ._decode import Gunzip, decoder_for
from .errors import ConnectionLost, InvalidArgument, ObjectChanged, PreconditionFailed
from .providers.base import Body, GetOptions, Provider, check_read
from .tracing import Span, start_span
from .types import ObjectAttrs

if TYPE_CHECKING:
    from ._runtime import Handle

__all__ = ["ChunkReader", "Reader"]


_WHOLE = GetOptions()


class _Empty:
    async def __aiter__(self) -> AsyncIterator[bytes]:
        return
        yield b""  # pragma: no cover - makes this an async generator

    async def aclose(self) -> None:
        return None


class ChunkReader:
    """What Reader and ParallelReader share: ``read(n)``, ``async for``, ``async with``,
    the leftovers of a short read, and feeding the whole-object check.

    A subclass opens in ``_open``, yields the next non-empty chunk (b"" at the end)
    from ``_next_chunk``, and releases everything in ``_finish``, which is safe to
    call more than once. ``_holding`` says whether it still holds a body or a task.
    """

    def __init__(self, bucket: Handle, key: str) -> None:
        self._bucket = bucket
        self.key = key
        self._pending = b""  # read but not yet handed out
        self._check: WholeObjectCheck | None = None  # set when this read covers the whole object
        self._eof = False
        self._closed = False
        self._span: Span | None = None
        self._attrs: ObjectAttrs | None = None  # set by _open

    async def attrs(self) -> ObjectAttrs:
        """The object's attributes (of the whole object, not the range). Opens the reader;
        once known they stay available, after EOF and after ``aclose`` too."""
        if self._attrs is None:
            await self._open()
        assert self._attrs is not None
        return self._attrs

    async def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (all that is left when ``n`` < 0); b"" at the end."""
        if isinstance(n, bool) or not isinstance(n, int):
            raise InvalidArgument(
                f"read() takes an int, got {type(n).__name__}", bucket=self._bucket.name, key=self.key
            )
        if n < 0:
            parts = [self._take(-1)] if self._pending else []
            while (chunk := await self._next_chunk()) != b"":
                parts.append(chunk)
            return parts[0] if len(parts) == 1 else b"".join(parts)  # one chunk: no copy
        if n == 0:
            return b""
        if not self._pending:
            self._pending = await self._next_chunk()
        return self._take(n)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> bytes:
        chunk = self._take(-1) or await self._next_chunk()
        if not chunk:
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        """Release every response body (a parallel read cancels its range requests first).
        Safe to call more than once."""
        await self._finish(None)

    async def __aenter__(self) -> Self:
        await self._open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._finish(exc)

    def __del__(self) -> None:
        # getattr: __init__ may have raised before setting anything.
        if not getattr(self, "_closed", True) and self._holding():
            warnings.warn(
                f"aiobucket {type(self).__name__} for {self.key!r} was neither exhausted nor closed; "
                "use 'async with bucket.download(...)' or call aclose()",
                ResourceWarning,
                stacklevel=1,
            )

    # -- for subclasses -------------------------------------------------------

    def _take(self, n: int) -> bytes:
        if n < 0 or n >= len(self._pending):
            out, self._pending = self._pending, b""
        else:
            out, self._pending = self._pending[:n], self._pending[n:]
        return out

    def _deliver(self, chunk: bytes) -> bytes:
        """Hand out ``chunk``: checked first, so the one completing a corrupt object raises."""
        if self._check is not None:
            self._check.update(chunk)
        if self._span is not None:
            self._span.add("bytes", len(chunk))
        return chunk

    async def _at_end(self) -> bytes:
        if self._check is not None:
            self._check.end()  # before _eof: a failed check leaves the reader closed, not at EOF
        self._eof = True
        await self._finish(None)
        return b""

    def _holding(self) -> bool:
        raise NotImplementedError

    async def _open(self) -> None:
        raise NotImplementedError

    async def _next_chunk(self) -> bytes:
        raise NotImplementedError

    async def _finish(self, error: BaseException | None) -> None:
        raise NotImplementedError


class Reader(ChunkReader):
    """Returned by ``Bucket.download``. Read with ``read(n)`` or ``async for chunk in reader``."""

    def __init__(
        self,
        bucket: Handle,
        key: str,
        version: str | None,
        offset: int,
        length: int | None,
        cache: GetOptions | None = None,
        decompress: bool = False,
    ) -> None:
        super().__init__(bucket, key)
        self._decompress = decompress
        self._gunzip: Gunzip | None = None
        self._encoding: str | None = None
        self._version = version
        self._offset = offset
        self._length = length
        self._cache = cache  # if_none_match / if_modified_since, checked on open only
        self._provider: Provider | None = None
        self._body: Body | None = None
        self._chunks: AsyncIterator[bytes] | None = None
        self._received = 0  # bytes of the range received so far
        self._resumed = False

    async def content_encoding(self) -> str | None:
        """The Content-Encoding of the bytes this reader returns: the stored one (``"gzip"``
        for a gzip-encoded object), or None once decoded (``decompress=True``, or an answer
        the server decompressed on the way). Opens the reader."""
        await self.attrs()
        return self._encoding

    def _holding(self) -> bool:
        return getattr(self, "_body", None) is not None

    async def _open(self) -> None:
        if self._closed:
            raise InvalidArgument(
                "the reader is closed; call download() again", bucket=self._bucket.name, key=self.key
            )
        if self._body is not None:
            return
        if self._version is None and not self._offset:  # most reads: no attribute to filter
            self._span = start_span("download", self._bucket.name, self.key)
        else:
            self._span = start_span(
                "download", self._bucket.name, self.key, version=self._version, offset=self._offset or None
            )
        try:
            self._provider, _ = self._bucket.provider()
            if self._version is None and not self._offset and self._length is None:
                opts = _WHOLE  # most reads: no frozen dataclass to build (a noticeable cost)
            else:
                opts = GetOptions(version=self._version, offset=self._offset, length=self._length)
            if self._cache is not None:
                opts = replace(self._cache, version=opts.version, offset=opts.offset, length=opts.length)
            if self._length == 0:
                self._attrs = await self._provider.head(self.key, self._version)
                check_read(self._attrs, replace(opts, offset=0), self.key)
                self._encoding = self._attrs.content_encoding
                self._body = _Empty()
            else:
                self._attrs, self._body = await self._provider.get(self.key, opts)
                self._encoding = self._attrs.content_encoding
                if getattr(self._body, "decoded", False) is True:
                    self._encoding = None  # decoded by the server: the stored checksum cannot apply
                else:
                    self._check = WholeObjectCheck.for_read(self._attrs, self._offset, self._length)
                    if self._decompress:
                        try:
                            self._gunzip = decoder_for(self._attrs.content_encoding)
                        except BaseException:
                            body, self._body = self._body, None
                            await release(body.aclose())
                            raise
                        self._encoding = None
        except BaseException as exc:  # _runtime.mapped_errors, without its cost when nothing fails
            await _runtime.mapped_errors(self._bucket.name, self.key, self._failed_open).reraise(exc)
        assert self._attrs is not None
        self._span.set(size=self._attrs.size, version=self._attrs.version)
        self._chunks = aiter(self._body)

    def _failed_open(self, err: BaseException) -> None:
        self._closed = True
        if self._span is not None:
            self._span.end(err)

    async def _next_chunk(self) -> bytes:
        """The next non-empty chunk, or b"" at the end (which closes the reader)."""
        if self._eof:
            return b""
        if self._chunks is None:  # not open yet (or closed: _open raises then)
            await self._open()
        assert self._chunks is not None
        try:
            while True:
                if self._gunzip is not None and (out := self._gunzip.take()):
                    return out
                try:
                    chunk = await anext(self._chunks)
                except StopAsyncIteration:
                    if self._gunzip is not None:
                        self._gunzip.end()
                    return await self._at_end()
                except ConnectionLost:
                    if self._resumed:
                        raise
                    self._resumed = True
                    await self._resume()
                    continue
                if chunk:
                    data = self._deliver(bytes(chunk))  # the check spans a resume: bytes stay contiguous
                    self._received += len(data)
                    if self._gunzip is None:
                        return data
                    self._gunzip.feed(data)  # decoded in slices above; the stored bytes were checked
        except BaseException as exc:  # _runtime.mapped_errors, without its cost on every chunk
            await _runtime.mapped_errors(self._bucket.name, self.key, self._finish).reraise(exc)

    async def _resume(self) -> None:
        """Reopen after a dropped connection, from where we were, pinned to the same object."""
        assert self._provider is not None and self._attrs is not None and self._body is not None
        body, self._body = self._body, None
        await release(body.aclose())
        length = None if self._length is None else self._length - self._received
        opts = GetOptions(
            version=self._attrs.version or self._version,
            offset=self._offset + self._received,
            length=length,
            if_match=self._attrs.etag,
        )
        try:
            _, self._body = await self._provider.get(self.key, opts)
        except PreconditionFailed as exc:
            raise ObjectChanged(
                "the object changed while it was being read; download it again",
                bucket=self._bucket.name,
                key=self.key,
            ) from exc
        self._chunks = aiter(self._body)
        if self._span is not None:
            self._span.set(resumed=True)

    async def _finish(self, error: BaseException | None) -> None:
        if self._closed and self._body is None:
            return
        self._closed = True
        body, self._body = self._body, None
        self._chunks = None
        try:
            if body is not None:
                await release(body.aclose())
        finally:
            if self._span is not None:
                self._span.set(complete=self._eof)
                self._span.end(error)
