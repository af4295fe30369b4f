"""V4 signed URLs for GCS (GOOG4-RSA-SHA256); the key material is a function of bytes.

https://cloud.google.com/storage/docs/access-control/signing-urls-manually

A :data:`Signer` takes the bytes to sign and returns an RSASSA-PKCS1-v1_5 SHA-256
signature: :func:`pem_signer` with a service account's private key, or
``_iam.sign_blob_signer`` through the IAM Credentials ``signBlob`` API when the
credentials hold no key (Workload Identity, the metadata server, impersonation).
Everything else here is pure string building, checked byte for byte against
Google's conformance vectors (``tests/unit/test_gcs_signing_vectors.py``).

The provider signs the ``host`` header, plus ``content-type`` when the caller
fixes it (then GCS refuses a PUT with another Content-Type); the payload is
UNSIGNED-PAYLOAD. The signed ``host`` is the host name without its port, as in
Google's vectors (``localhost:8080`` signs ``host:localhost``); the URL keeps the port.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlsplit

from ...errors import InvalidArgument, NotSupported

__all__ = [
    "ALGORITHM",
    "MAX_TTL",
    "Signer",
    "V4Request",
    "canonical_query",
    "object_path",
    "pem_signer",
    "sign_v4",
    "sign_v4_url",
]

MAX_TTL = timedelta(days=7)
ALGORITHM = "GOOG4-RSA-SHA256"

Signer = Callable[[bytes], Awaitable[bytes]]
"""Signs bytes with the service account's key (RSASSA-PKCS1-v1_5, SHA-256); returns the signature."""


def pem_signer(private_key_pem: str, key: str | None = None) -> Signer:
    """A signer with a local PEM key (loaded now: a bad key is NotSupported before any request)."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    try:
        pkey = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise NotSupported(f"the service-account private key cannot be loaded: {exc}", key=key) from exc
    if not isinstance(pkey, rsa.RSAPrivateKey):
        raise NotSupported("the service-account private key is not an RSA key", key=key)

    async def sign(message: bytes) -> bytes:
        return pkey.sign(message, padding.PKCS1v15(), hashes.SHA256())

    return sign


def canonical_query(params: Mapping[str, str]) -> str:
    return "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(params.items()))


def object_path(bucket: str, key: str | None) -> str:
    """``/bucket/key`` (path style); slashes in the key stay, everything else is escaped."""
    path = f"/{quote(bucket, safe='')}"
    return path if key is None else f"{path}/{quote(key, safe='/~')}"


@dataclass(frozen=True, slots=True)
class V4Request:
    """The strings a V4 signature is made over, and the URL it goes on."""

    canonical_request: str
    string_to_sign: str
    url: str
    """Everything but ``&X-Goog-Signature=...``."""


def v4_request(
    *,
    base_url: str,
    path: str,
    method: str,
    seconds: int,
    client_email: str,
    now: datetime,
    query: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> V4Request:
    """Google's canonical request and string to sign for a query-string-authenticated request."""
    now = now.astimezone(UTC)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    scope = f"{now:%Y%m%d}/auto/storage/goog4_request"
    base = urlsplit(base_url)
    signed = {"host": base.hostname or base.netloc}
    for name, value in (headers or {}).items():
        signed[name.lower()] = " ".join(value.split())  # canonical: trimmed, whitespace runs folded
    names = ";".join(sorted(signed))
    params = dict(query or {})
    params.update(
        {
            "X-Goog-Algorithm": ALGORITHM,
            "X-Goog-Credential": f"{client_email}/{scope}",
            "X-Goog-Date": stamp,
            "X-Goog-Expires": str(seconds),
            "X-Goog-SignedHeaders": names,
        }
    )
    query_text = canonical_query(params)
    canonical_headers = "".join(f"{name}:{signed[name]}\n" for name in sorted(signed))
    payload = signed.get("x-goog-content-sha256", "UNSIGNED-PAYLOAD")
    canonical_request = "\n".join([method, path, query_text, canonical_headers, names, payload])
    string_to_sign = "\n".join(
        [ALGORITHM, stamp, scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    url = f"{base.scheme}://{base.netloc}{path}?{query_text}"
    return V4Request(canonical_request, string_to_sign, url)


async def sign_v4_url(request: V4Request, signer: Signer) -> str:
    signature = await signer(request.string_to_sign.encode())
    return f"{request.url}&X-Goog-Signature={signature.hex()}"


def ttl_seconds(ttl: timedelta, key: str | None) -> int:
    seconds = int(ttl.total_seconds())
    if seconds < 1 or ttl > MAX_TTL:
        raise InvalidArgument(f"signed URL ttl must be between 1 second and 7 days, got {ttl}", key=key)
    return seconds


async def sign_v4(
    *,
    base_url: str,
    bucket: str,
    key: str,
    method: str,
    ttl: timedelta,
    client_email: str,
    signer: Signer,
    extra_query: Mapping[str, str] | None = None,
    content_type: str | None = None,
    not_exists: bool = False,
    now: datetime | None = None,
) -> str:
    """A path-style V4 signed URL: ``{base_url}/{bucket}/{key}?X-Goog-...``.

    ``content_type`` and ``not_exists`` become signed headers the uploader must send
    (``x-goog-if-generation-match: 0`` makes the PUT create-only)."""
    headers: dict[str, str] = {}
    if content_type is not None:
        headers["content-type"] = content_type
    if not_exists:
        headers["x-goog-if-generation-match"] = "0"
    request = v4_request(
        base_url=base_url,
        path=f"{urlsplit(base_url).path.rstrip('/')}{object_path(bucket, key)}",
        method=method,
        seconds=ttl_seconds(ttl, key),
        client_email=client_email,
        now=now or datetime.now(UTC),
        query=extra_query,
        headers=headers or None,
    )
    return await sign_v4_url(request, signer)
