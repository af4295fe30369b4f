"""HTTP header values the S3 and Azure providers share: ETags, dates, ranges, preconditions.

Invariants:

* ETags are unquoted on the way in and quoted on the way out; a hex ETag goes out in
  lower case (``quote_etag``), as S3 makes them and compares them (byte for byte).
* Dates are IMF-fixdates (RFC 9110 5.6.7) in UTC; one that does not parse is None,
  never an error (a header a server got wrong must not fail a read).
* ``Content-Range`` that is absent or malformed is None: the caller decides what that
  means for its request.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime

from ...types import Preconditions

__all__ = [
    "HEX_DIGITS",
    "format_http_date",
    "http_date",
    "parse_content_range",
    "precondition_headers",
    "quote_etag",
    "unquote_etag",
]

HEX_DIGITS = frozenset("0123456789abcdef")
_HEX_ANY_CASE = frozenset("0123456789abcdefABCDEF-")
_MONTH_NAMES = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec"
_MONTHS = {m: i for i, m in enumerate(_MONTH_NAMES.split(), 1)}


def quote_etag(etag: str) -> str:
    """The ETag as a header value: quoted, and a hex ETag ("-N" suffix allowed) in lower
    case, as S3 makes them and compares them (byte for byte)."""
    bare = etag.strip('"')
    if not HEX_DIGITS.issuperset(bare) and _HEX_ANY_CASE.issuperset(bare):
        bare = bare.lower()
    return f'"{bare}"'


def unquote_etag(etag: object) -> str:
    return str(etag or "").strip('"')


def http_date(raw: str | None) -> datetime | None:
    """An IMF-fixdate ("Wed, 21 Oct 2015 07:28:00 GMT") without email.utils' slow path."""
    if not raw:
        return None
    try:
        if len(raw) == 29 and raw.endswith(" GMT"):
            return datetime(
                int(raw[12:16]), _MONTHS[raw[8:11]], int(raw[5:7]),
                int(raw[17:19]), int(raw[20:22]), int(raw[23:25]), tzinfo=UTC,
            )  # fmt: skip
        return parsedate_to_datetime(raw).astimezone(UTC)
    except (KeyError, ValueError, TypeError):
        return None


def format_http_date(when: datetime) -> str:
    return format_datetime(when.astimezone(UTC), usegmt=True)


def precondition_headers(pre: Preconditions) -> dict[str, str]:
    if pre.not_exists:
        return {"if-none-match": "*"}
    if pre.if_match is not None:
        return {"if-match": quote_etag(pre.if_match)}
    return {}


def parse_content_range(raw: str | None) -> tuple[int, int, int] | None:
    """(first, last, total) of "bytes first-last/total"; None when absent or malformed."""
    if not raw or not raw.startswith("bytes "):
        return None
    span, _, total = raw[6:].partition("/")
    first, _, last = span.partition("-")
    try:
        return int(first), int(last), int(total)
    except ValueError:
        return None
