"""Azure Blob Storage as its documentation says, where Azurite answers otherwise.

Rules for ``tests/faultproxy.py`` in front of Azurite; each cites its page.
"""

from __future__ import annotations

from faultproxy import FaultProxy, Request, Respond, Rewrite

__all__ = ["copy_ends", "copy_pending", "range_past_the_end_is_416"]


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
