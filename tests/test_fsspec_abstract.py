"""fsspec's own abstract test suite (``fsspec.tests.abstract``) on every conformance backend.

The suite ships inside fsspec; it is run here as s3fs and gcsfs run it, by
subclassing ``AbstractFixtures``. Each test gets a fresh bucket from the
``backend`` fixture (tests/conftest.py), so it runs once per backend in
AIOBUCKET_BACKENDS. Object stores have no empty folders, so
``supports_empty_directories`` is False, as for s3fs. Calls are sync: they run on
fsspec's IO thread, whose loop gets its own providers (closed after each test).
"""

from __future__ import annotations

import posixpath
import types
from collections.abc import Iterator

import fsspec.asyn
import fsspec.tests.abstract as abstract
import pytest
from conftest import Backend

import aiobucket
from aiobucket.fsspec import AiobucketFileSystem


class AiobucketFixtures(abstract.AbstractFixtures):  # type: ignore[misc]
    @pytest.fixture
    def _bucket(self, backend: Backend) -> aiobucket.Bucket:
        return backend.bucket()

    @pytest.fixture
    def fs(self, _bucket: aiobucket.Bucket) -> Iterator[AiobucketFileSystem]:
        fs = AiobucketFileSystem(buckets=[_bucket], skip_instance_cache=True)
        yield fs
        fsspec.asyn.sync(fs.loop, aiobucket.aclose)  # the providers made on fsspec's IO loop

    @pytest.fixture
    def fs_path(self, _bucket: aiobucket.Bucket) -> str:
        return _bucket.name

    @pytest.fixture
    def fs_join(self) -> object:
        return posixpath.join

    @pytest.fixture
    def supports_empty_directories(self) -> bool:
        return False


def quirk(name: str, base: type, *tests: str) -> dict[str, object]:
    """Copies of ``base``'s tests marked as hitting the named server quirk (a strict xfail
    on the backends that declare it; see tests/conftest.py). Copies, so the marks stay
    off fsspec's own functions."""
    out: dict[str, object] = {}
    for test in tests:
        f = getattr(base, test)
        copy = types.FunctionType(f.__code__, f.__globals__, f.__name__, f.__defaults__, f.__closure__)
        out[test] = pytest.mark.quirk(name)(copy)
    return out


class TestCopy(abstract.AbstractCopyTests, AiobucketFixtures):  # type: ignore[misc]
    locals().update(
        quirk(
            "emptied_folder_listed",
            abstract.AbstractCopyTests,
            "test_copy_directory_to_existing_directory",
            "test_copy_directory_to_new_directory",
            "test_copy_glob_to_existing_directory",
        )
    )


class TestGet(abstract.AbstractGetTests, AiobucketFixtures):  # type: ignore[misc]
    pass


class TestPut(abstract.AbstractPutTests, AiobucketFixtures):  # type: ignore[misc]
    locals().update(
        quirk(
            "emptied_folder_listed",
            abstract.AbstractPutTests,
            "test_put_directory_to_existing_directory",
            "test_put_directory_to_new_directory",
            "test_put_glob_to_existing_directory",
        )
    )


class TestPipe(abstract.AbstractPipeTests, AiobucketFixtures):  # type: ignore[misc]
    pass


class TestOpen(abstract.AbstractOpenTests, AiobucketFixtures):  # type: ignore[misc]
    pass
