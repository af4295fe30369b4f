"""``aiobucket doctor`` against the real servers: its verdict matches each one's declared profile.

Each test server declares ``provider=`` (tests/servers/seaweedfs_server.py ``PROVIDERS``);
here the doctor probes the server and every field it observes must agree with that
profile, and it must leave nothing behind under its temporary prefix.
"""

from __future__ import annotations

import importlib
import json
import os
import uuid
from collections.abc import AsyncIterator

import pytest
from servers.seaweedfs import S3Server

import aiobucket
from aiobucket import _runtime, config
from aiobucket.cli import main
from aiobucket.providers.s3 import S3Provider
from aiobucket.providers.s3._doctor import PROBED, diagnose
from aiobucket.providers.s3._profiles import PROFILES

pytestmark = pytest.mark.anyio

FIXTURES = {
    "s3": "s3_server", "rgw": "rgw_server", "moto": "moto_server", "ministack": "ministack_server",
    "rclone": "rclone_server",
}  # fmt: skip
MODULES = {k: f"servers.{'seaweedfs' if k == 's3' else k}" for k in FIXTURES}


@pytest.fixture(params=list(FIXTURES))
def server(request: pytest.FixtureRequest) -> tuple[S3Server, dict[str, str]]:
    raw = os.environ.get("AIOBUCKET_BACKENDS", "")
    names = [n.strip() for n in raw.split(",") if n.strip()]
    # rclone is no conformance target (no AIOBUCKET_BACKENDS name): it runs with s3.
    if names and ("s3" if request.param == "rclone" else request.param) not in names:
        pytest.skip(f"{request.param} not in AIOBUCKET_BACKENDS")
    s: S3Server = request.getfixturevalue(FIXTURES[request.param])
    declared = getattr(importlib.import_module(MODULES[request.param]), "DOCTOR_DIFFERENCES", {})
    return s, declared


@pytest.fixture(autouse=True)
async def _close_clients(anyio_backend: str) -> AsyncIterator[None]:
    yield
    await aiobucket.aclose()


async def s3_provider(name: str) -> S3Provider:
    provider = _runtime.provider_for(name, aiobucket.BucketConfig())[0]
    inner = getattr(provider, "inner", provider)
    assert isinstance(inner, S3Provider)
    return inner


async def test_doctor_verdict_matches_the_declared_profile(server: tuple[S3Server, dict[str, str]]) -> None:
    """Every field agrees, except those the server module names (with reasons) in
    DOCTOR_DIFFERENCES: an emulator's known deviations from the store it imitates."""
    server, known = server
    name = f"t-{uuid.uuid4().hex[:12]}"
    with config.override({name: server.settings(key_prefix=f"{name}/")}):
        p = await s3_provider(name)
        d = await diagnose(p, f"{name}/")
        assert set(d.observed) == set(PROBED)
        assert d.declared.name == server.provider
        assert set(d.differences) == set(known), "\n".join(f"{k}: {v}" for k, v in d.notes.items())
        if not known:
            assert d.suggestion() == f"provider={server.provider}"
        # Nothing left behind.
        async for err, entry in aiobucket.Bucket(name).list():
            raise AssertionError(f"doctor left {entry!r} (error {err!r})")


async def test_doctor_cli_json_names_the_provider(
    server: tuple[S3Server, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    server, known = server
    name = f"t-{uuid.uuid4().hex[:12]}"
    settings = server.settings(key_prefix=f"{name}/")
    # The same server declared as an unknown store: the doctor says what to declare instead.
    settings["url"] = str(settings["url"]).replace(f"provider={server.provider}", "provider=other")
    with config.override({name: settings}):
        status = await _run_cli(["doctor", name, "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["provider"] == "other"
    assert status == 1  # other claims less than the store does: reported as differences
    if not known:  # a store the probes cannot tell from the declared one, with its addressing
        suggested = PROFILES[report["suggestion"].removeprefix("provider=")]
        declared = PROFILES[server.provider]
        assert [getattr(suggested, f) for f in PROBED] == [getattr(declared, f) for f in PROBED]
        assert suggested.addressing == "path"
    text = "\n".join(f"{k}: {v}" for k, v in report["fields"].items())
    assert {k for k, v in report["fields"].items() if v["agrees"] is False}, text


async def _run_cli(argv: list[str]) -> int:
    from aiobucket.cli import COMMANDS, build_parser

    args = build_parser().parse_args(argv)
    result = await COMMANDS[args.command].run(args)
    assert isinstance(result, int)
    return result


def test_doctor_refuses_a_bucket_that_is_not_s3(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    with config.override({"plain": {"url": f"file://{tmp_path}"}}):
        assert main(["doctor", "plain"]) == 1
    assert "S3-compatible" in capsys.readouterr().err


@pytest.fixture
def rclone(request: pytest.FixtureRequest) -> S3Server:
    raw = os.environ.get("AIOBUCKET_BACKENDS", "")
    if raw and "s3" not in raw.split(","):
        pytest.skip("s3 not in AIOBUCKET_BACKENDS")
    s: S3Server = request.getfixturevalue("rclone_server")
    return s


async def test_a_real_store_that_ignores_conditionals_is_refused_before_any_write(rclone: S3Server) -> None:
    """rclone serve s3 accepts If-None-Match: * and overwrites anyway (told it honours them,
    aiobucket would overwrite: shown below). Declared as what it is (other), a not_exists
    upload raises NotSupported and the object stays."""
    name = f"t-{uuid.uuid4().hex[:12]}"
    with config.override({name: rclone.settings(key_prefix=f"{name}/")}):
        b = aiobucket.Bucket(name)
        async with b.upload("k") as w:
            await w.write(b"first")
        with pytest.raises(aiobucket.NotSupported, match="provider="):
            async with b.upload("k", preconditions=aiobucket.Preconditions(not_exists=True)) as w:
                await w.write(b"second")
        async with b.download("k") as r:
            assert await r.read() == b"first"
    lying = {**rclone.settings(key_prefix=f"{name}/"), "conditional_put": "native"}
    with config.override({name: lying}):
        b = aiobucket.Bucket(name)
        async with b.upload("k", preconditions=aiobucket.Preconditions(not_exists=True)) as w:
            await w.write(b"second")
        async with b.download("k") as r:
            assert await r.read() == b"second"  # the store ignored If-None-Match: *
