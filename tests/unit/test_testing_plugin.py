"""aiobucket.testing: the pytest fixture (pytest11 entry point) and memory_buckets()."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import aiobucket
from aiobucket import Bucket, config
from aiobucket.providers import memory
from aiobucket.testing import memory_buckets

# Enabled here, not in conftest.py: pytest refuses pytest_plugins in a non-root conftest
# when the whole tree is collected.
pytest_plugins = ["pytester"]

INNER_TESTS = """
import asyncio

import aiobucket

SHARED = aiobucket.Bucket("shared-bucket")


async def names():
    return [entry.name async for err, entry in SHARED.list()]


async def scenario(key):
    assert await names() == []
    async with SHARED.upload(key) as w:
        await w.write(b"x")
    assert await names() == [key]
    await aiobucket.aclose()


def test_first(aiobucket_memory):
    asyncio.run(scenario("from-first"))


def test_second(aiobucket_memory):
    asyncio.run(scenario("from-second"))


def test_third_module_level_bucket_is_memory(aiobucket_memory):
    from aiobucket import config
    assert config.resolve("shared-bucket").scheme == "memory"
"""


def test_fixture_from_entry_point_isolates_buckets_between_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner=INNER_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly")
    result.assert_outcomes(passed=3)
    # Nothing leaked to the filesystem default.
    assert not (pytester.path / ".aiobucket").exists()


def test_fixture_isolates_in_either_order(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner=INNER_TESTS)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "test_inner.py::test_second", "test_inner.py::test_first"
    )
    result.assert_outcomes(passed=2)


def test_plugin_is_registered_through_pytest11(pytestconfig: pytest.Config) -> None:
    plugin = pytestconfig.pluginmanager.get_plugin("aiobucket")
    assert plugin is not None
    assert plugin.__name__ == "aiobucket.testing"


def test_memory_buckets_outside_pytest(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import asyncio, sys
        assert "pytest" not in sys.modules or True
        import aiobucket
        from aiobucket import config
        from aiobucket.testing import memory_buckets

        B = aiobucket.Bucket("outside")

        async def names():
            return [e.name async for _, e in B.list()]

        async def main():
            with memory_buckets():
                assert config.resolve("outside").scheme == "memory"
                async with B.upload("k") as w:
                    await w.write(b"v")
                assert await names() == ["k"]
            with memory_buckets():
                assert await names() == []
            assert config.resolve("outside").scheme == "file"
            print("ok")

        asyncio.run(main())
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
    assert not (tmp_path / ".aiobucket").exists()


def test_memory_buckets_drops_its_namespace_and_restores_config(clean_config: None) -> None:
    async def main() -> None:
        b = Bucket("nsb")
        before = set(memory._stores)
        with memory_buckets():
            url = config.resolve("nsb").url
            assert url.startswith("memory://nsb?ns=")
            async with b.upload("k") as w:
                await w.write(b"1")
            assert set(memory._stores) - before
            # nested: a fresh namespace again
            with memory_buckets():
                assert not await b.exists("k")
            assert await b.exists("k")
        assert set(memory._stores) == before
        assert config.resolve("nsb").scheme == "file"
        assert config._state.overrides == []
        await aiobucket.aclose()

    asyncio.run(main())


def test_memory_buckets_restores_on_error(clean_config: None) -> None:
    with pytest.raises(RuntimeError), memory_buckets():
        raise RuntimeError("x")
    assert config._state.overrides == []
