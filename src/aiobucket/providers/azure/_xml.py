"""Azure Blob XML: the List Blobs page, the Put Block List body.

Invariants:

* A listing page is returned merged by name (Azurite puts a page's BlobPrefix entries
  before its Blob entries; Azure merges them). Names compare by UTF-16 code units,
  Azure's order (``utf16_key``).
* Content-MD5 (base64) becomes lower-case hex, as ``ObjectAttrs.md5`` is.
"""

from __future__ import annotations

import binascii
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from xml.sax.saxutils import escape

from ...errors import BackendError
from ...types import ListEntry
from ._sign import DelegationKey

__all__ = ["ListPage", "block_list_body", "md5_hex", "parse_delegation_key", "parse_list", "utf16_key"]


def utf16_key(name: str) -> bytes:
    """Sort key in Azure's order: UTF-16 code units (big-endian bytes compare the same)."""
    return name.encode("utf-16-be", "surrogatepass")


def md5_hex(b64: str | None) -> str | None:
    if not b64:
        return None
    try:
        raw = binascii.a2b_base64(b64, strict_mode=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 16 else None


def _date(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        return parsedate_to_datetime(raw).astimezone(UTC)
    except (TypeError, ValueError):
        return None


@dataclass(slots=True)
class ListPage:
    entries: list[ListEntry]
    next_marker: str | None


def parse_list(body: bytes, *, versions: bool = False) -> ListPage:
    root = ET.fromstring(body)
    entries: list[ListEntry] = []
    blobs = root.find("Blobs")
    if blobs is not None:
        for el in blobs:
            name = el.findtext("Name") or ""
            if el.tag == "BlobPrefix":
                entries.append(ListEntry(name=name, is_prefix=True))
                continue
            props = el.find("Properties")
            get = props.findtext if props is not None else (lambda _tag: None)
            entries.append(
                ListEntry(
                    name=name,
                    size=int(get("Content-Length") or 0),
                    etag=(get("Etag") or "").strip('"'),
                    version=(el.findtext("VersionId") or None) if versions else None,
                    last_modified=_date(get("Last-Modified")),
                    is_latest=el.findtext("IsCurrentVersion") == "true" if versions else True,
                )
            )
    # Stable: versions of one name keep the server's order.
    entries.sort(key=lambda e: utf16_key(e.name))
    return ListPage(entries, root.findtext("NextMarker") or None)


def block_list_body(block_ids: list[str]) -> bytes:
    inner = "".join(f"<Latest>{escape(b)}</Latest>" for b in block_ids)
    return f'<?xml version="1.0" encoding="utf-8"?><BlockList>{inner}</BlockList>'.encode()


def parse_delegation_key(body: bytes) -> DelegationKey:
    """The UserDelegationKey answer of Get User Delegation Key."""
    root = ET.fromstring(body)
    fields = [root.findtext(tag) for tag in (
        "SignedOid", "SignedTid", "SignedStart", "SignedExpiry", "SignedService", "SignedVersion", "Value",
    )]  # fmt: skip
    if not all(fields):
        raise BackendError("sign url: Azure's user delegation key answer lacks a field")
    oid, tid, start, expiry, service, version, value = (f or "" for f in fields)
    return DelegationKey(
        oid, tid, start, expiry, service, version, value, root.findtext("SignedDelegatedUserTid")
    )
