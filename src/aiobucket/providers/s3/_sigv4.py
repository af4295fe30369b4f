"""AWS Signature Version 4 header signing for S3, in pure stdlib (hashlib/hmac).

Invariants:

- ``SigV4Signer.sign`` yields byte for byte the ``Authorization``, ``x-amz-date`` and
  ``x-amz-content-sha256`` that botocore's ``S3SigV4Auth`` yields for the same request
  (proved by tests/unit/test_sigv4.py). Like it, the canonical URI is the URL's path as
  sent (S3 paths are not normalised nor quoted again) and the canonical query is the
  URL's query split on ``&``/``=`` and sorted as (key, value) pairs, without re-encoding.
  One deliberate difference: an empty path is signed as ``/``, which is what goes on the
  wire (botocore never sends an empty path).
- Every header present is signed except botocore's hop-by-hop/tracing blacklist
  (user-agent, expect, connection, ...); headers added later by the HTTP client are not.
  Header names must be distinct case-insensitively, as with ``HTTPHeaders`` they would
  be joined with ``,``.
- The derived signing key is cached per (date, secret) within a signer (the signer is
  per region and service): a key costs four HMACs, a signature one HMAC and one SHA-256.
- Credentials are frozen per request; a refresh gives a new ``Credentials`` and so a new
  cache entry. The cache is bounded and safe under threads (single dict operations).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import formatdate
from urllib.parse import quote, urlsplit

__all__ = [
    "EMPTY_SHA256",
    "UNSIGNED_PAYLOAD",
    "Credentials",
    "SigV4Signer",
    "canonical_query",
    "quote_path",
]

UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

_ALGORITHM = "AWS4-HMAC-SHA256"
_STAMP = "%Y%m%dT%H%M%SZ"
# botocore.auth.SIGNED_HEADERS_BLACKLIST: headers a proxy or the client may change in flight.
_UNSIGNED = frozenset(
    {
        "baggage", "connection", "expect", "keep-alive", "proxy-authenticate", "proxy-authorization",
        "te", "traceparent", "tracestate", "trailer", "transfer-encoding", "upgrade", "user-agent",
        "x-amzn-trace-id",
    }
)  # fmt: skip
# Headers sign() sets itself; a stale copy (a retry re-signing its headers) is replaced.
_OWN = frozenset({"authorization", "x-amz-date", "x-amz-content-sha256"})
_OWN_WITH_TOKEN = _OWN | {"x-amz-security-token"}
_DEFAULT_PORTS = {"http": 80, "https": 443}
# scheme://netloc path ?query #fragment, as urlsplit reads an already-quoted URL.
_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://([^/?#]*)([^?#]*)(?:\?([^#]*))?")
_CACHE_MAX = 64
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))
# (sha256 state after the inner pad, after the outer pad, credential scope, Authorization prefix)
_Key = tuple["hashlib._Hash", "hashlib._Hash", str, str]


@dataclass(frozen=True, slots=True)
class Credentials:
    """One frozen set of credentials, used for a whole request (retries re-read the chain)."""

    access_key: str
    secret_key: str
    token: str | None = None


def quote_path(key_path: str) -> str:
    """URI-encode an S3 path as botocore does for ``{Key+}`` (UTF-8, ``/`` and ``~`` kept)."""
    return quote(key_path, safe="/~")


def canonical_query(params: Mapping[str, str] | Sequence[tuple[str, str]]) -> str:
    """The encoded, sorted query string; put it in the URL as is, and sign() signs it unchanged.

    Keys and values are encoded with only ``-_.~`` left bare; pairs sort by encoded key,
    then encoded value. An empty value gives ``key=`` (S3 accepts ``?uploads=``).
    """
    items = params.items() if isinstance(params, Mapping) else params
    pairs = sorted((quote(k, safe="-_.~"), quote(str(v), safe="-_.~")) for k, v in items)
    return "&".join([f"{k}={v}" for k, v in pairs])


def _canonical_url_query(query: str) -> str:
    if "&" not in query:
        return query if "=" in query or not query else query + "="
    pairs = [pair.partition("=") for pair in query.split("&")]
    pairs.sort()  # (key, "=" or "", value): the same order as sorting (key, value)
    return "&".join([f"{k}={v}" for k, _, v in pairs])


_hosts: dict[tuple[str, str], str] = {}


def _host(scheme: str, netloc: str) -> str:
    """The Host value botocore signs: lowercase, no userinfo, port only if not the default."""
    cached = _hosts.get((scheme, netloc))
    if cached is not None:
        return cached
    parts = urlsplit(f"{scheme}://{netloc}")
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal (urlsplit drops the brackets)
        host = f"[{host}]"
    port = parts.port
    if port is not None and port != _DEFAULT_PORTS.get(scheme.lower()):
        host = f"{host}:{port}"
    if len(_hosts) >= _CACHE_MAX:
        _hosts.clear()
    _hosts[(scheme, netloc)] = host
    return host


class SigV4Signer:
    """Signs requests for one region and service; cheap to call, safe to share."""

    __slots__ = ("_clock", "_keys", "_region", "_scope_tail", "_service")

    def __init__(self, region: str, service: str = "s3") -> None:
        if not region:
            raise ValueError("SigV4 needs a region (e.g. 'us-east-1')")
        self._region = region
        self._service = service
        self._scope_tail = f"/{region}/{service}/aws4_request"
        # (date, access key, secret) -> (signing key, credential scope, "Authorization" prefix)
        self._keys: dict[tuple[str, str, str], _Key] = {}
        self._clock: tuple[int, str] = (-1, "")

    @property
    def region(self) -> str:
        return self._region

    @property
    def service(self) -> str:
        return self._service

    def _now(self) -> str:
        # One strftime per second; the (second, stamp) pair is replaced atomically.
        t = int(time.time())
        clock = self._clock
        if clock[0] != t:
            clock = (t, time.strftime(_STAMP, time.gmtime(t)))
            self._clock = clock
        return clock[1]

    def _key(self, date: str, credentials: Credentials) -> _Key:
        ident = (date, credentials.access_key, credentials.secret_key)
        entry = self._keys.get(ident)
        if entry is None:
            key = hmac.digest(f"AWS4{credentials.secret_key}".encode(), date.encode(), "sha256")
            for part in (self._region, self._service, "aws4_request"):
                key = hmac.digest(key, part.encode(), "sha256")
            scope = date + self._scope_tail
            prefix = f"{_ALGORITHM} Credential={credentials.access_key}/{scope}, SignedHeaders="
            # RFC 2104 with the key's inner and outer pads hashed once: a signature then
            # costs two state copies instead of a fresh HMAC setup.
            padded = key.ljust(64, b"\0")
            inner = hashlib.sha256(padded.translate(_IPAD))
            outer = hashlib.sha256(padded.translate(_OPAD))
            entry = (inner, outer, scope, prefix)
            if len(self._keys) >= _CACHE_MAX:
                self._keys.clear()
            self._keys[ident] = entry
        return entry

    def sign(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        payload_hash: str,
        credentials: Credentials,
        now: datetime | None = None,
    ) -> None:
        """Add host (if absent), x-amz-date, x-amz-content-sha256, x-amz-security-token (with a
        token) and Authorization to ``headers``.

        ``url`` is the full URL as sent: path already quoted (``quote_path``), query already
        encoded (``canonical_query``). ``payload_hash`` is the body's hex SHA-256,
        ``EMPTY_SHA256`` or ``UNSIGNED_PAYLOAD``.
        """
        m = _URL.match(url)
        if m is None:
            raise ValueError(f"SigV4 needs an absolute URL, got {url!r}")
        scheme, netloc, path, query = m.groups()
        if now is None:
            stamp = self._now()
        else:
            if now.tzinfo is not None:
                now = now.astimezone(UTC)
            stamp = now.strftime(_STAMP)
        token = credentials.token
        own = _OWN_WITH_TOKEN if token else _OWN

        canon: dict[str, str] = {}
        stale: list[str] | None = None
        for name, value in headers.items():
            lname = name.lower()
            if lname in own:
                if name != lname:
                    stale = [*(stale or ()), name]
                continue
            if lname in _UNSIGNED:
                continue
            value = " ".join(value.split())  # SigV4 Trimall
            if lname in canon:
                canon[lname] = f"{canon[lname]},{value}"
            else:
                canon[lname] = value
        if stale:
            for name in stale:
                del headers[name]
        if "host" not in canon:
            host = _host(scheme, netloc)
            headers["host"] = canon["host"] = host
        if "date" in canon:
            # botocore keeps a Date header (re-dated to the signing time) instead of x-amz-date.
            self._redate(headers, stamp)
            canon["date"] = " ".join(headers["date"].split())
        else:
            headers["x-amz-date"] = canon["x-amz-date"] = stamp
        headers["x-amz-content-sha256"] = canon["x-amz-content-sha256"] = payload_hash
        if token:
            headers["x-amz-security-token"] = token
            canon["x-amz-security-token"] = " ".join(token.split())

        names = sorted(canon)
        signed = ";".join(names)
        lines = "".join([f"{n}:{canon[n]}\n" for n in names])
        cquery = _canonical_url_query(query) if query else ""
        canonical = f"{method.upper()}\n{path or '/'}\n{cquery}\n{lines}\n{signed}\n{payload_hash}"
        inner, outer, scope, prefix = self._key(stamp[:8], credentials)
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        mac = inner.copy()
        mac.update(f"{_ALGORITHM}\n{stamp}\n{scope}\n{digest}".encode())
        final = outer.copy()
        final.update(mac.digest())
        headers["authorization"] = f"{prefix}{signed}, Signature={final.hexdigest()}"

    @staticmethod
    def _redate(headers: dict[str, str], stamp: str) -> None:
        for name in [n for n in headers if n.lower() == "date"]:
            del headers[name]
        seconds = datetime.strptime(stamp, _STAMP).replace(tzinfo=UTC).timestamp()
        headers["date"] = formatdate(int(seconds))
        for name in [n for n in headers if n.lower() == "x-amz-date"]:
            del headers[name]
