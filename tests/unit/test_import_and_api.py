"""Importing is cheap and the public surface is what __all__ says."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import aiobucket

HEAVY = ("aiobotocore", "botocore", "gcloud", "aiohttp", "opentelemetry")


def _modules_after(code: str) -> list[str]:
    script = code + "\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))\n"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    modules: list[str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return modules


def test_import_aiobucket_does_not_import_drivers_or_otel() -> None:
    modules = _modules_after("import aiobucket")
    assert "aiobucket" in modules
    heavy = [m for m in modules if m.split(".")[0] in HEAVY]
    assert heavy == []
    # Providers load on first use too.
    assert "aiobucket.providers.s3" not in modules
    assert "aiobucket.providers.local" not in modules


def test_the_probe_would_see_heavy_modules() -> None:
    # The check above is only meaningful if an import shows up in the subprocess.
    assert "opentelemetry.trace" in _modules_after("import opentelemetry.trace")


def test_declaring_buckets_and_configuring_stays_cheap() -> None:
    modules = _modules_after(
        "import aiobucket\n"
        "b = aiobucket.Bucket('x', aiobucket.BucketConfig(versioned=True))\n"
        "aiobucket.configure({'x': 's3://cloud?region=eu-west-1', 'y': 'gs://cloud'})\n"
        "r = b.ref(aiobucket.Downloader)\n"
    )
    assert [m for m in modules if m.split(".")[0] in HEAVY] == []


def test_every_name_in_all_exists() -> None:
    assert len(aiobucket.__all__) == len(set(aiobucket.__all__))
    missing = [name for name in aiobucket.__all__ if not hasattr(aiobucket, name)]
    assert missing == []
    # Every error in the hierarchy is exported and derives from BucketError.
    for name in aiobucket.__all__:
        obj = getattr(aiobucket, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, aiobucket.BucketError), name


def test_all_matches_the_public_names() -> None:
    public = {n for n in vars(aiobucket) if not n.startswith("_")}
    # Submodules imported as a side effect are not part of the API, except tracing.
    modules = {n for n in public if type(getattr(aiobucket, n)).__name__ == "module"}
    assert public - modules - set(aiobucket.__all__) == set()
    assert "tracing" in aiobucket.__all__


def test_star_import_gives_all() -> None:
    ns: dict[str, object] = {}
    exec("from aiobucket import *", ns)
    assert set(aiobucket.__all__) <= set(ns)


def test_py_typed_ships_in_the_package() -> None:
    pkg = Path(aiobucket.__file__).parent
    assert (pkg / "py.typed").is_file()
    assert (pkg / "__init__.py").is_file()
