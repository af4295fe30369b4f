"""The B2 persona (personas/stores.py) as a conformance target: SeaweedFS behind the proxy,
refusing x-amz-checksum-* as Backblaze B2 does, declared ``provider=b2``."""

from __future__ import annotations

import pytest
from servers.seaweedfs import QUIRKS as SEAWEEDFS_QUIRKS

from personas.stores import conformance_target as _target

QUIRKS: dict[str, str] = {
    # The server behind the persona; its not_exists race cannot show where aiobucket
    # refuses the preconditions before any I/O.
    **{k: v for k, v in SEAWEEDFS_QUIRKS.items() if k != "not_exists_race"},
    "multipart_unverified": (
        "B2 (provider=b2) takes no x-amz-checksum-* headers: a multipart object has no whole-object "
        "checksum, and its ETag is no MD5, so a whole download of it is not verified"
    ),
}


def conformance_target(request: pytest.FixtureRequest, versioned: bool) -> dict[str, object]:
    return _target("b2", "b2", request, versioned)
