"""Provider instances, one per bucket per event loop, created on first use.

Drivers bind clients to the loop they were made on, so a provider made under
one ``asyncio.run`` must not be reused under the next; keying by loop makes
that impossible.

Invariants:

* A loop's providers are closed by ``aclose()``, or else when the loop shuts its
  async generators down (``asyncio.run``, ``asyncio.Runner`` and pytest-asyncio
  do, before closing it): each loop's cache comes with one async generator,
  suspended from the loop's first use, whose ``finally`` closes the cache's
  providers (``_closes_with_loop``). Their sessions, sockets and files are
  closed while the loop can still run the close, and nothing here keeps the
  finished loop: a cache is dropped from ``_by_loop`` as it closes.
* Nothing else lets a loop go: its providers' clients (aiohttp sessions, locks)
  and its closer hold it, so a weak key would never die; ``_by_loop`` is a plain
  dict. A loop closed without that shutdown (``loop.close()`` alone) is dropped
  when the next new loop first uses a bucket; its providers cannot be closed
  (a closed loop runs nothing): their sessions close quietly as they are
  collected (the transports' finalisers), their sockets with asyncio's warning.
* Finding a provider is two dict lookups (the loop's cache, then the bucket's entry).
* A cache holds the current configuration's providers only: a new ``configure()``
  generation drops the older ones at the next lookup (``_forget_older``), and each closes
  its clients quietly when the last operation using it lets it go.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from types import TracebackType
from typing import NoReturn

from . import config
from .config import BucketSettings
from .errors import BackendError, BucketError, InvalidArgument
from .keys import validate_key, validate_version
from .providers.base import Provider
from .providers.prefixed import PrefixedProvider
from .tracing import Span, start_span
from .types import BucketConfig

_Key = tuple[str, int, BucketConfig]
_Cache = dict[_Key, tuple[Provider, BucketSettings]]
_by_loop: dict[asyncio.AbstractEventLoop, tuple[_Cache, AsyncGenerator[None, None]]] = {}
"""Each loop's providers and their closer. Loops may run in threads: each changes only
its own entry, or drops another's once that loop is closed."""


def provider_for(name: str, bucket_config: BucketConfig) -> tuple[Provider, config.BucketSettings]:
    """The provider bucket ``name`` uses on the running loop, built lazily."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        raise InvalidArgument(f"bucket {name!r}: operations must run inside an asyncio event loop") from None
    entry = _by_loop.get(loop)
    cache = entry[0] if entry is not None else _first_use(loop)
    # The settings are cached with the provider: both change only with the generation.
    generation = config.generation()
    cache_key = (name, generation, bucket_config)
    found = cache.get(cache_key)
    if found is None:
        _forget_older(cache, generation)
        settings = config.resolve(name)
        provider = config.build_provider(name, settings, bucket_config)
        if settings.key_prefix:
            provider = PrefixedProvider(provider, settings.key_prefix)
        found = cache[cache_key] = (provider, settings)
    return found


def _forget_older(cache: _Cache, generation: int) -> None:
    """Drop the providers of earlier configurations, so a loop that outlives many
    ``configure()`` calls (a server that reloads its settings, a test session on one loop)
    does not keep a client per call. They are not closed here: an operation that began
    before the change may still be using one. It closes its clients quietly once collected."""
    for key in [k for k in cache if k[1] != generation]:
        del cache[key]


def _first_use(loop: asyncio.AbstractEventLoop) -> _Cache:
    """A new cache for ``loop``, with its closer started; loops closed without a shutdown are let go."""
    cache: _Cache = {}
    closer = _closes_with_loop(cache)
    # Its first step, run here: the loop's hook registers it for the shutdown, and it waits at its yield.
    with suppress(StopIteration):  # it yielded
        closer.asend(None).send(None)
    # list() copies the keys in one step, which another thread's loop cannot interleave with.
    for old in list(_by_loop):
        if old.is_closed():
            _by_loop.pop(old, None)
    _by_loop[loop] = (cache, closer)
    return cache


async def _closes_with_loop(cache: _Cache) -> AsyncGenerator[None, None]:
    """Suspended until the loop shuts its async generators down (or ``aclose()``), then
    closes the providers of ``cache``."""
    try:
        yield
    finally:
        await _close(cache)


async def _close(cache: _Cache) -> None:
    """Forget ``cache`` (before any await: one close per cache) and close its providers."""
    loop = asyncio.get_running_loop()
    entry = _by_loop.get(loop)
    if entry is not None and entry[0] is cache:  # only this loop's thread replaces it
        del _by_loop[loop]
    providers = [p for p, _ in cache.values()]
    cache.clear()
    errors: list[BaseException] = []
    for p in providers:
        try:
            await p.aclose()
        except Exception as exc:  # close the rest before reporting
            errors.append(exc)
    if errors:
        raise errors[0]


async def aclose() -> None:
    """Close every client and file handle aiobucket opened on this loop."""
    entry = _by_loop.get(asyncio.get_running_loop())
    if entry is None:
        return
    cache, closer = entry
    try:
        await _close(cache)
    finally:
        # Its own close finds nothing left (and nothing running, were the loop shutting
        # down meanwhile); closed here, it is not left for the loop to finalise in a task.
        await closer.aclose()


def map_error(exc: BaseException, bucket: str, key: str | None) -> BaseException:
    """Give an aiobucket error its context; wrap anything else that is an Exception.

    CancelledError and other BaseExceptions pass through untouched: they are
    control flow, not storage failures.
    """
    if isinstance(exc, BucketError):
        return exc.with_context(bucket=bucket, key=key)
    if isinstance(exc, Exception):
        err = BackendError(f"unexpected {type(exc).__name__}: {exc}", bucket=bucket, key=key)
        err.__cause__ = exc
        return err
    return exc


@asynccontextmanager
async def lifespan(app: object = None) -> AsyncIterator[None]:
    """Close aiobucket's clients when an app shuts down: ``FastAPI(lifespan=aiobucket.lifespan)``."""
    try:
        yield
    finally:
        await aclose()


