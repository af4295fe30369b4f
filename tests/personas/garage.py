"""The persona of a store that ignores If-None-Match / If-Match (Garage, GCS's S3 interface;
personas/stores.py) as a conformance target: moto behind the proxy, declared
``provider=garage``, so preconditions are refused before any I/O."""

from __future__ import annotations

import pytest
from servers.moto import QUIRKS as MOTO_QUIRKS

from personas.stores import conformance_target as _target

QUIRKS: dict[str, str] = {
    # The server behind the persona; its not_exists race cannot show where aiobucket
    # refuses the preconditions before any I/O.
    **{k: v for k, v in MOTO_QUIRKS.items() if k != "not_exists_race"},
    "multipart_unverified": (
        "Garage (provider=garage) keeps composite multipart checksums only: a whole download of a "
        "multipart object is not verified"
    ),
}


def conformance_target(request: pytest.FixtureRequest, versioned: bool) -> dict[str, object]:
    return _target("ignores_conditionals", "garage", request, versioned)
