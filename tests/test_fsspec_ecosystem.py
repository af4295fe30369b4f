"""pandas, pyarrow, duckdb, polars, zarr and dask read and write ``aiobucket://`` URLs,
on local files and on S3 (SeaweedFS), and the README's fsspec block runs as written.

The libraries are heavy, so they live in their own venv, ``.venv-eco``
(``python3 -m venv .venv-eco && .venv-eco/bin/pip install -e '.[eco]'``, as
.ci/run does), and this module is marked ``eco``, left out of the default run
like the benchmark smoke test: ``pytest -m eco``. Selected without the venv it
skips with the command to run, and fails under CI.

The round trips themselves are tests/eco/roundtrips.py, run from .venv-eco with
an AIOBUCKET_CONFIG file that puts one bucket on local files and one on the
session's SeaweedFS server (under a key prefix of its own).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest
from servers.seaweedfs_server import S3Server
from test_readme import ECO_BLOCKS, Block, clean_env

ROOT = Path(__file__).resolve().parent.parent
ROUND_TRIPS = ROOT / "tests" / "eco" / "roundtrips.py"
NAMES = [
    "pandas_roundtrip",
    "pyarrow_hive_dataset",
    "duckdb_glob",
    "polars_roundtrip",
    "zarr_sharded",
    "dask_parquet",
]

pytestmark = pytest.mark.eco


@pytest.fixture(scope="module")
def eco_python() -> str:
    python = ROOT / ".venv-eco" / "bin" / "python"
    libraries = "import pandas, pyarrow, duckdb, polars, zarr, dask, s3fs, obstore, aiobucket.fsspec"
    if (
        python.exists()
        and subprocess.run([str(python), "-c", libraries], capture_output=True).returncode == 0
    ):
        return str(python)
    message = (
        "the ecosystem libraries are not installed; run: "
        "python3 -m venv .venv-eco && .venv-eco/bin/pip install -e '.[eco]'"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def test_round_trips_on_local_files_and_on_s3(eco_python: str, s3_server: S3Server, tmp_path: Path) -> None:
    s3 = s3_server.settings(key_prefix=f"eco-{uuid.uuid4().hex[:8]}/")
    config = tmp_path / "aiobucket.toml"
    config.write_text(
        "[buckets.eco-local]\n"
        f'url = "{(tmp_path / "local").as_uri()}"\n'
        "[buckets.eco-s3]\n" + "".join(f'{k} = "{v}"\n' for k, v in s3.items())
    )
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.run(
        [eco_python, str(ROUND_TRIPS), "eco-local", "eco-s3"],
        cwd=work,
        env=clean_env(tmp_path, AIOBUCKET_CONFIG=str(config)),
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == [f"ok {b} {n}" for b in ("eco-local", "eco-s3") for n in NAMES]
    assert list(work.iterdir()) == []  # everything went to the configured buckets


@pytest.mark.parametrize("block", ECO_BLOCKS, ids=str)
def test_readme_fsspec_block_runs_as_written(eco_python: str, block: Block, tmp_path: Path) -> None:
    """As tests/test_readme.py runs every other block: twice on the default local backend,
    then with every bucket in memory; no output on stderr, not even a warning."""
    script = tmp_path / "block.py"
    script.write_text(block.text)
    work = tmp_path / "work"
    work.mkdir()
    memory = tmp_path / "memory.toml"
    memory.write_text('default = "memory://"\n')
    for env in (clean_env(tmp_path), clean_env(tmp_path), clean_env(tmp_path, AIOBUCKET_CONFIG=str(memory))):
        proc = subprocess.run(
            [eco_python, "-W", "always::ResourceWarning", str(script)],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0 and proc.stderr == "", f"{block}:\n{proc.stderr}"
    assert sorted(p.name for p in work.iterdir()) == [".aiobucket"]


def test_the_fsspec_benchmark_runs(eco_python: str, tmp_path: Path) -> None:
    """``benchmarks/fsspec_read.py --quick`` produces its table (no timing is asserted)."""
    out = tmp_path / "fsspec.md"
    proc = subprocess.run(
        [eco_python, str(ROOT / "benchmarks" / "fsspec_read.py"), "--quick", "--output", str(out)],
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.startswith("AIOBUCKET")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = [line.split("|")[2].strip() for line in out.read_text().splitlines() if line.startswith("| read_")]
    assert rows == ["aiobucket", "s3fs", "obstore"]
    assert out.read_text().count("| cat() of 50 files") == 3
