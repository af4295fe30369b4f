"""Shared test setup: backends for the conformance suite, and the real servers behind them.

The conformance suite runs on every backend named in AIOBUCKET_BACKENDS
(default: all). Cloud backends come from tests/servers/<module>.py plugins, each
of which starts its own server on 127.0.0.1 and exposes:

    QUIRKS: dict[str, str]                       # known server deviations -> reason
    conformance_target(request, versioned) -> dict   # bucket settings for configure()
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import aiobucket
from aiobucket import config
from aiobucket.providers import memory

SERVER_MODULES = {
    "s3": "servers.seaweedfs",
    "rgw": "servers.rgw",
    "moto": "servers.moto",
    "gcs": "servers.fakegcs",
    "azure": "servers.azurite",
    "aws-kms": "personas.aws_kms",  # moto behind an SSE-KMS bucket persona
    # SeaweedFS behind the AWS persona, the buckets in another region than configured
    "aws-region": "personas.aws",
    "ministack": "servers.ministack",
    "b2": "personas.b2",  # personas (tests/personas/stores.py) as conformance targets
    "garage": "personas.garage",
}
EXTRA_PLUGINS = ["servers.rclone"]
"""Servers that are not conformance targets (tests/servers/rclone.py says why)."""
ALL_BACKENDS = [
    "memory", "local", "s3", "rgw", "moto", "gcs", "azure", "aws-kms", "aws-region", "ministack", "b2",
    "garage",
]  # fmt: skip

pytest_plugins = [
    m for m in [*SERVER_MODULES.values(), *EXTRA_PLUGINS] if importlib.util.find_spec(m) is not None
]


def _selected() -> list[str]:
    raw = os.environ.get("AIOBUCKET_BACKENDS", "")
    names = [n.strip() for n in raw.split(",") if n.strip()] or ALL_BACKENDS
    unknown = set(names) - set(ALL_BACKENDS)
    if unknown:
        raise pytest.UsageError(f"AIOBUCKET_BACKENDS: unknown backends {sorted(unknown)}")
    return [n for n in names if n in ("memory", "local") or SERVER_MODULES[n] in pytest_plugins]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Backend:
    """One storage backend under test; ``bucket()`` makes a fresh, isolated bucket."""

    name: str
    _target: Callable[[bool], dict[str, Any]]
    quirks: dict[str, str] = field(default_factory=dict)
    tmp: Path | None = None
    _buckets: dict[str, Any] = field(default_factory=dict)

    def bucket(self, *, versioned: bool = False, public: bool = False) -> aiobucket.Bucket:
        name = f"t-{uuid.uuid4().hex[:12]}"
        settings = dict(self._target(versioned))
        # Cloud buckets are shared per session; a unique key prefix isolates each test.
        if self.name not in ("memory", "local"):
            settings["key_prefix"] = f"{name}/"
        if public:
            settings.setdefault("public_base_url", f"https://cdn.example.test/{name}")
        self._buckets[name] = settings
        return aiobucket.Bucket(name, aiobucket.BucketConfig(versioned=versioned, public=public))

    def local_root(self, bucket: aiobucket.Bucket) -> Path:
        assert self.tmp is not None
        return self.tmp / bucket.name

    def supports(self, bucket: aiobucket.Bucket) -> aiobucket.Capabilities:
        """The capabilities the bucket's provider declares."""
        from aiobucket import _runtime

        return _runtime.provider_for(bucket.name, bucket.config)[0].capabilities


@pytest.fixture(params=_selected())
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    name: str = request.param
    namespace = uuid.uuid4().hex
    quirks: dict[str, str] = {}
    if name in ("memory", "local"):
        # memory: one private namespace per test; local: the URL is filled in per bucket.
        url = f"memory://?ns={namespace}" if name == "memory" else "file:///placeholder"
        target: Callable[[bool], dict[str, Any]] = lambda versioned: {"url": url}  # noqa: E731
    else:
        module = importlib.import_module(SERVER_MODULES[name])
        quirks = dict(getattr(module, "QUIRKS", {}))
        # Resolve both targets now: server fixtures must start outside the test's event loop.
        targets = {v: module.conformance_target(request, v) for v in (False, True)}
        target = targets.__getitem__
    be = Backend(name, target, quirks, tmp_path)
    # Route each bucket the test makes as it makes it: resolve() looks names up lazily.
    with _routing(be):
        yield be
    memory.drop_namespace(namespace)


def _routing(be: Backend) -> Any:
    def route(name: str) -> config.BucketSettings | None:
        if name not in be._buckets:
            return None
        settings = dict(be._buckets[name])
        if be.name == "local":
            settings["url"] = "file://" + str(be.tmp / name)  # type: ignore[operator]
        return config.settings_from(name, settings)

    return config.routed(route)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Turn @pytest.mark.quirk("name") into a strict xfail on the backends that declare it."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or callspec.params.get("backend") not in SERVER_MODULES:
            continue
        module = importlib.import_module(SERVER_MODULES[callspec.params["backend"]])
        declared = getattr(module, "QUIRKS", {})
        for marker in item.iter_markers("quirk"):
            reason = declared.get(marker.args[0])
            if reason:
                item.add_marker(pytest.mark.xfail(strict=True, reason=f"quirk {marker.args[0]}: {reason}"))
                break
