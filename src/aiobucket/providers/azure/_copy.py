"""Copies on Azure: Copy Blob within one account, polled while it is pending.

Invariants:

* The source is pinned to the ETag read first (``x-ms-source-if-match``), so the MD5 the
  result vouches for is the one copied; a source changed meanwhile is ObjectChanged.
* Copy Blob may answer 202 ``x-ms-copy-status: pending``: the destination is polled
  (backoff up to 2 s) until it ends; failed or aborted is BackendError, and another copy
  id on the destination is ObjectChanged.
* Preconditions go on the destination; a refused conditional copy after an attempt that
  may have been applied is resolved by the stored MD5 (the source's).
* New attributes (``replace``) are set by Set Blob Properties afterwards, which clears
  what it is not given: the MD5 is given again; metadata rides on the copy itself.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING
from urllib.parse import quote

from ...errors import BackendError, ObjectChanged
from ...types import ObjectAttrs
from .._http.headers import precondition_headers, quote_etag
from .._http.transport import Response
from ..base import CopyOptions, PutOptions

if TYPE_CHECKING:
    from ._provider import AzureProvider

__all__ = ["copy"]

_COPY_POLL_MAX = 2.0


async def copy(
    self: AzureProvider, source: AzureProvider, src: str, dst: str, opts: CopyOptions
) -> ObjectAttrs:
    """Copy Blob from ``source`` (same account) to ``dst``; see the module docs."""
    from ._provider import check_key

    check_key(src)
    check_key(dst)
    src_attrs = await source.head(src, opts.version)
    copy_source = source._origin + source.path_of(src)
    if opts.version is not None:
        copy_source += "?versionid=" + quote(opts.version, safe="")
    headers = {"x-ms-copy-source": copy_source, **precondition_headers(opts.preconditions)}
    if opts.replace is not None:
        # Copy Blob keeps the source's metadata unless some is given; a replacement without
        # metadata clears it in _set_properties.
        for k, v in opts.replace.metadata.items():
            headers["x-ms-meta-" + k.lower()] = v
    # Pin the source to what we read, so the MD5 we vouch for is the one copied.
    headers["x-ms-source-if-match"] = quote_etag(src_attrs.etag)
    resp = await self.send("copy", "PUT", dst, headers=headers, shield=True)
    pre = opts.preconditions
    if resp.status in (409, 412) and pre and resp.maybe_applied and resp.code != "SourceConditionNotMet":
        await self.resolve("copy", dst, src_attrs.md5, resp)
    elif resp.status >= 300:
        if resp.code == "SourceConditionNotMet":
            raise ObjectChanged("copy: the source changed while it was being copied", key=src)
        raise self.fail(resp, "copy", dst)
    else:
        await _wait_for_copy(self, dst, resp)
    if opts.replace is not None:
        await _set_properties(self, dst, opts.replace, src_attrs.md5)
    return await self.head(dst)


async def _wait_for_copy(self: AzureProvider, dst: str, resp: Response) -> None:
    """Copy Blob may answer 202 with x-ms-copy-status: pending: poll until it ends."""
    status = resp.headers.get("x-ms-copy-status", "success")
    copy_id = resp.headers.get("x-ms-copy-id")
    delay = 0.05
    while status == "pending":
        await asyncio.sleep(delay)
        delay = min(delay * 2, _COPY_POLL_MAX)
        r = await self.send("copy", "HEAD", dst)
        if r.status >= 300:
            raise self.fail(r, "copy", dst)
        if copy_id is not None and r.headers.get("x-ms-copy-id") not in (None, copy_id):
            raise ObjectChanged("copy: another copy or write replaced the destination", key=dst)
        status = r.headers.get("x-ms-copy-status", "success")
    if status != "success":
        raise BackendError(f"copy: Azure reports the copy {status}", key=dst)


async def _set_properties(self: AzureProvider, key: str, opts: PutOptions, md5: str | None) -> None:
    """Set Blob Properties clears what it is not given: the MD5 is given again."""
    from ._provider import _md5_b64, object_headers

    headers = object_headers(opts)
    for name in [h for h in headers if h.startswith("x-ms-meta-")]:
        del headers[name]
    if md5 is not None:
        headers["x-ms-blob-content-md5"] = _md5_b64(md5)
    resp = await self.send("copy", "PUT", key, query=[("comp", "properties")], headers=headers, shield=True)
    if resp.status >= 300:
        raise self.fail(resp, "copy", key)
    if not opts.metadata:
        resp = await self.send("copy", "PUT", key, query=[("comp", "metadata")], shield=True)
        if resp.status >= 300:
            raise self.fail(resp, "copy", key)
