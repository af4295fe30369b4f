"""Parsing ``s3://cloud-name?...`` bucket settings (no driver imports here).

The bucket options that bucket policies require (encryption, requester pays, the
expected owner) are turned into request headers here, once per provider
(``OptionHeaders``), so the request path only merges ready dicts.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TypedDict
from urllib.parse import parse_qs, urlsplit

from ...errors import InvalidArgument
from .._options import non_empty, positive
from ._profiles import OVERRIDES, PROFILES, StoreProfile, apply_overrides, infer, profile_for

if TYPE_CHECKING:
    from ...config import BucketSettings

URL_PARAMS = ("region", "endpoint", "path_style", "provider")
OPTIONS: tuple[str, ...] = (
    "region",
    "endpoint",
    "path_style",
    "access_key_id",
    "secret_access_key",
    "secret_access_key_env",
    "session_token",
    "profile",
    "max_pool_connections",
    "max_attempts",
    "connect_timeout",
    "read_timeout",
    "backoff_base",
    "backoff_max",
    "retry_deadline",
    "retry_quota",
    "adaptive_retry",
    "ca_bundle",
    "provider",
    *OVERRIDES,
)
BUCKET_OPTIONS = (
    "sse",
    "sse_kms_key_id",
    "bucket_key",
    "sse_customer_key",
    "sse_customer_key_env",
    "request_payer",
    "expected_owner",
)
"""Options that bucket policies may require: encryption, requester pays, the owner."""
OPTIONS += BUCKET_OPTIONS
SSE_VALUES = ("AES256", "aws:kms")
REQUEST_PAYER_VALUES = ("requester",)
RETRY_MODES = ("legacy", "standard", "adaptive")
"""botocore's AWS_RETRY_MODE values: "adaptive" turns adaptive_retry on, the others off."""


@dataclass(frozen=True, slots=True)
class S3Settings:
    bucket: str
    region: str | None = None
    endpoint: str | None = None
    path_style: bool = False
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    profile: str | None = None
    max_pool_connections: int = 64
    """Connections kept per provider (made on demand): at least 64, so that many
    concurrent small requests never queue for one; more for wide multipart fan-outs."""
    max_attempts: int = 10
    """Total attempts per request for transient failures (see providers/_http/retry.py)."""
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    backoff_base: float = 0.1
    """Seconds: the n-th retry sleeps uniformly up to backoff_base * 2**(n-1) (full jitter)."""
    backoff_max: float = 20.0
    """Seconds: no single backoff sleeps longer."""
    retry_deadline: float = 30.0
    """Seconds from the start of one S3 API call (its first attempt) past which no retry of it
    starts: a retry whose backoff would end later is not made, and the error says so. It spans
    the call's every attempt, waits for a send slot, a region re-route (and its HeadBucket) and
    a fallback resend, and is never reset by them. It never cuts an attempt on the wire (the
    timeouts do). Each API call has its own: a multipart upload's parts, remove_many's
    batches, a resumed read's GET; bound a whole operation with ``asyncio.timeout``."""
    retry_quota: int = 500
    """Tokens this provider may spend on retries (5 a retry, 10 after a timeout; see _http/retry.py)."""
    adaptive_retry: bool = False
    """Pace the whole provider's requests after a throttle (``_http/ratelimit.py``); default: on for AWS."""
    ca_bundle: str | None = None
    """A PEM file of CAs that TLS is verified against instead of the system's (else
    ``AWS_CA_BUNDLE``, else the AWS profile's ``ca_bundle``)."""
    store: StoreProfile = PROFILES["aws"]
    """What the store honours: ``provider=`` or the endpoint's host, plus overrides (``_profiles.py``)."""

    sse: str | None = None
    """Server-side encryption asked for on every write: "AES256" or "aws:kms"; None: the
    bucket's default."""
    sse_kms_key_id: str | None = None
    """The KMS key (id, ARN or alias) of "aws:kms" writes; None: the bucket's or aws/s3."""
    bucket_key: bool | None = None
    """S3 Bucket Keys for "aws:kms" writes (x-amz-server-side-encryption-bucket-key-enabled)."""
    sse_customer_key: bytes | None = None
    """SSE-C: the customer's 256-bit key, sent on every request that reads or writes bytes."""
    request_payer: str | None = None
    """"requester": this account pays for requests to a requester-pays bucket."""
    expected_owner: str | None = None
    """The account ID that must own the bucket (x-amz-expected-bucket-owner): else 403."""

    def __repr__(self) -> str:  # never print the secret
        return (
            f"S3Settings(bucket={self.bucket!r}, region={self.region!r}, endpoint={self.endpoint!r}, "
            f"path_style={self.path_style!r}, access_key_id={self.access_key_id!r}, "
            f"provider={self.store.name!r})"
        )


