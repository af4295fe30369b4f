"""fsspec's own abstract test suite (``fsspec.tests.abstract``) on every conformance backend.

The suite ships inside fsspec; it is run here as s3fs and gcsfs run it, by
subclassing ``AbstractFixtures``. Each test gets a fresh bucket from the
``backend`` fixture (tests/conftest.py), so it runs once per backend in
AIOBUCKET_BACKENDS. Object stores have no empty folders, so
``supports_empty_directories`` is False, as for s3fs. Calls are sync: they run on
fsspec's IO thread, whose loop gets its own providers (closed after each test).

Every test runs on every backend, except the ``*_glob_edge_cases`` tables (32 cases each,
96 of the 137 tests per backend, about half of the suite's time): they run on one backend
per provider (``GLOB_TABLE_BACKENDS``), not on the other S3-compatible backends (rgw,
moto, aws-kms, aws-region, ministack, b2, garage: the S3 provider again, against other
servers and personas). What those tables vary is fsspec's own glob expansion; what they
ask of a backend (prefix listings, ranged and whole reads, copies) every other test here
runs on every backend, glob copies and gets included, and tests/conformance/ proves per
backend. The narrowing is a parametrization, so the test ids say which backends ran.
"""

from __future__ import annotations

import posixpath
import types
from collections.abc import Iterator

import fsspec.asyn
import fsspec.tests.abstract as abstract
import pytest
from conftest import Backend, _selected

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


ONE_PER_PROVIDER = ("memory", "local", "s3", "gcs", "azure")
GLOB_TABLE_BACKENDS = [b for b in _selected() if b in ONE_PER_PROVIDER] or _selected()[:1]
"""One backend per provider: where the glob edge-case tables run (see the module doc); when
AIOBUCKET_BACKENDS names none of them, the first one named, so the tables always run."""


def _copy(f: types.FunctionType) -> types.FunctionType:
    """A copy of fsspec's test function (with its marks), so marks added stay off fsspec's own."""
    copy = types.FunctionType(f.__code__, f.__globals__, f.__name__, f.__defaults__, f.__closure__)
    copy.__dict__.update({k: list(v) if k == "pytestmark" else v for k, v in f.__dict__.items()})
    return copy


def on_glob_table_backends(base: type, test: str) -> dict[str, object]:
    """``base``'s glob edge-case table, parametrized over GLOB_TABLE_BACKENDS only."""
    mark = pytest.mark.parametrize("backend", GLOB_TABLE_BACKENDS, indirect=True)
    return {test: mark(_copy(getattr(base, test)))}


def quirk(name: str, base: type, *tests: str) -> dict[str, object]:
    """Copies of ``base``'s tests marked as hitting the named server quirk (a strict xfail
    on the backends that declare it; see tests/conftest.py). Copies, so the marks stay
    off fsspec's own functions."""
    return {test: pytest.mark.quirk(name)(_copy(getattr(base, test))) for test in tests}


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
    locals().update(on_glob_table_backends(abstract.AbstractCopyTests, "test_copy_glob_edge_cases"))


class TestGet(abstract.AbstractGetTests, AiobucketFixtures):  # type: ignore[misc]
    locals().update(on_glob_table_backends(abstract.AbstractGetTests, "test_get_glob_edge_cases"))


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
    locals().update(on_glob_table_backends(abstract.AbstractPutTests, "test_put_glob_edge_cases"))


class TestPipe(abstract.AbstractPipeTests, AiobucketFixtures):  # type: ignore[misc]
    def test_pipe_exclusive(self, fs: AiobucketFileSystem, fs_target: str, backend: Backend) -> None:
        """fsspec's test where the backend declares create-only writes (Capabilities.
        conditional_put); elsewhere ``mode="create"`` must raise NotSupported, store nothing."""
        bucket = fs.bucket(fs.split_path(fs_target)[0])
        if fsspec.asyn.sync(fs.loop, _honours_create_only, backend, bucket):
            super().test_pipe_exclusive(fs, fs_target)
            return
        with pytest.raises(aiobucket.NotSupported):
            fs.pipe_file(fs_target, b"data", mode="create")
        assert not fs.exists(fs_target)


async def _honours_create_only(backend: Backend, bucket: aiobucket.Bucket) -> bool:
    return backend.supports(bucket).conditional_put


class TestOpen(abstract.AbstractOpenTests, AiobucketFixtures):  # type: ignore[misc]
    pass
