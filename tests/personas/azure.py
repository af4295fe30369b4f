"""Azure Blob Storage as its documentation says, where Azurite answers otherwise.

Rules for ``tests/faultproxy.py`` in front of Azurite; each cites its page.
"""

from __future__ import annotations

from faultproxy import FaultProxy, Request, Respond, Rewrite

__all__ = [
    "copy_ends",
    "copy_pending",
    "range_past_the_end_is_416",
    "start_from_refused",
    "user_delegation_key",
    "version_listing",
    "versioned_account",
]


def _copy_put(r: Request) -> bool:
    return r.method == "PUT" and r.header("x-ms-copy-source") is not None


def copy_pending(proxy: FaultProxy, dst_path_end: str, polls: int) -> None:
    """Copy Blob may answer 202 with ``x-ms-copy-status: pending`` and finish later; Get Blob
    Properties reports ``pending`` until then.
    https://learn.microsoft.com/rest/api/storageservices/copy-blob ("x-ms-copy-status:
    success | pending"), https://learn.microsoft.com/rest/api/storageservices/get-blob-properties
    """
    proxy.add_rule(Rewrite("response", {"x-ms-copy-status": "pending"}), when=_copy_put)
    proxy.add_rule(
        Rewrite("response", {"x-ms-copy-status": "pending"}),
        when=lambda r: r.method == "HEAD" and r.path.endswith(dst_path_end),
        times=polls,
    )


def copy_ends(proxy: FaultProxy, dst_path_end: str, status: str) -> None:
    """A pending copy can end ``failed`` or ``aborted`` (same pages as above)."""
    proxy.add_rule(Rewrite("response", {"x-ms-copy-status": "pending"}), when=_copy_put)
    proxy.add_rule(
        Rewrite("response", {"x-ms-copy-status": status, "x-ms-copy-status-description": "injected"}),
        when=lambda r: r.method == "HEAD" and r.path.endswith(dst_path_end),
        times=None,
    )


def range_past_the_end_is_416(proxy: FaultProxy) -> None:
    """A range that starts at or past the blob's size is 416 InvalidRange.
    https://learn.microsoft.com/rest/api/storageservices/specifying-the-range-header-for-blob-service-operations
    (Azurite 3.35 answers 206 instead: quirk range_at_size_206)."""
    body = (
        b'<?xml version="1.0" encoding="utf-8"?><Error><Code>InvalidRange</Code>'
        b"<Message>The range specified is invalid for the current size of the resource.</Message></Error>"
    )

    def at_size(r: Request) -> bool:
        rng = r.header("x-ms-range") or ""
        return r.method == "GET" and rng.startswith("bytes=10-")

    proxy.add_rule(
        Respond(416, body, {"Content-Type": "application/xml", "x-ms-error-code": "InvalidRange"}),
        when=at_size,
        times=None,
    )


def user_delegation_key(proxy: FaultProxy, value_b64: str) -> dict[str, str]:
    """Get User Delegation Key answers 200 with a UserDelegationKey document (Azure issues it
    to an AAD bearer token; Azurite only with --oauth over HTTPS: quirk
    user_delegation_sas_needs_oauth).
    https://learn.microsoft.com/rest/api/storageservices/get-user-delegation-key
    Returns the key's fields as served."""
    fields = {
        "SignedOid": "6f1a9b52-0000-4000-8000-000000000001",
        "SignedTid": "72f988bf-0000-4000-8000-000000000002",
        "SignedStart": "2026-12-06T00:00:00Z",
        "SignedExpiry": "2026-12-13T00:00:00Z",
        "SignedService": "b",
        "SignedVersion": "2025-01-05",
        "Value": value_b64,
    }
    body = (
        '<?xml version="1.0" encoding="utf-8"?><UserDelegationKey>'
        + "".join(f"<{k}>{v}</{k}>" for k, v in fields.items())
        + "</UserDelegationKey>"
    )
    proxy.add_rule(
        Respond(200, body.encode(), {"Content-Type": "application/xml"}),
        method="POST",
        query="comp=userdelegationkey",
        times=None,
    )
    return fields


def versioned_account(proxy: FaultProxy, version: str) -> None:
    """An account with blob versioning on: every write answers ``x-ms-version-id``, and a
    read of that version answers it too.
    https://learn.microsoft.com/azure/storage/blobs/versioning-overview,
    https://learn.microsoft.com/rest/api/storageservices/put-blob (x-ms-version-id),
    https://learn.microsoft.com/rest/api/storageservices/get-blob (versionid, x-ms-version-id)."""
    proxy.add_rule(
        Rewrite("response", {"x-ms-version-id": version}),
        when=lambda r: r.method == "PUT" and "comp=" not in r.query,
        times=None,
    )
    proxy.add_rule(
        Rewrite("response", {"x-ms-version-id": version}),
        when=lambda r: r.method in ("GET", "HEAD") and f"versionid={version.replace(':', '%3A')}" in r.query,
        times=None,
    )


def version_listing(proxy: FaultProxy, prefix: str, name: str, versions: list[str]) -> None:
    """List Blobs with ``include=versions``: a blob's versions oldest first, the newest one
    ``IsCurrentVersion``. https://learn.microsoft.com/rest/api/storageservices/list-blobs"""
    blobs = "".join(
        f"<Blob><Name>{prefix}{name}</Name><VersionId>{v}</VersionId>"
        + ("<IsCurrentVersion>true</IsCurrentVersion>" if i == len(versions) - 1 else "")
        + "<Properties><Content-Length>3</Content-Length><Etag>0x1</Etag>"
        "<Last-Modified>Sun, 06 Dec 2026 04:00:00 GMT</Last-Modified></Properties></Blob>"
        for i, v in enumerate(versions)
    )
    body = (
        '<?xml version="1.0" encoding="utf-8"?><EnumerationResults><Blobs>'
        f"{blobs}</Blobs><NextMarker /></EnumerationResults>"
    )
    proxy.add_rule(
        Respond(200, body.encode(), {"Content-Type": "application/xml"}),
        when=lambda r: r.method == "GET" and "include=versions" in r.query,
        times=None,
    )


def start_from_refused(proxy: FaultProxy) -> None:
    """A List Blobs with a query parameter the service version does not know answers 400
    (an older service, a gateway pinned to one: UnsupportedQueryParameter;
    https://learn.microsoft.com/rest/api/storageservices/common-rest-api-error-codes)."""
    body = (
        b'<?xml version="1.0" encoding="utf-8"?><Error><Code>UnsupportedQueryParameter</Code>'
        b"<Message>One of the query parameters specified in the request URI is not supported.</Message>"
        b"<QueryParameterName>startFrom</QueryParameterName></Error>"
    )
    proxy.add_rule(
        Respond(
            400, body, {"Content-Type": "application/xml", "x-ms-error-code": "UnsupportedQueryParameter"}
        ),
        when=lambda r: r.method == "GET" and "comp=list" in r.query and "startFrom=" in r.query,
        times=None,
    )
