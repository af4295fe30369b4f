"""Azure Blob Storage for the tests: Azurite (npm), the emulator Microsoft maintains.

Loaded as a pytest plugin. The session fixture ``azurite_server`` starts one Azurite
blob service on 127.0.0.1 with a free port and a temporary directory, creates a
container, and stops the server by PID at the end of the session. Where Azurite
differs from Azure, a test naming the quirk runs as a strict xfail here; where
Azure itself differs from Azurite, ``tests/personas/azure.py`` answers as Azure's
documentation says.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from servers._proc import missing, stop, tail
from servers.azurite_server import ACCOUNT, ACCOUNT_KEY, NAME, AzuriteServer, azurite_binary, start

__all__ = [
    "ACCOUNT",
    "ACCOUNT_KEY",
    "NAME",
    "QUIRKS",
    "AzuriteServer",
    "azurite_server",
    "conformance_target",
]

QUIRKS: dict[str, str] = {
    "no_versions": (
        "Azurite 3.35 has no blob versioning (x-ms-version-id is never set and versionid= is "
        "ignored: the provider then answers ObjectNotFound rather than the current blob), so a versioned "
        "bucket keeps no versions"
    ),
    "suffix_range_500": "Azurite 3.35 answers a suffix range (x-ms-range: bytes=-N) with 500",
    "range_at_size_206": (
        "Azurite 3.35 answers a range starting at the object's size with 206 and no bytes, where "
        "Azure answers 416 InvalidRange"
    ),
    "folders_first": (
        "Azurite 3.35 lists a page's BlobPrefix entries before its Blob entries instead of merging "
        "them by name (the provider merges each page)"
    ),
    "start_from_ignored": (
        "Azurite 3.35 (API 2025-11-05) ignores List Blobs' startFrom (x-ms-version 2026-02-06) and "
        "lists from the prefix's start; the provider skips the entries up to start_after itself"
    ),
    "user_delegation_sas_needs_oauth": (
        "Azurite 3.35 issues user-delegation keys only to OAuth (bearer token) requests over HTTPS"
    ),
    "user_delegation_sas_2026_layout": (
        "Azurite 3.35 checks a user-delegation SAS with the 2025-07-05 string to sign at most; "
        "azure-storage-blob 12.31.1, and aiobucket after it, sign sv=2026-10-06, whose string adds "
        "the signed request headers and query fields (srh, srq), so Azurite answers 403 "
        "(https://learn.microsoft.com/rest/api/storageservices/create-user-delegation-sas)"
    ),
    # Azure itself, not only Azurite: the rules of the service that a conformance test
    # written for S3 semantics meets.
    "azure_metadata_identifiers": (
        "Azure takes only C# identifiers as metadata names (no '-'): the provider refuses others "
        "with InvalidArgument (https://learn.microsoft.com/rest/api/storageservices/"
        "setting-and-retrieving-properties-and-metadata-for-blob-resources)"
    ),
    "azure_sas_no_header_limits": (
        "an Azure SAS cannot fix a PUT's Content-Type or size, and a PUT must send "
        "x-ms-blob-type: BlockBlob: signed PUT URLs with content_type raise NotSupported "
        "(https://learn.microsoft.com/rest/api/storageservices/create-service-sas)"
    ),
}
"""Azurite 3.35 differences from Azure Blob Storage, then Azure's own differences from S3."""

INSTALL_HINT = "run .ci/run once (it installs azurite@3.35.0 with npm under .tools/azurite)"


@pytest.fixture(scope="session")
def azurite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuriteServer]:
    binary = azurite_binary()
    if binary is None:
        missing("Azurite (`azurite-blob`)", INSTALL_HINT)
        raise AssertionError("unreachable")
    base = tmp_path_factory.mktemp("azurite")
    try:
        proc, server = start(base, binary)
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    except BaseException:
        print(f"azurite log tail:\n{tail(base / 'azurite.log')}", file=sys.stderr)
        raise
    try:
        yield server
    finally:
        stop(proc)


def conformance_target(request: pytest.FixtureRequest, versioned: bool) -> dict[str, object]:
    """Bucket settings for the conformance suite (the conftest adds a per-test key_prefix).

    Azurite keeps no versions: a versioned target is the same container (quirk no_versions).
    """
    server: AzuriteServer = request.getfixturevalue("azurite_server")
    return server.settings()
