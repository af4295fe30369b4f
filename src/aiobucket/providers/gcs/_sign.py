"""V4 signed URLs for GCS (GOOG4-RSA-SHA256), signed locally with a service-account key.

https://cloud.google.com/storage/docs/access-control/signing-urls-manually

Only the ``host`` header is signed and the payload is UNSIGNED-PAYLOAD, so a
signed PUT accepts any Content-Type the uploader sends.
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
    now: datetime | None = None,
) -> str:
    """A path-style V4 signed URL: ``{base_url}/{bucket}/{key}?X-Goog-...``."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    seconds = int(ttl.total_seconds())
    if seconds < 1 or ttl > MAX_TTL:
        raise InvalidArgument(f"signed URL ttl must be between 1 second and 7 days, got {ttl}", key=key)
    now = (now or datetime.now(UTC)).astimezone(UTC)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    scope = f"{now:%Y%m%d}/auto/storage/goog4_request"
    base = urlsplit(base_url)
    host = base.netloc
    path = f"{base.path.rstrip('/')}/{quote(bucket, safe='')}/{quote(key, safe='/~')}"
    params = dict(extra_query or {})
    params.update(
        {
            "X-Goog-Algorithm": ALGORITHM,
            "X-Goog-Credential": f"{client_email}/{scope}",
            "X-Goog-Date": stamp,
            "X-Goog-Expires": str(seconds),
            "X-Goog-SignedHeaders": "host",
        }
    )
    query = canonical_query(params)
    canonical_request = "\n".join([method, path, query, f"host:{host}\n", "host", "UNSIGNED-PAYLOAD"])
    string_to_sign = "\n".join(
        [ALGORITHM, stamp, scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    try:
        pkey = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise NotSupported(f"the service-account private key cannot be loaded: {exc}", key=key) from exc
    if not isinstance(pkey, rsa.RSAPrivateKey):
        raise NotSupported("the service-account private key is not an RSA key", key=key)
    signature = pkey.sign(string_to_sign.encode(), padding.PKCS1v15(), hashes.SHA256()).hex()
    return f"{base.scheme}://{host}{path}?{query}&X-Goog-Signature={signature}"
