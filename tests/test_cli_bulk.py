"""``aiobucket rm -r`` (bulk delete) and ``cp`` to a file (parallel ranges), for real.

The console script runs in a subprocess against the default local backend and
against SeaweedFS (S3), configured through an AIOBUCKET_CONFIG file.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from pathlib import Path

import pytest
from servers.seaweedfs import S3Server
from test_cli import ok, one_line_error, run

import aiobucket
from aiobucket import config


def _config(tmp_path: Path, settings: dict[str, object]) -> Path:
    cfg = tmp_path / "aiobucket.toml"
    cfg.write_text("[buckets.remote]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items()))
    return cfg


def _settings(where: str, tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, object]:
    if where == "local":
        return {"url": (tmp_path / "store" / "remote").as_uri()}
    server: S3Server = request.getfixturevalue("s3_server")
    return server.settings(key_prefix=f"cli-{uuid.uuid4().hex[:8]}/")


def _seed(settings: dict[str, object], keys: list[str]) -> None:
    """Store the keys from this process (faster than a CLI run per key)."""

    async def main() -> None:
        b = aiobucket.Bucket("remote")
        sem = asyncio.Semaphore(16)

        async def one(key: str) -> None:
            async with sem, b.upload(key) as w:
                await w.write(b"x")

        try:
            await asyncio.gather(*(one(k) for k in keys))
        finally:
            await aiobucket.aclose()

    with config.override({"remote": settings}):
        asyncio.run(main())


def _keys(tmp_path: Path, cfg: Path) -> list[str]:
    return [
        line.split()[-1] for line in ok(tmp_path, "ls", "-r", "remote:", config=cfg).decode().splitlines()
    ]


@pytest.mark.parametrize("where", ["local", "s3"])
def test_rm_r_removes_everything_under_the_prefix(
    tmp_path: Path, where: str, request: pytest.FixtureRequest
) -> None:
    settings = _settings(where, tmp_path, request)
    cfg = _config(tmp_path, settings)
    _seed(settings, [*(f"tmp/{i}" for i in range(120)), "tmp/sub/deep", "tmpfile", "keep/me"])
    assert ok(tmp_path, "rm", "-r", "remote:tmp/", config=cfg) == b""
    assert _keys(tmp_path, cfg) == ["keep/me", "tmpfile"]
    # Nothing under the prefix any more: still fine, nothing to do.
    assert ok(tmp_path, "rm", "-r", "remote:tmp/", config=cfg) == b""
    # The whole bucket.
    ok(tmp_path, "rm", "-r", "remote:", config=cfg)
    assert _keys(tmp_path, cfg) == []


def test_rm_r_usage(tmp_path: Path) -> None:
    one_line_error(run(tmp_path, "rm", "-r", "media:x", "--version", "v1"), 2, "--version")
    one_line_error(run(tmp_path, "rm", "-r", "not-a-remote"), 2, "BUCKET:")


def test_cp_to_a_file_downloads_parallel_ranges(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    s3_config = _config(tmp_path, _settings("s3", tmp_path, request))
    data = os.urandom(20 * 1024 * 1024 + 321)  # three 8 MiB parts
    (tmp_path / "big.bin").write_bytes(data)
    ok(tmp_path, "cp", "big.bin", "remote:big.bin", config=s3_config)
    (tmp_path / "out").mkdir()
    ok(tmp_path, "cp", "remote:big.bin", "out/", config=s3_config)
    assert (tmp_path / "out" / "big.bin").read_bytes() == data
    assert os.listdir(tmp_path / "out") == ["big.bin"]  # no temporary left behind
    one_line_error(run(tmp_path, "cp", "remote:missing", "out/x", config=s3_config), 1, "not found")
    assert os.listdir(tmp_path / "out") == ["big.bin"]
    err = run(tmp_path, "cp", "remote:big.bin", "nodir/x", config=s3_config)
    one_line_error(err, 1, "does not exist")
