"""V4 signed URLs for GCS (GOOG4-RSA-SHA256), signed locally with a service-account key.

https://cloud.google.com/storage/docs/access-control/signing-urls-manually

The ``host`` header is signed, plus ``content-type`` when the caller fixes it (then
GCS refuses a PUT with another Content-Type); the payload is UNSIGNED-PAYLOAD.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlsplit

from ...errors import InvalidArgument, NotSupported

MAX_TTL = timedelta(days=7)
ALGORITHM = "GOOG4-RSA-SHA256"


def canonical_query(params: Mapping[str, str]) -> str:
    return "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(params.items()))


def sign_v4(
    *,
    base_url: str,
    bucket: str,
    key: str,
    method: str,
    ttl: timedelta,
    client_email: str,
    private_key_pem: str,
    extra_query: Mapping[str, str] | None = None,
    content_type: str | None = None,
    now: datetime | None = None,
) -> str:
    """A path-style V4 signed URL: ``{base_url}/{bucket}/{key}?X-Goog-...``."""
    seconds = int(ttl.total_seconds())
    if seconds < 1 or ttl > MAX_TTL:
        raise InvalidArgument(f"signed URL ttl must be between 1 second and 7 days, got {ttl}", key=key)
    now = (now or datetime.now(UTC)).astimezone(UTC)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    scope = f"{now:%Y%m%d}/auto/storage/goog4_request"
    base = urlsplit(base_url)
    host = base.netloc
    path = f"{base.path.rstrip('/')}/{quote(bucket, safe='')}/{quote(key, safe='/~')}"
    headers = {"host": host}
    if content_type is not None:
        headers["content-type"] = " ".join(content_type.split())  # canonical: trimmed, spaces folded
    signed_headers = ";".join(sorted(headers))
    params = dict(extra_query or {})
    params.update(
        {
            "X-Goog-Algorithm": ALGORITHM,
            "X-Goog-Credential": f"{client_email}/{scope}",
            "X-Goog-Date": stamp,
            "X-Goog-Expires": str(seconds),
            "X-Goog-SignedHeaders": signed_headers,
        }
    )
    query = canonical_query(params)
    canonical_headers = "".join(f"{name}:{headers[name]}\n" for name in sorted(headers))
    canonical_request = "\n".join(
        [method, path, query, canonical_headers, signed_headers, "UNSIGNED-PAYLOAD"]
    )
    string_to_sign = "\n".join(
        [ALGORITHM, stamp, scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    signature = rsa_sign_hex(private_key_pem, string_to_sign.encode(), key)
    return f"{base.scheme}://{host}{path}?{query}&X-Goog-Signature={signature}"


def rsa_sign_hex(private_key_pem: str, message: bytes, key: str) -> str:
    """RSASSA-PKCS1-v1_5 with SHA-256 (GOOG4-RSA-SHA256), hex: URLs and POST policies alike."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    try:
        pkey = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise NotSupported(f"the service-account private key cannot be loaded: {exc}", key=key) from exc
    if not isinstance(pkey, rsa.RSAPrivateKey):
        raise NotSupported("the service-account private key is not an RSA key", key=key)
    return pkey.sign(message, padding.PKCS1v15(), hashes.SHA256()).hex()
