"""Provider instances, one per bucket per event loop, created on first use.

Drivers bind clients to the loop they were made on, so a provider made under
one ``asyncio.run`` must not be reused under the next; keying by loop makes
that impossible. ``aclose()`` closes the current loop's providers.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from . import config
from .errors import BackendError, BucketError, InvalidArgument
from .providers.base import Provider
from .providers.prefixed import PrefixedProvider
from .types import BucketConfig

_Key = tuple[str, int, BucketConfig]
_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[_Key, Provider]] = (
    weakref.WeakKeyDictionary()
)


def provider_for(name: str, bucket_config: BucketConfig) -> tuple[Provider, config.BucketSettings]:
    """The provider bucket ``name`` uses on the running loop, built lazily."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        raise InvalidArgument(
            f"bucket {name!r}: operations must run inside an asyncio event loop"
        ) from None
    settings = config.resolve(name)
    cache = _by_loop.setdefault(loop, {})
    cache_key = (name, config.generation(), bucket_config)
    provider = cache.get(cache_key)
    if provider is None:
        provider = config.build_provider(name, settings, bucket_config)
        if settings.key_prefix:
            provider = PrefixedProvider(provider, settings.key_prefix)
        cache[cache_key] = provider
    return provider, settings


async def aclose() -> None:
    """Close every client and file handle aiobucket opened on this loop."""
    loop = asyncio.get_running_loop()
    providers = list(_by_loop.pop(loop, {}).values())
    errors: list[BaseException] = []
    for p in providers:
        try:
            await p.aclose()
        except Exception as exc:  # close the rest before reporting
            errors.append(exc)
    if errors:
        raise errors[0]


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
