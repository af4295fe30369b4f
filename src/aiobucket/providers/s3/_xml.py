"""S3 XML bodies, parsed with the C-accelerated ``xml.etree`` and built by hand.

Listings are the hot path: one ``fromstring`` per page (C), then a fixed number of
C-level ``findtext`` calls per entry and one ``datetime.fromisoformat``; no
per-entry namespace handling or dict building. The few small responses
(CreateMultipartUpload, CompleteMultipartUpload, CopyObject, DeleteObjects) use the
same helpers; ``<Error>`` bodies are parsed by the shared transport
(``_http/transport.py``, ``parse_error``). Request bodies (CompleteMultipartUpload,
DeleteObjects) are short and escaped with ``xml.sax.saxutils.escape``.
"""

from __future__ import annotations

import heapq
import html
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote_plus
from xml.sax.saxutils import escape

from ...types import ListEntry

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"

__all__ = [
    "ListPage",
    "complete_body",
    "delete_body",
    "error_in_200",
    "parse_complete",
    "parse_complete_crc32c",
    "parse_copy",
    "parse_delete",
    "parse_list",
    "parse_upload_id",
    "next_page",
]


def _root(body: bytes) -> ET.Element:
    return ET.fromstring(body)


def _tag(root: ET.Element, name: str) -> str:
    """``name`` with the namespace the document uses (S3 uses one; some servers none)."""
    return NS + name if root.tag.startswith(NS) else name


def _text(el: ET.Element, ns: str, name: str) -> str | None:
    return el.findtext(ns + name)


