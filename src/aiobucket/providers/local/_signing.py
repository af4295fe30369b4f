"""HMAC-signed URLs for local buckets, shared by the local provider and ``aiobucket serve``.

The library and the dev server find the same secret with no configuration: it
is a random key in the bucket's root directory (``<root>/signing.key``, mode
0600), created atomically on first use. A signature covers the HTTP method, the
bucket name, the stored key (with the bucket's key_prefix), the version and the
expiry, so changing any of them invalidates the URL. A signed PUT may also fix the
Content-Type and the size (``content_type`` / ``content_length`` in the query, and
in the signed message), which the server then requires of the request, and may be
create-only (``create_only=1``, signed): the server then writes with
``Preconditions(not_exists=True)`` whatever headers the request carries.

A URL looks like::

    http://127.0.0.1:8787/o/<bucket>/<quoted key>?expires=<unix>&version=<v>&signature=<hex>

An upload form (``signed_form``) is POSTed to ``/upload/<bucket>``: its ``policy``
field is base64 JSON (bucket, stored key, expiry, size range, Content-Type rule,
metadata) and its ``signature`` field an HMAC of exactly that base64 text, so the
server trusts nothing else in the form.

The server's base URL is the bucket option ``dev_server_url``, else the
``AIOBUCKET_DEV_SERVER`` environment variable, else ``http://127.0.0.1:8787``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import math
import os
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from ...types import UploadForm
from ..base import PostPolicy

__all__ = [
    "DEFAULT_DEV_SERVER",
    "ENV_DEV_SERVER",
    "KEY_FILE",
    "MAX_TTL_SECONDS",
    "PUBLIC_MARKER",
    "dev_server_base",
    "form_url",
    "is_marked_public",
    "load_key",
    "mark_public",
    "object_url",
    "sign",
    "signed_form",
    "signed_url",
    "verify",
    "verify_form",
]

DEFAULT_DEV_SERVER = "http://127.0.0.1:8787"
ENV_DEV_SERVER = "AIOBUCKET_DEV_SERVER"
KEY_FILE = "signing.key"
PUBLIC_MARKER = "public"
MAX_TTL_SECONDS = 7 * 24 * 3600
_SLACK = 60  # seconds of clock skew tolerated on the 7-day limit
_SCHEME = "AIOBUCKET-HMAC-SHA256"
_FORM_SCHEME = "AIOBUCKET-HMAC-SHA256-FORM"
FORM_PREFIX = "/upload/"


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


def _message(
    method: str,
    bucket: str,
    key: str,
    version: str | None,
    expires: int,
    content_type: str | None = None,
    content_length: int | str | None = None,
    create_only: bool = False,
) -> bytes:
    # Keys, bucket names, versions and content types never contain a newline (the
    # library refuses control characters), so the fields cannot run into each other.
    # URLs without the PUT extras sign exactly what they signed before the extras existed.
    fields = [_SCHEME, method.upper(), bucket, key, version or "", str(expires)]
    if content_type is not None or content_length is not None or create_only:
        fields += [content_type or "", "" if content_length is None else str(content_length)]
    if create_only:
        fields.append("create-only")
    return "\n".join(fields).encode()


def sign(
    secret: bytes,
    method: str,
    bucket: str,
    key: str,
    version: str | None,
    expires: int,
    content_type: str | None = None,
    content_length: int | str | None = None,
    create_only: bool = False,
) -> str:
    message = _message(method, bucket, key, version, expires, content_type, content_length, create_only)
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def signed_url(
    base: str,
    secret: bytes,
    method: str,
    bucket: str,
    key: str,
    version: str | None,
    ttl_seconds: float,
    *,
    content_type: str | None = None,
    content_length: int | None = None,
    create_only: bool = False,
    now: float | None = None,
) -> str:
    expires = math.ceil((time.time() if now is None else now) + ttl_seconds)
    query: dict[str, str] = {"expires": str(expires)}
    if version is not None:
        query["version"] = version
    if content_type is not None:
        query["content_type"] = content_type
    if content_length is not None:
        query["content_length"] = str(content_length)
    if create_only:
        query["create_only"] = "1"
    query["signature"] = sign(
        secret, method, bucket, key, version, expires, content_type, content_length, create_only
    )
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
    content_type: str | None = None,
    content_length: str | None = None,
    create_only: str | None = None,
    now: float | None = None,
) -> str | None:
    """None when the signature is valid and unexpired, else the reason it is not.

    ``content_type`` / ``content_length`` / ``create_only`` are the URL's own query
    values: the caller checks the request against them once the signature vouches for them.
    """
    if not expires or not signature:
        return "the URL is not signed"
    if not expires.isdigit() or len(expires) > 12:
        return "bad expiry"
    exp = int(expires)
    if create_only not in (None, "1"):
        return "bad create_only"
    expected = sign(
        secret, method, bucket, key, version, exp, content_type, content_length, create_only == "1"
    )
    if not hmac.compare_digest(expected, signature.lower()):
        return "signature mismatch"
    return _check_expiry(exp, now, "URL")


def _check_expiry(expires: int, now: float | None, what: str) -> str | None:
    current = time.time() if now is None else now
    if current > expires:
        return f"the {what} has expired"
    if expires > current + MAX_TTL_SECONDS + _SLACK:
        return "the expiry is too far in the future"
    return None


# -- upload forms -----------------------------------------------------------------------


def form_url(base: str, bucket: str) -> str:
    """Where the dev server takes a bucket's form uploads."""
    return f"{base.rstrip('/')}{FORM_PREFIX}{bucket}"