def _bool(name: str, where: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise InvalidArgument(f"{where}: {name} must be true or false, got {value!r}")


def parse_settings(settings: BucketSettings, name: str) -> S3Settings:
    where = f"bucket {name!r}"
    parts = urlsplit(settings.url)
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    # A profile field may go in the URL too, as `aiobucket doctor` prints them.
    unknown = sorted(set(query) - set(URL_PARAMS) - set(OVERRIDES))
    if unknown:
        raise InvalidArgument(
            f"{where}: unknown parameter(s) {unknown} in {settings.url!r}; "
            f"s3:// URLs take {', '.join(URL_PARAMS)} and the store profile's fields ({', '.join(OVERRIDES)})"
        )
    opts: Mapping[str, object] = settings.options
    unknown = sorted(set(opts) - set(OPTIONS))
    if unknown:
        raise InvalidArgument(f"{where}: unknown S3 option(s) {unknown}; known: {', '.join(OPTIONS)}")
    merged: dict[str, object] = {**opts, **query}
    bucket = parts.netloc or name

    endpoint = merged.get("endpoint")
    if endpoint is not None:
        endpoint = non_empty("endpoint", where, endpoint).rstrip("/")
        if not endpoint.startswith(("http://", "https://")):
            raise InvalidArgument(f"{where}: endpoint {endpoint!r} must start with http:// or https://")
    region = merged.get("region")
    region = non_empty("region", where, region) if region is not None else None
    store = profile_for(merged.get("provider"), endpoint, where)
    store = apply_overrides(store, merged, where)
    if "path_style" in merged:  # the older spelling of addressing=path|virtual
        path_style = _bool("path_style", where, merged["path_style"])
        store = replace(store, addressing="path" if path_style else "virtual")
    path_style = store.addressing == "path"

    key_id = opts.get("access_key_id")
    secret = opts.get("secret_access_key")
    secret_env = opts.get("secret_access_key_env")
    if secret is not None and secret_env is not None:
        raise InvalidArgument(f"{where}: set secret_access_key or secret_access_key_env, not both")
    if secret_env is not None:
        env_name = non_empty("secret_access_key_env", where, secret_env)
        secret = os.environ.get(env_name)
        if not secret:
            raise InvalidArgument(
                f"{where}: secret_access_key_env names {env_name!r}, but that environment variable is not set"
            )
    if (key_id is None) != (secret is None):
        raise InvalidArgument(f"{where}: access_key_id and secret_access_key must be given together")
    token = opts.get("session_token")

    adaptive = _bool("adaptive_retry", where, opts["adaptive_retry"]) if "adaptive_retry" in opts else None
    if adaptive is None and os.environ.get("AWS_RETRY_MODE"):  # botocore's, as boto3 users set it
        mode = _choice("AWS_RETRY_MODE", where, os.environ["AWS_RETRY_MODE"], RETRY_MODES)
        adaptive = mode == "adaptive"
    attempts = opts.get("max_attempts", os.environ.get("AWS_MAX_ATTEMPTS") or 10)
    attempts_from = "max_attempts" if "max_attempts" in opts else "AWS_MAX_ATTEMPTS"
    concurrency = settings.concurrency or 8
    pool_default = max(64, concurrency * 2 + 10)
    return S3Settings(
        bucket=bucket,
        region=region,
        endpoint=endpoint,
        path_style=path_style,
        access_key_id=non_empty("access_key_id", where, key_id) if key_id is not None else None,
        secret_access_key=non_empty("secret_access_key", where, secret) if secret is not None else None,
        session_token=non_empty("session_token", where, token) if token is not None else None,
        profile=non_empty("profile", where, opts["profile"]) if "profile" in opts else None,
        max_pool_connections=int(
            positive("max_pool_connections", where, opts.get("max_pool_connections", pool_default), int)
        ),
        max_attempts=int(positive(attempts_from, where, attempts, int)),
        connect_timeout=positive("connect_timeout", where, opts.get("connect_timeout", 10.0), float),
        read_timeout=positive("read_timeout", where, opts.get("read_timeout", 60.0), float),
        backoff_base=positive("backoff_base", where, opts.get("backoff_base", 0.1), float),
        backoff_max=positive("backoff_max", where, opts.get("backoff_max", 20.0), float),
        retry_deadline=positive("retry_deadline", where, opts.get("retry_deadline", 30.0), float),
        retry_quota=int(positive("retry_quota", where, opts.get("retry_quota", 500), int)),
        adaptive_retry=is_aws(endpoint) if adaptive is None else adaptive,
        ca_bundle=non_empty("ca_bundle", where, opts["ca_bundle"]) if "ca_bundle" in opts else None,
        store=store,
        **_bucket_options(opts, where),
    )


def _choice(name: str, where: str, value: object, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise InvalidArgument(
            f"{where}: {name} must be one of {', '.join(repr(a) for a in allowed)}, got {value!r}"
        )
    assert isinstance(value, str)
    return value


class _BucketOptions(TypedDict, total=False):
    sse: str
    sse_kms_key_id: str
    bucket_key: bool
    sse_customer_key: bytes
    request_payer: str
    expected_owner: str


def _bucket_options(opts: Mapping[str, object], where: str) -> _BucketOptions:
    """sse, sse_kms_key_id, bucket_key, SSE-C, request_payer and expected_owner, checked."""
    out: _BucketOptions = {}
    sse = opts.get("sse")
    if sse is not None:
        sse = out["sse"] = _choice("sse", where, sse, SSE_VALUES)
    if "sse_kms_key_id" in opts:
        out["sse_kms_key_id"] = non_empty("sse_kms_key_id", where, opts["sse_kms_key_id"])
        if sse is None:
            sse = out["sse"] = "aws:kms"  # a KMS key means KMS encryption
    if "bucket_key" in opts:
        out["bucket_key"] = _bool("bucket_key", where, opts["bucket_key"])
    if sse != "aws:kms" and ("sse_kms_key_id" in opts or "bucket_key" in opts):
        raise InvalidArgument(f"{where}: sse_kms_key_id and bucket_key need sse = 'aws:kms', not {sse!r}")
    key = _customer_key(opts, where)
    if key is not None:
        if sse is not None:
            raise InvalidArgument(f"{where}: set sse or an SSE-C customer key (sse_customer_key), not both")
        out["sse_customer_key"] = key
    if "request_payer" in opts:
        out["request_payer"] = _choice("request_payer", where, opts["request_payer"], REQUEST_PAYER_VALUES)
    if "expected_owner" in opts:
        owner = opts["expected_owner"]
        if isinstance(owner, int) and not isinstance(owner, bool):
            owner = f"{owner:012d}"
        if not isinstance(owner, str) or len(owner) != 12 or not owner.isdigit():
            raise InvalidArgument(f"{where}: expected_owner must be a 12-digit AWS account ID, got {owner!r}")
        out["expected_owner"] = owner
    return out


def _customer_key(opts: Mapping[str, object], where: str) -> bytes | None:
    """The SSE-C key: base64 of 32 bytes, in config or in the environment variable it names."""
    value = opts.get("sse_customer_key")
    env = opts.get("sse_customer_key_env")
    if value is not None and env is not None:
        raise InvalidArgument(f"{where}: set sse_customer_key or sse_customer_key_env, not both")
    if env is not None:
        env_name = non_empty("sse_customer_key_env", where, env)
        value = os.environ.get(env_name)
        if not value:
            raise InvalidArgument(
                f"{where}: sse_customer_key_env names {env_name!r}, but that environment variable is not set"
            )
    if value is None:
        return None
    try:
        key = base64.b64decode(non_empty("sse_customer_key", where, value), validate=True)
    except binascii.Error:
        key = b""
    if len(key) != 32:
        raise InvalidArgument(
            f"{where}: the SSE-C customer key must be base64 of 32 bytes (a 256-bit AES key, "
            "e.g. from `openssl rand -base64 32`)"
        )
    return key


@dataclass(frozen=True, slots=True)
class OptionHeaders:
    """The headers the bucket options add, by the requests that carry them (S3 API reference:
    PutObject, CreateMultipartUpload, UploadPart, CopyObject, GetObject, HeadObject)."""

    every: dict[str, str]
    """On every request: x-amz-request-payer, x-amz-expected-bucket-owner."""
    write: dict[str, str]
    """On a new object (PutObject, CreateMultipartUpload, CopyObject's destination): SSE."""
    key: dict[str, str]
    """On every request that reads or writes an SSE-C object's bytes or attributes: GET,
    HEAD, UploadPart, CompleteMultipartUpload, and (with ``write``) the new object's."""
    source: dict[str, str]
    """On CopyObject / UploadPartCopy, about the source: its SSE-C key and its owner."""


def option_headers(s: S3Settings) -> OptionHeaders:
    every: dict[str, str] = {}
    if s.request_payer is not None:
        every["x-amz-request-payer"] = s.request_payer
    if s.expected_owner is not None:
        every["x-amz-expected-bucket-owner"] = s.expected_owner
    write: dict[str, str] = {}
    if s.sse is not None:
        write["x-amz-server-side-encryption"] = s.sse
    if s.sse_kms_key_id is not None:
        write["x-amz-server-side-encryption-aws-kms-key-id"] = s.sse_kms_key_id
    if s.bucket_key is not None:
        write["x-amz-server-side-encryption-bucket-key-enabled"] = "true" if s.bucket_key else "false"
    key: dict[str, str] = {}
    source: dict[str, str] = {}
    if s.sse_customer_key is not None:
        b64 = base64.b64encode(s.sse_customer_key).decode()
        md5 = base64.b64encode(hashlib.md5(s.sse_customer_key, usedforsecurity=False).digest()).decode()
        for prefix, into in (("x-amz-", key), ("x-amz-copy-source-", source)):
            into[prefix + "server-side-encryption-customer-algorithm"] = "AES256"
            into[prefix + "server-side-encryption-customer-key"] = b64
            into[prefix + "server-side-encryption-customer-key-md5"] = md5
    if s.expected_owner is not None:
        source["x-amz-source-expected-bucket-owner"] = s.expected_owner
    return OptionHeaders(every, {**write, **key}, key, source)


def is_aws(endpoint: str | None) -> bool:
    """AWS itself: no endpoint (the SDK's own) or an amazonaws.com host (the profiles' host table)."""
    return infer(endpoint) == "aws"