def _time(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        t = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


@dataclass(slots=True)
class ListPage:
    entries: list[ListEntry]
    """Objects and common prefixes merged in UTF-8 byte order of name."""
    truncated: bool
    token: str | None = None
    key_marker: str | None = None
    version_marker: str | None = None


def _version(v: str | None) -> str | None:
    return None if not v or v == "null" else v


def url_decoded(value: str) -> str:
    """A name sent with ``encoding-type=url``: percent-encoded, a space as "+"."""
    return unquote_plus(value) if "%" in value or "+" in value else value


def _as_is(value: str) -> str:
    return value


def parse_list(body: bytes, *, versions: bool) -> ListPage:
    """A ListObjectsV2 or ListObjectVersions page.

    Listings are asked for with ``encoding-type=url``: XML 1.0 cannot carry most
    control characters and turns a "\r" into "\n", so S3 sends names percent-encoded
    instead. Names are decoded only when the page says ``<EncodingType>url``: a server
    that ignores the parameter sends them raw, and a raw "%" or "+" must stay as it is.
    Encoded here (AWS: ListObjectsV2, ListObjectVersions): Key, CommonPrefixes' Prefix,
    NextKeyMarker; the continuation token and version ids never are.
    """
    root = _root(body)
    ns = NS if root.tag.startswith(NS) else ""
    name: Callable[[str], str] = url_decoded if root.findtext(ns + "EncodingType") == "url" else _as_is
    k, s, e, m = ns + "Key", ns + "Size", ns + "ETag", ns + "LastModified"
    objects: list[ListEntry] = []
    add = objects.append
    if versions:
        vid, latest = ns + "VersionId", ns + "IsLatest"
        for el in root.iterfind(ns + "Version"):
            add(
                ListEntry(
                    name(el.findtext(k) or ""),
                    int(el.findtext(s) or 0),
                    (el.findtext(e) or "").strip('"'),
                    _version(el.findtext(vid)),
                    _time(el.findtext(m)),
                    el.findtext(latest) == "true",
                )
            )
    else:
        for el in root.iterfind(ns + "Contents"):
            add(
                ListEntry(
                    name(el.findtext(k) or ""),
                    int(el.findtext(s) or 0),
                    (el.findtext(e) or "").strip('"'),
                    None,
                    _time(el.findtext(m)),
                )
            )
    prefixes = [
        ListEntry(name=name(p.findtext(ns + "Prefix") or ""), is_prefix=True)
        for p in root.iterfind(ns + "CommonPrefixes")
    ]
    entries = list(heapq.merge(objects, prefixes, key=lambda x: x.name.encode())) if prefixes else objects
    return ListPage(
        entries=entries,
        truncated=root.findtext(ns + "IsTruncated") == "true",
        token=root.findtext(ns + "NextContinuationToken"),
        key_marker=name(root.findtext(ns + "NextKeyMarker") or "") or None,
        version_marker=root.findtext(ns + "NextVersionIdMarker"),
    )


_MARKERS = re.compile(
    rb"<(IsTruncated|NextContinuationToken|NextKeyMarker|NextVersionIdMarker|EncodingType)>([^<]*)</"
)


def next_page(body: bytes, *, versions: bool) -> dict[str, str] | None:
    """The query changes that fetch the page after this one, or None on the last page.

    Read with one regex over the raw bytes, before the page is parsed, so the next
    request is on its way while this page is parsed and consumed.
    """
    found = {m.group(1): html.unescape(m.group(2).decode()) for m in _MARKERS.finditer(body)}
    if found.get(b"IsTruncated") != "true":
        return None
    if not versions:
        return {"continuation-token": found.get(b"NextContinuationToken", "")}
    marker = found.get(b"NextKeyMarker", "")
    return {
        "key-marker": url_decoded(marker) if found.get(b"EncodingType") == "url" else marker,
        "version-id-marker": found.get(b"NextVersionIdMarker", ""),
    }


def error_in_200(body: bytes, result: str) -> tuple[str, str] | None:
    """None when a 200 answer's body is the ``result`` document; else (Code, Message).

    CompleteMultipartUpload, CopyObject and UploadPartCopy answer 200 at once and may
    send whitespace for minutes before the document, which can be an ``<Error>``
    (https://docs.aws.amazon.com/AmazonS3/latest/API/API_CompleteMultipartUpload.html,
    API_CopyObject.html, API_UploadPartCopy.html). The whole (small) body is read: an
    error after any amount of whitespace is found. Code "" means the body is empty,
    truncated or not the document expected: the call's outcome is unknown.
    """
    doc = body.strip()
    if not doc:
        return "", "200 OK with an empty body (the answer was cut short)"
    try:
        root = ET.fromstring(doc)
    except ET.ParseError as exc:
        return "", f"200 OK with a truncated or unreadable body ({len(body)} bytes: {exc})"
    name = root.tag.rpartition("}")[2]
    if name == "Error":
        ns = NS if root.tag.startswith(NS) else ""
        return root.findtext(ns + "Code") or "InternalError", root.findtext(ns + "Message") or ""
    if name != result:
        return "", f"200 OK with a <{name}> document where <{result}> was expected"
    return None


def parse_upload_id(body: bytes) -> str:
    root = _root(body)
    upload_id = root.findtext(_tag(root, "UploadId"))
    if not upload_id:
        raise ValueError("CreateMultipartUpload answered without an UploadId")
    return upload_id


def parse_complete(body: bytes) -> tuple[str, str]:
    """(ETag, or "" when the server left it out; error Code, or "" when it is a success).

    CompleteMultipartUpload may answer 200 with an <Error> body: the caller treats
    that like an error status (``error_in_200`` checks every 200 first).
    """
    root = _root(body.strip())
    if root.tag.endswith("Error"):
        return "", root.findtext(_tag(root, "Code")) or "InternalError"
    return (root.findtext(_tag(root, "ETag")) or "").strip('"'), ""


def parse_complete_crc32c(body: bytes) -> tuple[str, str]:
    """(ChecksumCRC32C, ChecksumType) of a CompleteMultipartUploadResult; "" where absent."""
    root = _root(body.strip())
    return root.findtext(_tag(root, "ChecksumCRC32C")) or "", root.findtext(_tag(root, "ChecksumType")) or ""


def parse_copy(body: bytes) -> tuple[str, datetime | None, str]:
    """CopyObjectResult / CopyPartResult: (ETag, LastModified, error Code or "")."""
    root = _root(body.strip())
    if root.tag.endswith("Error"):
        return "", None, root.findtext(_tag(root, "Code")) or "InternalError"
    etag = (root.findtext(_tag(root, "ETag")) or "").strip('"')
    return etag, _time(root.findtext(_tag(root, "LastModified"))), ""


def parse_delete(body: bytes) -> dict[str, tuple[str, str]]:
    """DeleteObjects (quiet): key -> (Code, Message) for each key that failed."""
    root = _root(body)
    ns = NS if root.tag.startswith(NS) else ""
    return {
        el.findtext(ns + "Key") or "": (el.findtext(ns + "Code") or "", el.findtext(ns + "Message") or "")
        for el in root.iterfind(ns + "Error")
    }


def complete_body(parts: Sequence[tuple[int, str]], crcs: Mapping[int, str] | None = None) -> bytes:
    """The parts list; with ``crcs``, each part's CRC32C too (an upload started with
    ``x-amz-checksum-algorithm: CRC32C`` lists them, as the AWS SDKs do)."""
    crcs = crcs or {}
    items = "".join(
        f"<Part><PartNumber>{n}</PartNumber><ETag>&quot;{escape(etag)}&quot;</ETag>"
        + (f"<ChecksumCRC32C>{escape(crcs[n])}</ChecksumCRC32C>" if n in crcs else "")
        + "</Part>"
        for n, etag in parts
    )
    return f'<CompleteMultipartUpload xmlns="{NS[1:-1]}">{items}</CompleteMultipartUpload>'.encode()


def delete_body(keys: Sequence[str]) -> bytes:
    items = "".join(f"<Object><Key>{escape(k)}</Key></Object>" for k in keys)
    return f'<Delete xmlns="{NS[1:-1]}"><Quiet>true</Quiet>{items}</Delete>'.encode()
