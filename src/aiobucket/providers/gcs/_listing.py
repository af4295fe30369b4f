"""Listing a GCS bucket: pages merged into one stream in UTF-8 byte order of name.

GCS lists items and prefixes separately per page and ``startOffset`` is
inclusive; this module turns that into the contract's order (key, then newest
version first) with an exclusive ``start_after``. Every page request is a READ
(retried, its body read inside the retry loop, see ``_http.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ...errors import BackendError, BucketError
from ...types import ListEntry
from ._http import Kind
from ._resource import attrs_from_resource

if TYPE_CHECKING:
    from ._provider import GcsProvider

__all__ = ["LIST_PAGE", "list_entries"]

LIST_PAGE = 1000


async def list_entries(
    p: GcsProvider,
    prefix: str,
    *,
    start_after: str | None = None,
    delimiter: str | None = None,
    versions: bool = False,
    limit: int | None = None,
) -> AsyncIterator[ListEntry]:
    page_size = LIST_PAGE if not limit else max(1, min(limit, LIST_PAGE))
    skip_under: str | None = None
    if start_after is not None and delimiter is not None and start_after.startswith(prefix):
        cut = start_after.find(delimiter, len(prefix))
        if cut >= 0:
            # start_after sits inside a "folder": it is listed only if something
            # in it comes after start_after; the rest of it is never repeated.
            skip_under = start_after[: cut + len(delimiter)]
            if await _any_after(p, skip_under, start_after, versions):
                yield ListEntry(name=skip_under, is_prefix=True)
    pending: list[dict[str, Any]] = []  # versions of one name, across pages
    async for kind, value in _pages(p, prefix, start_after, delimiter, versions, page_size):
        if kind == "prefix":
            name = str(value)
            if name == skip_under:
                continue
            for entry in _flush(p, pending):
                yield entry
            pending = []
            yield ListEntry(name=name, is_prefix=True)
            continue
        assert isinstance(value, dict)
        name = str(value["name"])
        if start_after is not None and name.encode() <= start_after.encode():
            continue  # startOffset is inclusive; start_after is not
        if skip_under is not None and name.startswith(skip_under):
            continue
        if pending and pending[0]["name"] != name:
            for entry in _flush(p, pending):
                yield entry
            pending = []
        pending.append(value)
    for entry in _flush(p, pending):
        yield entry


def _flush(p: GcsProvider, items: list[dict[str, Any]]) -> list[ListEntry]:
    """The versions of one key, newest first; the live one (no timeDeleted) is latest."""
    items = sorted(items, key=lambda it: int(it.get("generation", 0)), reverse=True)
    out = []
    for it in items:
        a = attrs_from_resource(it, versioned=p.versioned)
        out.append(
            ListEntry(
                name=a.name,
                size=a.size,
                etag=a.etag,
                version=a.version,
                last_modified=a.last_modified,
                is_latest="timeDeleted" not in it,
            )
        )
    return out


async def _pages(
    p: GcsProvider,
    prefix: str,
    start_after: str | None,
    delimiter: str | None,
    versions: bool,
    page_size: int,
) -> AsyncIterator[tuple[str, object]]:
    """Items and prefixes of each page, merged in UTF-8 byte order of name."""
    params: dict[str, str] = {"maxResults": str(page_size)}
    if prefix:
        params["prefix"] = prefix
    if delimiter is not None:
        params["delimiter"] = delimiter
    if start_after is not None:
        params["startOffset"] = start_after
    if versions:
        params["versions"] = "true"
    url = p.http.bucket_url(p.bucket)
    while True:
        try:
            page = await p.http.json(
                "GET",
                url,
                kind=Kind.READ,
                key=None,
                params=params,
                what="list",
                not_found=_BucketMissing,
            )
        except _BucketMissing as exc:
            raise BackendError(f"list: GCS bucket {p.bucket!r} does not exist") from exc
        merged: list[tuple[bytes, str, object]] = [
            (str(it["name"]).encode(), "item", it) for it in page.get("items", [])
        ]
        merged += [(str(pre).encode(), "prefix", str(pre)) for pre in page.get("prefixes", [])]
        # Stable: the server's order among versions of one name is kept.
        merged.sort(key=lambda m: m[0])
        for _, kind, value in merged:
            yield kind, value
        token = page.get("nextPageToken")
        if not token:
            return
        params["pageToken"] = str(token)


async def _any_after(p: GcsProvider, under: str, start_after: str, versions: bool) -> bool:
    async for kind, value in _pages(p, under, start_after, None, versions, 10):
        if kind == "item" and isinstance(value, dict) and str(value["name"]).encode() > start_after.encode():
            return True
    return False


class _BucketMissing(BucketError):
    """Internal: a 404 on a bucket-level request."""
