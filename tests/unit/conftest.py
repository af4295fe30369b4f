"""Shared setup for the unit tests: anyio on asyncio and a clean config state."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aiobucket import config


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clean_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No configure(), no AIOBUCKET_CONFIG, cwd in tmp_path; the registry and state restored after."""
    monkeypatch.delenv(config.ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    providers = dict(config._PROVIDERS)
    overrides = list(config._state.overrides)
    config.reset()
    try:
        yield
    finally:
        config.reset()
        config._PROVIDERS.clear()
        config._PROVIDERS.update(providers)
        with config._state.lock:
            config._state.overrides[:] = overrides
            config._state.bump()
