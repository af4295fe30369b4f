"""The JSON API's objects resource, both ways: read into ObjectAttrs, written from PutOptions.

``crc32c`` is kept as GCS gives it (base64 of the big-endian CRC32C), as
``ObjectAttrs.crc32c`` documents; ``md5Hash`` (base64) becomes lower-case hex.
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ...types import ObjectAttrs

__all__ = ["attrs_from_resource", "md5_hex", "parse_time", "resource_metadata"]


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def md5_hex(value: object) -> str | None:
    """GCS ``md5Hash`` (base64) as lower-case hex, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        # base64.b64decode(value, validate=True) without its Python wrapper (on every read)
        raw = binascii.a2b_base64(value.encode("ascii"), strict_mode=True)
    except (ValueError, UnicodeEncodeError):
        return None
    return raw.hex() if len(raw) == 16 else None


def attrs_from_resource(item: Mapping[str, Any], *, versioned: bool) -> ObjectAttrs:
    """An objects resource (JSON API) as ObjectAttrs; ``version`` only on versioned buckets."""
    meta = item.get("metadata") or {}
    crc = item.get("crc32c")
    return ObjectAttrs(
        name=str(item["name"]),
        size=int(item.get("size", 0)),
        etag=str(item.get("etag", "")).strip('"'),
        content_type=str(item.get("contentType") or "application/octet-stream"),
        version=str(item["generation"]) if versioned and "generation" in item else None,
        cache_control=item.get("cacheControl"),
        content_disposition=item.get("contentDisposition"),
        metadata={str(k): str(v) for k, v in meta.items() if v is not None},
        last_modified=parse_time(item.get("updated") or item.get("timeCreated")),
        crc32c=str(crc) if isinstance(crc, str) and crc else None,
        md5=md5_hex(item.get("md5Hash")),
        content_encoding=item.get("contentEncoding") or None,
    )


def resource_metadata(
    content_type: str,
    cache_control: str | None,
    content_disposition: str | None,
    metadata: Mapping[str, str],
    name: str | None = None,
    content_encoding: str | None = None,
) -> dict[str, Any]:
    """The writable part of an objects resource, for uploads and rewrites."""
    out: dict[str, Any] = {"contentType": content_type, "metadata": dict(metadata)}
    if name is not None:
        out["name"] = name
    if cache_control is not None:
        out["cacheControl"] = cache_control
    if content_disposition is not None:
        out["contentDisposition"] = content_disposition
    if content_encoding is not None:
        out["contentEncoding"] = content_encoding
    return out
