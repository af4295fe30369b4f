"""A pass-through provider wrapper that watches response bodies, for leak and memory tests.

It wraps the real provider of a real backend (every byte still comes from the
server); it only records which bodies are open and how many bytes they have
delivered, and can inject one dropped connection or rewrite the attrs a get()
reports (to stand in for a backend that keeps a checksum).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from aiobucket import _runtime
from aiobucket.errors import ConnectionLost
from aiobucket.providers.base import Body, GetOptions
from aiobucket.types import ObjectAttrs


class SpyBody:
    def __init__(self, inner: Body, spy: Spy) -> None:
        self.inner = inner
        self.spy = spy
        spy.open_bodies.add(self)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.inner:
            self.spy.fetched += len(chunk)
            self.spy.on_chunk()
            if self.spy.drop_after is not None and self.spy.fetched >= self.spy.drop_after:
                self.spy.drop_after = None
                raise ConnectionLost("injected: connection dropped mid-body")
            yield chunk

    async def aclose(self) -> None:
        self.spy.open_bodies.discard(self)
        await self.inner.aclose()


class Spy:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.open_bodies: set[SpyBody] = set()
        self.gets: list[GetOptions] = []
        self.fetched = 0
        self.drop_after: int | None = None
        self.attrs_hook: Callable[[ObjectAttrs], ObjectAttrs] | None = None
        self.on_chunk: Callable[[], None] = lambda: None
        self.before_get: Callable[[GetOptions], Awaitable[None]] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def get(self, key: str, opts: GetOptions) -> tuple[ObjectAttrs, SpyBody]:
        self.gets.append(opts)
        if self.before_get is not None:
            await self.before_get(opts)
        attrs, body = await self.inner.get(key, opts)
        if self.attrs_hook is not None:
            attrs = self.attrs_hook(attrs)
        return attrs, SpyBody(body, self)


class Spies:
    def __init__(self) -> None:
        self.by_provider: dict[int, Spy] = {}

    @property
    def only(self) -> Spy:
        [spy] = self.by_provider.values()
        return spy

    def open_bodies(self) -> list[SpyBody]:
        return [b for spy in self.by_provider.values() for b in spy.open_bodies]


@contextmanager
def spying(monkeypatch: pytest.MonkeyPatch) -> Iterator[Spies]:
    """Wrap every provider the buckets use while inside, one Spy per real provider."""
    spies = Spies()
    real = _runtime.provider_for

    def provider_for(name: str, bucket_config: Any) -> tuple[Any, Any]:
        provider, settings = real(name, bucket_config)
        spy = spies.by_provider.get(id(provider))
        if spy is None:
            spy = spies.by_provider[id(provider)] = Spy(provider)
        return spy, settings

    with monkeypatch.context() as m:
        m.setattr(_runtime, "provider_for", provider_for)
        yield spies
