"""HMAC-signed URLs for local buckets, shared by the local provider and ``aiobucket serve``.

The library and the dev server find the same secret with no configuration: it
is a random key in the bucket's root directory (``<root>/signing.key``, mode
0600), created atomically on first use. A signature covers the HTTP method, the
bucket name, the stored key (with the bucket's key_prefix), the version and the
expiry, so changing any of them invalidates the URL.

A URL looks like::

    http://127.0.0.1:8787/o/<bucket>/<quoted key>?expires=<unix>&version=<v>&signature=<hex>

The server's base URL is the bucket option ``dev_server_url``, else the
``AIOBUCKET_DEV_SERVER`` environment variable, else ``http://127.0.0.1:8787``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import math
import os
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote, urlencode

__all__ = [
    "DEFAULT_DEV_SERVER",
    "ENV_DEV_SERVER",
    "KEY_FILE",
    "MAX_TTL_SECONDS",
    "PUBLIC_MARKER",
    "dev_server_base",
    "is_marked_public",
    "load_key",
    "mark_public",
    "object_url",
    "sign",
    "signed_url",
    "verify",
]

DEFAULT_DEV_SERVER = "http://127.0.0.1:8787"
ENV_DEV_SERVER = "AIOBUCKET_DEV_SERVER"
KEY_FILE = "signing.key"
PUBLIC_MARKER = "public"
MAX_TTL_SECONDS = 7 * 24 * 3600
_SLACK = 60  # seconds of clock skew tolerated on the 7-day limit
_SCHEME = "AIOBUCKET-HMAC-SHA256"
_marked: set[Path] = set()  # marker files known to exist: public_url() stats once


def dev_server_base(options: Mapping[str, object] | None = None) -> str:
    """Where ``aiobucket serve`` listens, for URLs the library hands out."""
    opt = (options or {}).get("dev_server_url")
    base = opt if isinstance(opt, str) and opt else os.environ.get(ENV_DEV_SERVER) or DEFAULT_DEV_SERVER
    return base.rstrip("/")


def object_url(base: str, bucket: str, key: str) -> str:
    """The dev server's URL of a stored key (key_prefix included), without a signature."""
    return f"{base.rstrip('/')}/o/{bucket}/{quote(key, safe='/~')}"


def load_key(root: Path, *, create: bool = True) -> bytes | None:
    """The bucket's signing secret; created (atomically, mode 0600) when missing and ``create``.

    The key is written to a private temp file, fsynced, then hard-linked into place:
    a link never replaces an existing file, so two processes racing to create it
    agree on the winner's key, and nobody ever reads a half-written one.
    """
    path = root / KEY_FILE
    with contextlib.suppress(FileNotFoundError):
        return _read(path)
    if not create:
        return None
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{KEY_FILE}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.write(fd, secrets.token_hex(32).encode() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return _read(path)


def _read(path: Path) -> bytes:
    data = path.read_bytes().strip()
    if len(data) < 32:
        raise OSError(f"signing key {path} is too short; delete it to make a new one")
    return data


def _message(method: str, bucket: str, key: str, version: str | None, expires: int) -> bytes:
    # Keys, bucket names and versions never contain a newline (key validation forbids
    # control characters), so the fields cannot run into each other.
    return "\n".join((_SCHEME, method.upper(), bucket, key, version or "", str(expires))).encode()


def sign(secret: bytes, method: str, bucket: str, key: str, version: str | None, expires: int) -> str:
    return hmac.new(secret, _message(method, bucket, key, version, expires), hashlib.sha256).hexdigest()


def signed_url(
    base: str,
    secret: bytes,
    method: str,
    bucket: str,
    key: str,
    version: str | None,
    ttl_seconds: float,
    *,
    now: float | None = None,
) -> str:
    expires = math.ceil((time.time() if now is None else now) + ttl_seconds)
    query: dict[str, str] = {"expires": str(expires)}
    if version is not None:
        query["version"] = version
    query["signature"] = sign(secret, method, bucket, key, version, expires)
    return object_url(base, bucket, key) + "?" + urlencode(query)


def verify(
    secret: bytes,
    method: str,
    bucket: str,
    key: str,
    version: str | None,
    expires: str | None,
    signature: str | None,
    *,
    now: float | None = None,
) -> str | None:
    """None when the signature is valid and unexpired, else the reason it is not."""
    if not expires or not signature:
        return "the URL is not signed"
    if not expires.isdigit() or len(expires) > 12:
        return "bad expiry"
    exp = int(expires)
    current = time.time() if now is None else now
    expected = sign(secret, method, bucket, key, version, exp)
    if not hmac.compare_digest(expected, signature.lower()):
        return "signature mismatch"
    if current > exp:
        return "the URL has expired"
    if exp > current + MAX_TTL_SECONDS + _SLACK:
        return "the expiry is too far in the future"
    return None


def mark_public(root: Path) -> None:
    """Record that code declared this local bucket ``BucketConfig(public=True)``.

    ``aiobucket serve`` cannot see the code's BucketConfig; this marker file in the
    bucket's root lets it serve unsigned GET/HEAD for the bucket, so the URLs
    ``public_url()`` returns work. Best effort: a read-only root just skips it.
    """
    path = root / PUBLIC_MARKER
    if path in _marked:
        return
    with contextlib.suppress(OSError):
        if not path.exists():
            root.mkdir(parents=True, exist_ok=True)
            path.touch(exist_ok=True)
        _marked.add(path)


def is_marked_public(root: Path) -> bool:
    return (root / PUBLIC_MARKER).is_file()