class mapped_errors:
    """The one "map the error, clean up, re-raise" block of the semantic layer.

    Any exception leaving the block is given its bucket and key (see map_error);
    ``on_error`` (sync or async) sees the mapped error first. A CancelledError is
    re-raised as itself. Never swallows: ``__aexit__`` returns None.

    A hot path (each chunk of a read) uses it from a ``try``/``except`` instead, which
    costs nothing until something fails, where ``async with`` makes an object and two
    coroutines every time::

        except BaseException as exc:
            await mapped_errors(bucket, key, on_error).reraise(exc)
    """

    __slots__ = ("bucket", "key", "on_error")

    def __init__(
        self, bucket: str, key: str | None, on_error: Callable[[BaseException], object] | None = None
    ) -> None:
        self.bucket = bucket
        self.key = key
        self.on_error = on_error

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            return
        err = await self.mapped(exc)
        if err is not exc:
            raise err from exc

    async def reraise(self, exc: BaseException) -> NoReturn:
        """Raise ``exc`` mapped, as leaving the ``async with`` block with it would."""
        err = await self.mapped(exc)
        if err is exc:
            raise exc
        raise err from exc

    async def mapped(self, exc: BaseException) -> BaseException:
        """``exc`` with its context (map_error), once ``on_error`` has seen it; the caller raises it."""
        err = map_error(exc, self.bucket, self.key)
        if self.on_error is not None:
            pending = self.on_error(err)
            if inspect.isawaitable(pending):
                await pending
        return err


@asynccontextmanager
async def operation(op: str, bucket: str, key: str | None, **attributes: object) -> AsyncIterator[Span]:
    """A traced operation: a span that ends with the mapped error, or without one."""
    span = start_span(op, bucket, key, **attributes)
    async with mapped_errors(bucket, key, span.end):
        yield span
    span.end()


@dataclass(frozen=True, slots=True)
class Handle:
    """What the reader, writer, listing and copying need of a bucket: its name, its
    config, its validators and its provider, and nothing else of ``Bucket``."""

    name: str
    config: BucketConfig

    def provider(self) -> tuple[Provider, BucketSettings]:
        return provider_for(self.name, self.config)

    def key(self, key: str) -> str:
        try:
            return validate_key(key)
        except InvalidArgument as exc:
            raise exc.with_context(bucket=self.name) from None

    def version(self, version: str | None, key: str) -> str | None:
        if version is None:
            return None
        if not self.config.versioned:
            raise InvalidArgument(
                "version= needs a versioned bucket: declare it with BucketConfig(versioned=True)",
                bucket=self.name,
                key=key,
            )
        try:
            return validate_version(version)
        except InvalidArgument as exc:
            raise exc.with_context(bucket=self.name, key=key) from None