def _form_signature(secret: bytes, policy_b64: str) -> str:
    return hmac.new(secret, f"{_FORM_SCHEME}\n{policy_b64}".encode(), hashlib.sha256).hexdigest()


def signed_form(
    base: str, secret: bytes, bucket: str, key: str, policy: PostPolicy, *, now: float | None = None
) -> UploadForm:
    """A dev-server form: fields ``key``, ``Content-Type`` (when fixed), ``policy``, ``signature``."""
    expires = math.ceil((time.time() if now is None else now) + policy.ttl.total_seconds())
    document = {
        "bucket": bucket,
        "key": key,
        "expires": expires,
        "min_size": policy.min_size,
        "max_size": policy.max_size,
        "content_type": policy.content_type,
        "content_type_prefix": policy.content_type_prefix,
        "metadata": dict(policy.metadata),
    }
    encoded = base64.b64encode(json.dumps(document, separators=(",", ":")).encode()).decode()
    fields = {"key": key}
    if policy.content_type is not None:
        fields["Content-Type"] = policy.content_type
    fields["policy"] = encoded
    fields["signature"] = _form_signature(secret, encoded)
    return UploadForm(url=form_url(base, bucket), fields=fields)


def verify_form(
    secret: bytes, policy_b64: str | None, signature: str | None, *, now: float | None = None
) -> tuple[dict[str, Any] | None, str | None]:
    """(the policy document, None) when the form is validly signed and unexpired, else (None, why)."""
    if not policy_b64 or not signature:
        return None, "the form has no policy or no signature"
    if not hmac.compare_digest(_form_signature(secret, policy_b64), signature.lower()):
        return None, "signature mismatch"
    try:  # signed by us, so well-formed; checked anyway rather than trusted blindly
        document = json.loads(base64.b64decode(policy_b64, validate=True))
        expires = document["expires"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        return None, "the policy is not readable"
    if not isinstance(document, dict) or not isinstance(expires, int):
        return None, "the policy is not readable"
    reason = _check_expiry(expires, now, "form")
    return (None, reason) if reason else (document, None)


def mark_public(root: Path) -> None:
    """Record in the bucket's root that code declared it ``BucketConfig(public=True)``.

    ``aiobucket serve`` cannot see the code's BucketConfig; this marker file lets it
    serve unsigned GET/HEAD for the bucket, so the URLs ``public_url()`` returns work.
    The local provider calls it when it opens the bucket (in a worker thread), never
    ``public_url()``, which does no I/O. Best effort: a read-only root just skips it.
    """
    with contextlib.suppress(OSError):
        (root / PUBLIC_MARKER).touch(exist_ok=True)


def is_marked_public(root: Path) -> bool:
    return (root / PUBLIC_MARKER).is_file()
