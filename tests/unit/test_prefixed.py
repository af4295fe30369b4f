"""PrefixedProvider is the only key-prefix layer: it wraps every protocol method, and no
caller ever sees the prefix, in names or in error keys."""

from __future__ import annotations

import inspect
from datetime import timedelta
from typing import Any

import pytest

import aiobucket
from aiobucket import config
from aiobucket.errors import BucketError, ObjectNotFound
from aiobucket.providers.base import CopyOptions, GetOptions, PostPolicy, Provider, PutOptions
from aiobucket.providers.memory import MemoryProvider, MemoryStore
from aiobucket.providers.prefixed import PrefixedProvider

OPTS = PutOptions(content_type="text/plain")


def _protocol_methods() -> set[str]:
    return {
        name
        for name, value in vars(Provider).items()
        if not name.startswith("_") and (callable(value) or isinstance(value, property))
    }


def test_wrapper_implements_every_protocol_method() -> None:
    mine = {name for name in vars(PrefixedProvider) if not name.startswith("_")}
    assert _protocol_methods() - mine == set()
    assert isinstance(PrefixedProvider(MemoryProvider(MemoryStore(), False), "p/"), Provider)


class _Failing:
    """Raises an error naming the full (prefixed) key from every keyed call."""

    capabilities = aiobucket.Capabilities()

    def __init__(self) -> None:
        self.seen: list[str] = []

    def _err(self, key: str) -> BucketError:
        self.seen.append(key)
        return ObjectNotFound("nope", key=key)

    async def put(self, key: str, data: bytes, opts: Any) -> Any:
        raise self._err(key)

    async def start_multipart(self, key: str, opts: Any) -> Any:
        outer = self

        class Upload:
            async def put_part(self, number: int, data: Any) -> Any:
                raise outer._err(key)

            async def complete(self, parts: Any) -> Any:
                raise outer._err(key)

            async def abort(self) -> None:
                raise outer._err(key)

        return Upload()

    async def get(self, key: str, opts: Any) -> Any:
        raise self._err(key)

    async def head(self, key: str, version: Any = None, *, checksums: bool = False) -> Any:
        raise self._err(key)

    async def delete(self, key: str, version: Any = None) -> None:
        raise self._err(key)

    async def delete_many(self, keys: Any) -> list[BucketError | None]:
        return [self._err(k) for k in keys]

    async def list(self, prefix: str, **kw: Any) -> Any:
        raise self._err(prefix)
        yield  # pragma: no cover

    def can_copy_from(self, source: Any) -> bool:
        return True

    async def copy(self, source: Any, src: str, dst: str, opts: Any) -> Any:
        raise self._err(src)

    async def sign_url(self, key: str, *a: Any, **kw: Any) -> str:
        raise self._err(key)

    async def sign_post(self, key: str, policy: Any) -> Any:
        raise self._err(key)

    async def aclose(self) -> None:
        return None


@pytest.mark.anyio
async def test_every_error_loses_the_prefix() -> None:
    inner = _Failing()
    p = PrefixedProvider(inner, "pp/")  # type: ignore[arg-type]
    calls: list[Any] = [
        lambda: p.put("k", b"", OPTS),
        lambda: p.get("k", GetOptions()),
        lambda: p.head("k"),
        lambda: p.delete("k"),
        lambda: p.copy(p, "k", "d", CopyOptions()),
        lambda: p.sign_url("k", "GET", timedelta(1)),
        lambda: p.sign_post("k", PostPolicy(ttl=timedelta(1))),
    ]
    for call in calls:
        with pytest.raises(ObjectNotFound) as info:
            await call()
        assert info.value.key == "k"
    upload = await p.start_multipart("k", OPTS)
    for step in (lambda: upload.put_part(1, b"x"), lambda: upload.complete([]), upload.abort):
        with pytest.raises(ObjectNotFound) as info:
            await step()
        assert info.value.key == "k", "a multipart error must report the key the caller used"
    [err] = await p.delete_many(["k"])
    assert err is not None and err.key == "k"
    with pytest.raises(ObjectNotFound) as info:
        async for _ in p.list(""):
            pass
    assert info.value.key is None or not info.value.key.startswith("pp/")
    assert all(k.startswith("pp/") for k in inner.seen), "the inner provider sees full keys"


@pytest.mark.parametrize(
    "value",
    [
        "s3://cloud?prefix=pp/&endpoint=http://127.0.0.1:1",
        {"url": "s3://cloud?endpoint=http://127.0.0.1:1", "key_prefix": "pp/"},
    ],
)
def test_url_prefix_is_the_key_prefix(value: Any) -> None:
    s = config.settings_from("b", value)
    assert s.key_prefix == "pp/"
    assert "prefix" not in s.url


def test_public_url_is_the_same_for_both_spellings() -> None:
    bucket = aiobucket.Bucket("pub", aiobucket.BucketConfig(public=True))
    urls = []
    for value in (
        {"url": "s3://cloud?prefix=pp/", "public_base_url": "https://cdn.test"},
        {"url": "s3://cloud", "key_prefix": "pp/", "public_base_url": "https://cdn.test"},
        {"url": "gs://cloud?prefix=pp/", "public_base_url": "https://cdn.test"},
    ):
        with config.override({"pub": value}):
            urls.append(bucket.public_url("k"))
    assert urls == ["https://cdn.test/pp/k"] * 3


@pytest.mark.parametrize("url", ["s3://cloud?prefix=a/", "gs://cloud?prefix=a/"])
def test_prefix_given_twice_is_refused_on_every_scheme(url: str) -> None:
    with pytest.raises(aiobucket.InvalidArgument, match="key prefix once"):
        config.settings_from("b", {"url": url, "key_prefix": "b/"})


def test_wrapper_methods_match_protocol_signatures() -> None:
    for name in _protocol_methods() - {"capabilities"}:
        want = inspect.signature(getattr(Provider, name))
        got = inspect.signature(getattr(PrefixedProvider, name))
        assert list(want.parameters) == list(got.parameters), name
