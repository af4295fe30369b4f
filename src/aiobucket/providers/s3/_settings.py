"""Parsing ``s3://cloud-name?...`` bucket settings (no driver imports here)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from ...errors import InvalidArgument

if TYPE_CHECKING:
    from ...config import BucketSettings

URL_PARAMS = ("region", "endpoint", "path_style")
OPTIONS = (
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
)


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
    """Total attempts per request for transient failures (see providers/s3/_retry.py)."""
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    backoff_base: float = 0.1
    """Seconds: the n-th retry sleeps uniformly up to backoff_base * 2**(n-1) (full jitter)."""
    backoff_max: float = 20.0
    """Seconds: no single backoff sleeps longer."""
    retry_deadline: float = 30.0
    """Seconds: no retry of a request whose backoff would end later than this after its first attempt."""
    retry_quota: int = 500
    """Tokens this provider may spend on retries (5 a retry, 10 after a timeout; see _retry.py)."""
    adaptive_retry: bool = False
    """Pace the whole provider's requests after a throttle (``_ratelimit.py``); default: on for AWS."""

    def __repr__(self) -> str:  # never print the secret
        return (
            f"S3Settings(bucket={self.bucket!r}, region={self.region!r}, endpoint={self.endpoint!r}, "
            f"path_style={self.path_style!r}, access_key_id={self.access_key_id!r})"
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


def _number(name: str, where: str, value: object, kind: type[int] | type[float]) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidArgument(f"{where}: {name} must be a positive number, got {value!r}")
    try:
        n = kind(value)
    except ValueError:
        raise InvalidArgument(f"{where}: {name} must be a positive number, got {value!r}") from None
    if n <= 0:
        raise InvalidArgument(f"{where}: {name} must be a positive number, got {value!r}")
    return n


def _str(name: str, where: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"{where}: {name} must be a non-empty string")
    return value


def parse_settings(settings: BucketSettings, name: str) -> S3Settings:
    where = f"bucket {name!r}"
    parts = urlsplit(settings.url)
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    unknown = sorted(set(query) - set(URL_PARAMS))
    if unknown:
        raise InvalidArgument(
            f"{where}: unknown parameter(s) {unknown} in {settings.url!r}; "
            f"s3:// URLs take {', '.join(URL_PARAMS)}"
        )
    opts: Mapping[str, object] = settings.options
    unknown = sorted(set(opts) - set(OPTIONS))
    if unknown:
        raise InvalidArgument(f"{where}: unknown S3 option(s) {unknown}; known: {', '.join(OPTIONS)}")
    merged: dict[str, object] = {**opts, **query}
    bucket = parts.netloc or name

    endpoint = merged.get("endpoint")
    if endpoint is not None:
        endpoint = _str("endpoint", where, endpoint).rstrip("/")
        if not endpoint.startswith(("http://", "https://")):
            raise InvalidArgument(f"{where}: endpoint {endpoint!r} must start with http:// or https://")
    region = merged.get("region")
    region = _str("region", where, region) if region is not None else None
    path_style = _bool("path_style", where, merged.get("path_style", endpoint is not None))

    key_id = opts.get("access_key_id")
    secret = opts.get("secret_access_key")
    secret_env = opts.get("secret_access_key_env")
    if secret is not None and secret_env is not None:
        raise InvalidArgument(f"{where}: set secret_access_key or secret_access_key_env, not both")
    if secret_env is not None:
        env_name = _str("secret_access_key_env", where, secret_env)
        secret = os.environ.get(env_name)
        if not secret:
            raise InvalidArgument(
                f"{where}: secret_access_key_env names {env_name!r}, but that environment variable is not set"
            )
    if (key_id is None) != (secret is None):
        raise InvalidArgument(f"{where}: access_key_id and secret_access_key must be given together")
    token = opts.get("session_token")

    adaptive = _bool("adaptive_retry", where, opts["adaptive_retry"]) if "adaptive_retry" in opts else None
    concurrency = settings.concurrency or 8
    pool_default = max(64, concurrency * 2 + 10)
    return S3Settings(
        bucket=bucket,
        region=region,
        endpoint=endpoint,
        path_style=path_style,
        access_key_id=_str("access_key_id", where, key_id) if key_id is not None else None,
        secret_access_key=_str("secret_access_key", where, secret) if secret is not None else None,
        session_token=_str("session_token", where, token) if token is not None else None,
        profile=_str("profile", where, opts["profile"]) if "profile" in opts else None,
        max_pool_connections=int(
            _number("max_pool_connections", where, opts.get("max_pool_connections", pool_default), int)
        ),
        max_attempts=int(_number("max_attempts", where, opts.get("max_attempts", 10), int)),
        connect_timeout=_number("connect_timeout", where, opts.get("connect_timeout", 10.0), float),
        read_timeout=_number("read_timeout", where, opts.get("read_timeout", 60.0), float),
        backoff_base=_number("backoff_base", where, opts.get("backoff_base", 0.1), float),
        backoff_max=_number("backoff_max", where, opts.get("backoff_max", 20.0), float),
        retry_deadline=_number("retry_deadline", where, opts.get("retry_deadline", 30.0), float),
        retry_quota=int(_number("retry_quota", where, opts.get("retry_quota", 500), int)),
        adaptive_retry=is_aws(endpoint) if adaptive is None else adaptive,
    )


def is_aws(endpoint: str | None) -> bool:
    """AWS itself: no endpoint (the SDK's own) or an amazonaws.com host."""
    if endpoint is None:
        return True
    host = (urlsplit(endpoint).hostname or "").lower()
    return host.endswith((".amazonaws.com", ".amazonaws.com.cn"))
