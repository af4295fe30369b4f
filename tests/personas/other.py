"""SeaweedFS declared ``provider=other``, as a bucket with only ``endpoint=`` on an unknown
host is (issue #20 item 3): the conservative profile as a conformance target. No proxy:
the store is real, only what aiobucket assumes of it changes (Content-MD5 instead of
x-amz-checksum-*, no whole-object multipart checksum, preconditions refused before any I/O)."""

from __future__ import annotations

import pytest
from servers.seaweedfs import QUIRKS as SEAWEEDFS_QUIRKS
from servers.seaweedfs_server import S3Server

QUIRKS: dict[str, str] = {
    # Refused before any I/O under `other`: the server's race cannot show.
    **{k: v for k, v in SEAWEEDFS_QUIRKS.items() if k != "not_exists_race"},
    "multipart_unverified": (
        "provider=other declares no whole-object multipart checksum and asks for no stored "
        "checksum (x-amz-checksum-mode), and a multipart ETag is no MD5: a whole download of a "
        "multipart object is not verified"
    ),
}


def conformance_target(request: pytest.FixtureRequest, versioned: bool) -> dict[str, object]:
    server: S3Server = request.getfixturevalue("s3_server")
    settings = server.settings(versioned)
    settings["url"] = str(settings["url"]).replace(f"provider={server.provider}", "provider=other")
    return settings
