"""The persona of a store that keeps composite multipart checksums only (MinIO from
2022-09 to 2025-01-18, Garage 1.x; personas/stores.py) as a conformance target:
SeaweedFS behind the proxy, refusing a completion that carries a FULL_OBJECT CRC32C,
declared ``provider=minio`` (current MinIO), so aiobucket learns ``composite`` at its
first multipart completion and the rest of the suite runs on what it learnt."""

from __future__ import annotations

import pytest
from servers.seaweedfs import QUIRKS as SEAWEEDFS_QUIRKS

from personas.stores import conformance_target as _target

QUIRKS: dict[str, str] = {k: v for k, v in SEAWEEDFS_QUIRKS.items() if k != "not_exists_race"}
"""SeaweedFS's own: the server behind still computes a whole-object CRC32C when the
completion carries none, so downloads of multipart objects stay verified here."""


def conformance_target(request: pytest.FixtureRequest, versioned: bool) -> dict[str, object]:
    # SeaweedFS's not_exists race on completion shows in some runs only behind the proxy
    # (a strict xfail would flake): conditional completions are refused before any I/O.
    return _target("composite_only", "minio", request, versioned, conditional_complete="none")
