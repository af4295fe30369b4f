"""The streaming upload writer: semantics decided once, for every backend.

A stream is cut into parts of ``part_size``. An object that fits in one part
goes out as a single ``put``; anything larger becomes a multipart upload with
up to ``concurrency`` parts in flight. Any failure, exception or cancellation
aborts: in-flight parts are cancelled and the upload is thrown away, shielded
from further cancellation.

Memory: the writer owns at most ``concurrency + 1`` part buffers (one filling,
the rest in flight), allocated as needed, filled in place and reused once their
part is uploaded; so memory stays near part_size x (concurrency + 1) without
allocator tuning. The first buffer grows with the data, so a small object never
allocates a whole part. A provider's ``put_part`` must not keep the buffer after
it returns (copy what it keeps).

The commit (the single put, or completing the multipart upload) is the point
of no return. A cancellation that arrives before it aborts the upload. One that
arrives during it is passed to the commit: a provider ends a retry backoff at
once (nothing is stored) and lets a request that is already on the wire finish
before re-raising (never half done), so the object is then stored whole or not
at all. Either way no partial object is ever visible.

``write()`` is a plain method returning a coroutine-like ``PendingWrite`` that
starts the write when awaited (or stepped by a task). Creating one registers
it with the writer, so a write that was never awaited is seen: ``close()``
refuses to commit (InvalidArgument, and the upload is aborted), and so does a
later write that would overtake it. Python's "never awaited" warning alone
would let a truncated object be stored.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import warnings
from collections.abc import Coroutine, Generator
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn, Self

from . import _runtime
from ._aio import cancel_and_wait, run_to_completion
from .errors import InvalidArgument, NotSupported, UploadAborted, WriterClosed
from .providers.base import Capabilities, MultipartUpload, Part, Provider, PutOptions
from .tracing import Span, start_span
from .types import ObjectAttrs, Preconditions, UploadAttrs

if TYPE_CHECKING:
    from ._runtime import Handle

__all__ = ["PendingWrite", "Writer"]

TASK_NAME = "aiobucket-upload"  # every task the writer starts, so tests can prove none leak
_NO_ATTRS = UploadAttrs()  # frozen: one shared default instead of one per upload
_NO_PRECONDITIONS = Preconditions()
_BYTES_LIKE = (bytes, bytearray, memoryview)  # a tuple: ``A | B`` would build a union per call
_NO_CAPS = Capabilities()  # until the first I/O; frozen, and building one costs more than a Writer


class _State(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"
    ABORTED = "aborted"


# Read as module globals: on Python 3.11 each _State.X goes through EnumType.__getattr__.
_OPEN, _CLOSED, _ABORTED = _State.OPEN, _State.CLOSED, _State.ABORTED


def _guess_type(key: str) -> str:
    """The content type ``mimetypes`` guesses for ``key``, else application/octet-stream."""
    name = key.rpartition("/")[2]
    if ":" in key:  # mimetypes reads a URL scheme (data:) out of it: no shortcut
        return _guess_by_name(key)
    # The guess depends only on the name's extensions ("photo-17.tar.gz" as "x.tar.gz"),
    # so a few cache entries serve every key.
    stem = name.lstrip(".")
    dot = stem.find(".")
    return _guess_by_name("x" + stem[dot:] if dot >= 0 else "x")


@functools.lru_cache(maxsize=512)
def _guess_by_name(name: str) -> str:
    import mimetypes  # here, not at the top: it is a noticeable part of `import aiobucket`

    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def fit_parts(part_size: int, size: int, caps: Capabilities) -> int:
    """``part_size``, grown (to a multiple the store takes) so that ``size`` bytes fit in
    the store's ``max_parts`` (1,000 on Scaleway): a known size never fails at the last part."""
    need = -(-size // caps.max_parts)
    if part_size >= need:
        return part_size
    step = caps.part_size_multiple
    return -(-need // step) * step


def _non_negative(name: str, value: object, bucket: str, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidArgument(f"{name} must be an int >= 0, got {value!r}", bucket=bucket, key=key)
    return value


def _positive(name: str, value: object, bucket: str, key: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgument(f"{name} must be a positive int, got {value!r}", bucket=bucket, key=key)
    return value


def _byte_view(data: bytes | bytearray | memoryview, bucket: str, key: str) -> memoryview:
    """``data`` as a flat view of bytes; a non-contiguous view is copied first."""
    try:
        view = memoryview(data)
    except ValueError as exc:  # a released memoryview
        raise InvalidArgument(f"write() cannot read this memoryview: {exc}", bucket=bucket, key=key) from None
    if not view.c_contiguous:
        view = memoryview(view.tobytes())  # strided or Fortran-ordered: copied in C order
    return view.cast("B")


_CONDITIONAL = {
    "put": ("conditional_put", "conditional_put"),
    "multipart": ("conditional_multipart", "conditional_complete"),
    "copy": ("conditional_copy", "conditional_copy"),
}
"""Per write path: the Capabilities field, and the S3 bucket option that sets it."""


def refuse_unhonoured(
    caps: Capabilities, pre: Preconditions, path: str, bucket: str, key: str | None
) -> None:
    """NotSupported, before any I/O, for preconditions the store would silently ignore.

    A store that accepts If-None-Match/If-Match and ignores them would overwrite
    quietly: the worst thing a storage SDK can do. So a bucket whose capabilities
    say the store does not honour them refuses the write instead.
    """
    if not pre:
        return
    field, option = _CONDITIONAL[path]
    if getattr(caps, field):
        return
    what = "not_exists" if pre.not_exists else "if_match"
    kind = {"put": "a single upload", "multipart": "a multipart upload", "copy": "a server-side copy"}[path]
    store = caps.store or "this backend"
    hint = ""
    if caps.store:
        hint = (
            f" If the store does honour them (check with `aiobucket doctor {bucket}`), set the bucket's "
            f"provider= to the right store or the option {option}=native; {option}=precheck checks with "
            "a HEAD first and leaves a race window."
        )
    raise NotSupported(
        f"{store} does not honour the Preconditions({what}=...) of {kind} (the store would accept and "
        f"ignore If-None-Match/If-Match and overwrite), so nothing was sent.{hint}",
        bucket=bucket,
        key=key,
    )


def check_write_options(attrs: object, preconditions: object, bucket: str, key: str) -> None:
    """The one type check of a write's ``attrs`` and ``preconditions`` (upload and copy)."""
    if attrs is not None and not isinstance(attrs, UploadAttrs):
        raise InvalidArgument(
            f"attrs must be UploadAttrs, got {type(attrs).__name__}", bucket=bucket, key=key
        )
    if preconditions is not None and not isinstance(preconditions, Preconditions):
        raise InvalidArgument(
            f"preconditions must be Preconditions, got {type(preconditions).__name__}", bucket=bucket, key=key
        )


class PendingWrite(Coroutine[Any, Any, int]):
    """What ``Writer.write()`` returns: await it (it gives ``len(data)``).

    A coroutine in every way that matters (``await``, ``asyncio.create_task``,
    ``gather``), but it exists from the moment write() is called, before it
    runs: the writer keeps the ones not yet started and refuses to commit
    while any is left, so a forgotten ``await`` cannot store the wrong bytes.
    """

    __slots__ = ("_data", "_inner", "_writer", "seq")

    def __init__(self, writer: Writer, data: bytes | bytearray | memoryview, seq: int) -> None:
        self._writer = writer
        self._data: bytes | bytearray | memoryview | None = data
        self._inner: Coroutine[Any, Any, int] | None = None
        self.seq = seq

    def _start(self) -> Coroutine[Any, Any, int]:
        """The real coroutine, made on first use: from then on it is not "unstarted"."""
        if self._inner is None:
            data, self._data = self._data, None
            assert data is not None
            self._writer._unstarted.pop(self.seq, None)
            self._inner = self._writer._write(data, self.seq)
        return self._inner

    def __await__(self) -> Generator[Any, None, int]:
        return self._start().__await__()

    def send(self, value: Any) -> Any:
        return self._start().send(value)

    def throw(self, typ: Any, val: Any = None, tb: TracebackType | None = None) -> Any:
        inner = self._start()
        if val is None and tb is None:
            return inner.throw(typ)
        return inner.throw(typ, val, tb)  # pragma: no cover - the deprecated 3-argument form

    def close(self) -> None:
        # Closed before it ran, it never runs: discarded on purpose, not forgotten.
        self._start().close()


class Writer:
    """Returned by ``Bucket.upload``. Does no I/O until the first write or close."""

    # The state every writer starts in: immutable values, read from the class until a
    # writer sets its own (a store per field per upload is a noticeable share of a small
    # upload's CPU). The mutable state is made per writer, in __init__.
    _state = _OPEN
    _result: ObjectAttrs | None = None
    _error: BaseException | None = None
    _user_aborted = False
    _busy = False
    _fill = 0  # bytes of _buf in use
    _buffers = 1  # part buffers allocated so far, the growing first one included
    _size = 0
    _writes = 0  # write() calls so far: each PendingWrite's sequence number
    # Set up on first I/O:
    _provider: Provider | None = None
    _caps = _NO_CAPS
    _part_size = 0
    _concurrency = 1
    _span: Span | None = None
    _upload: MultipartUpload | None = None
    _next_part = 1
    _cleanup: asyncio.Future[None] | None = None

    def __init__(
        self,
        bucket: Handle,
        key: str,
        attrs: UploadAttrs | None,
        preconditions: Preconditions | None,
        part_size: int | None,
        concurrency: int | None,
        size: int | None = None,
    ) -> None:
        check_write_options(attrs, preconditions, bucket.name, key)
        self._bucket = bucket
        self.key = key
        self._attrs_in = attrs or _NO_ATTRS
        self._pre = preconditions or _NO_PRECONDITIONS
        self._part_size_arg = _positive("part_size", part_size, bucket.name, key)
        self._concurrency_arg = _positive("concurrency", concurrency, bucket.name, key)
        self._known_size = None if size is None else _non_negative("size", size, bucket.name, key)
        self._buf = bytearray()
        self._free: list[bytearray] = []  # part buffers whose upload finished, for reuse
        self._owner: dict[asyncio.Task[Part], bytearray] = {}
        self._unstarted: dict[int, PendingWrite] = {}  # write() calls not yet awaited
        self._parts: list[Part] = []
        self._tasks: set[asyncio.Task[Part]] = set()

    # -- public API ---------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once the upload was committed or aborted."""
        return self._state is not _OPEN

    @property
    def bytes_written(self) -> int:
        return self._size

    def write(self, data: bytes | bytearray | memoryview) -> PendingWrite:
        """Buffer ``data``; full parts are uploaded as they fill. ``await`` it: gives len(data).

        A write must be awaited before the next one and before close(): one that
        never runs makes close() raise InvalidArgument and abort the upload.
        """
        if not isinstance(data, _BYTES_LIKE):
            raise InvalidArgument(
                f"write() takes bytes, bytearray or memoryview, got {type(data).__name__}; encode str first",
                bucket=self._bucket.name,
                key=self.key,
            )
        self._writes += 1
        pending = PendingWrite(self, data, self._writes)
        if self._state is _OPEN:
            self._unstarted[self._writes] = pending
        return pending

    async def _write(self, data: bytes | bytearray | memoryview, seq: int) -> int:
        # (While another call runs, _enter refuses this one and leaves the writer alone.)
        if self._state is _OPEN and not self._busy and self._unstarted and min(self._unstarted) < seq:
            await self._refuse_unawaited()
        view = _byte_view(data, self._bucket.name, self.key)  # bad input: raised, nothing aborted
        self._enter("write")
        try:
            self._start()
            n, pos, ps = len(view), 0, self._part_size
            while pos < n:
                if self._fill == ps:
                    # Ship a full buffer only once more data follows it, so a
                    # stream of exactly one part still goes out as a single put.
                    await self._send_part()
                take = min(ps - self._fill, n - pos)
                self._copy_in(view[pos : pos + take])
                pos += take
                self._size += take
            return n
        except BaseException as exc:  # _runtime.mapped_errors, without its cost when nothing fails
            await _runtime.mapped_errors(self._bucket.name, self.key, self._fail).reraise(exc)
        finally:
            self._busy = False

    async def close(self) -> ObjectAttrs:
        """Commit the upload and return the stored object's attributes.

        Calling it again returns the same attributes; after an abort it raises
        the abort's error.
        """
        if self._state is _CLOSED and self._result is not None:
            return self._result
        if self._state is _OPEN and not self._busy and self._unstarted:
            await self._refuse_unawaited()
        self._enter("close")
        try:
            self._start()
            assert self._provider is not None
            # A cancellation already pending, or requested right as close() starts (by a task
            # that runs in this loop turn), must abort, not race the commit.
            await asyncio.sleep(0)
            if self._upload is None:
                refuse_unhonoured(self._caps, self._pre, "put", self._bucket.name, self.key)
                data = bytes(memoryview(self._buf)[: self._fill])
                self._buf, self._fill = bytearray(), 0
                commit = self._provider.put(self.key, data, self._opts())
            else:
                if self._fill:
                    await self._send_part()
                await self._drain(0)
                self._parts.sort(key=lambda p: p.number)
                commit = self._upload.complete(self._parts)
            # Awaited in this task, so a cancel reaches the commit itself (see the
            # module docs): the provider decides what is on the wire.
            return self._committed(await commit)
        except BaseException as exc:  # _runtime.mapped_errors, without its cost when nothing fails
            await _runtime.mapped_errors(self._bucket.name, self.key, self._fail).reraise(exc)
        finally:
            self._busy = False

    def _committed(self, result: ObjectAttrs) -> ObjectAttrs:
        self._state = _CLOSED
        self._result = result
        self._upload = None
        if self._span is not None:
            self._span.set(size=result.size, version=result.version, parts=len(self._parts) or 1)
            self._span.end()
        return result

    async def abort(self, error: BaseException | None = None) -> None:
        """Discard the upload. Later write() and close() raise ``error`` (or UploadAborted)."""
        if self._state is _CLOSED:
            raise WriterClosed(
                "cannot abort: the upload was already committed; use remove() to delete it",
                bucket=self._bucket.name,
                key=self.key,
            )
        if self._state is _OPEN:
            self._user_aborted = True
            self._error = error or UploadAborted(
                "upload aborted by abort()", bucket=self._bucket.name, key=self.key
            )
        await self._abort_shielded()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            if not (self._state is _ABORTED and self._user_aborted):
                await self.close()
            return
        if self._state is _OPEN:
            await self._fail(exc, in_user_code=True)

    def __del__(self) -> None:
        # getattr: __init__ may have raised before setting anything.
        if getattr(self, "_state", None) is not _OPEN:
            return
        if getattr(self, "_unstarted", None):  # no coroutine exists to warn, so the writer does
            warnings.warn(
                f"aiobucket Writer for {self.key!r}: write() was never awaited and the upload was "
                "never closed; nothing was stored",
                RuntimeWarning,
                stacklevel=1,
            )
        elif getattr(self, "_provider", None) is not None:
            warnings.warn(
                f"aiobucket Writer for {self.key!r} was never closed or aborted; "
                "use 'async with bucket.upload(...)'",
                ResourceWarning,
                stacklevel=1,
            )

    # -- internals ----------------------------------------------------------

    async def _refuse_unawaited(self) -> NoReturn:
        """A write() was never awaited: committing now would store the wrong bytes."""
        n = len(self._unstarted)
        self._unstarted.clear()
        err = InvalidArgument(
            f"{n} write() call{'s were' if n > 1 else ' was'} never awaited, so the upload would miss "
            "data; it was aborted and nothing was stored. Write 'await w.write(data)'",
            bucket=self._bucket.name,
            key=self.key,
        )
        await self._fail(err)
        raise err

    def _enter(self, op: str) -> None:
        if self._state is _ABORTED:
            assert self._error is not None
            raise self._error
        if self._state is _CLOSED:
            raise WriterClosed(
                f"cannot {op}: the upload was already closed; start a new upload",
                bucket=self._bucket.name,
                key=self.key,
            )
        if self._busy:
            raise InvalidArgument(
                f"cannot {op}: another write or close on this writer is still running; "
                "await each call before the next",
                bucket=self._bucket.name,
                key=self.key,
            )
        self._busy = True

    def _start(self) -> None:
        """First I/O: resolve the provider, sizes and the trace span."""
        if self._provider is not None:
            return
        provider, settings = self._bucket.provider()
        caps = provider.capabilities
        part_size = self._part_size_arg or settings.part_size or caps.default_part_size
        if part_size < caps.min_part_size or part_size % caps.part_size_multiple:
            raise InvalidArgument(
                f"part_size {part_size} does not suit this backend: it must be at least "
                f"{caps.min_part_size} and a multiple of {caps.part_size_multiple}",
                bucket=self._bucket.name,
                key=self.key,
            )
        largest, problem = caps.max_part_size, ""
        if largest is not None and part_size > largest:
            problem = (
                f"part_size {part_size} is above this backend's largest part ({largest} bytes); "
                "pass a part_size of at most that"
            )
        elif self._known_size is not None:
            part_size = fit_parts(part_size, self._known_size, caps)
            if largest is not None and part_size > largest:
                problem = (
                    f"size {self._known_size} is above this backend's largest object "
                    f"({caps.max_parts} parts of {largest} bytes)"
                )
        if problem:
            raise InvalidArgument(problem, bucket=self._bucket.name, key=self.key)
        self._caps = caps
        self._part_size = part_size
        self._concurrency = self._concurrency_arg or settings.concurrency or caps.default_concurrency
        if not caps.parallel_parts:
            self._concurrency = 1
        self._provider = provider
        self._span = start_span("upload", self._bucket.name, self.key, part_size=part_size)

    def _opts(self) -> PutOptions:
        a = self._attrs_in
        content_type = a.content_type or _guess_type(self.key)
        return PutOptions(
            content_type=content_type,
            cache_control=a.cache_control,
            content_disposition=a.content_disposition,
            metadata=a.metadata,
            preconditions=self._pre,
            content_encoding=a.content_encoding,
        )

    async def _send_part(self) -> None:
        """Upload the buffer as the next part, waiting for a free slot before taking
        it, so at most ``concurrency`` parts plus one buffer are ever held."""
        assert self._provider is not None
        if self._next_part > self._caps.max_parts:
            raise InvalidArgument(
                f"the stream needs more than {self._caps.max_parts} parts of {self._part_size} bytes; "
                "pass a larger part_size to upload()",
                bucket=self._bucket.name,
                key=self.key,
            )
        upload = self._upload or await self._start_multipart(self._provider)
        await self._drain(self._concurrency - 1)
        # Hand the filled buffer over without copying it; it comes back to the pool
        # when its part is uploaded.
        buf, fill = self._buf, self._fill
        data = buf if fill == len(buf) else memoryview(buf)[:fill]
        self._buf, self._fill = self._next_buffer(), 0
        number, self._next_part = self._next_part, self._next_part + 1
        if self._concurrency == 1:
            self._parts.append(await upload.put_part(number, data))
            self._free.append(buf)
        else:
            task = asyncio.create_task(upload.put_part(number, data), name=TASK_NAME)
            self._tasks.add(task)
            self._owner[task] = buf

    def _next_buffer(self) -> bytearray:
        """A part buffer from the pool, or a new one while fewer than concurrency + 1 exist."""
        if self._free:
            return self._free.pop()
        self._buffers += 1
        assert self._buffers <= self._concurrency + 1, "more part buffers than concurrency + 1"
        return bytearray(self._part_size)

    def _copy_in(self, chunk: memoryview) -> None:
        end = self._fill + len(chunk)
        if len(self._buf) >= end:
            self._buf[self._fill : end] = chunk  # a pool buffer, filled in place
        else:
            self._buf += chunk  # the first buffer grows: a small object stays small
        self._fill = end

    async def _start_multipart(self, provider: Provider) -> MultipartUpload:
        """Start the upload to completion even if cancelled, so abort() can find it:
        an upload cancelled mid-start would otherwise be orphaned on the server."""
        refuse_unhonoured(self._caps, self._pre, "multipart", self._bucket.name, self.key)
        task = asyncio.create_task(provider.start_multipart(self.key, self._opts()), name=TASK_NAME)
        try:
            self._upload = await run_to_completion(task)
        except asyncio.CancelledError:
            if not task.cancelled() and task.exception() is None:
                self._upload = task.result()
            raise
        return self._upload

    async def _drain(self, max_in_flight: int) -> None:
        """Wait until at most ``max_in_flight`` parts are uploading; raise the first failure."""
        while len(self._tasks) > max_in_flight:
            done, self._tasks = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
            failure: BaseException | None = None
            for task in done:  # look at every finished task, so no exception goes unretrieved
                self._free.append(self._owner.pop(task))
                exc = task.exception() if not task.cancelled() else asyncio.CancelledError()
                if exc is None:
                    self._parts.append(task.result())
                elif failure is None:
                    failure = exc
            if failure is not None:
                raise failure

    async def _fail(self, exc: BaseException, *, in_user_code: bool = False) -> None:
        """Abort because of ``exc``; remember an error that later calls re-raise.

        A failure of our own write/close is re-raised as itself; an exception from
        the user's ``async with`` body or a cancellation becomes UploadAborted.
        """
        if self._state is not _OPEN:
            return
        if isinstance(exc, Exception) and not in_user_code:
            # The same error write()/close() raise now, so one except clause catches both.
            self._error = _runtime.map_error(exc, self._bucket.name, self.key)
            if self._error is not exc:
                self._error.__cause__ = exc
        else:
            err = UploadAborted(
                f"upload aborted by {type(exc).__name__}", bucket=self._bucket.name, key=self.key
            )
            err.__cause__ = exc
            self._error = err
        await self._abort_shielded(exc)

    async def _abort_shielded(self, cause: BaseException | None = None) -> None:
        self._state = _ABORTED
        self._buf, self._fill, self._free = bytearray(), 0, []
        self._unstarted.clear()  # they raise the abort's error if awaited later
        if self._cleanup is None:
            self._cleanup = asyncio.create_task(self._cleanup_upload(), name=TASK_NAME)
            if self._span is not None:
                self._span.end(cause or self._error)
        await run_to_completion(self._cleanup)

    async def _cleanup_upload(self) -> None:
        tasks, self._tasks = self._tasks, set()
        self._owner.clear()
        await cancel_and_wait(tasks)  # the abort reason takes precedence
        upload, self._upload = self._upload, None
        if upload is not None:
            try:
                await upload.abort()
            except Exception as exc:  # the upload is already failing; report, don't mask
                warnings.warn(
                    f"aiobucket: aborting the multipart upload of {self.key!r} failed: {exc!r}",
                    RuntimeWarning,
                    stacklevel=1,
                )
