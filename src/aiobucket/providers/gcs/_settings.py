"""Parsing ``gs://cloud-name?...`` bucket settings into :class:`HttpSettings` (no I/O here).

Invariants:

* Credentials are dropped only for an emulator named as one: ``emulator=true``
  (URL parameter or option), or ``STORAGE_EMULATOR_HOST`` when no ``endpoint=``
  is given (or it names the same host). Any other endpoint keeps the credentials.
* A customer-supplied key is 32 bytes, given base64-encoded in the config
  (``encryption_key``) or in the environment variable ``encryption_key_env`` names;
  it excludes ``kms_key_name`` (GCS refuses both on one object).
* Every number is checked here: a bad option is InvalidArgument naming the bucket.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import aiohttp

from ...errors import InvalidArgument
from ._http import HttpSettings
from ._retry import RetryPolicy

if TYPE_CHECKING:
    from ...config import BucketSettings

URL_PARAMS = ("endpoint", "emulator")


def _float(options: Mapping[str, object], name: str, default: float) -> float:
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
        raise InvalidArgument(f"gs:// option {name} must be a positive number of seconds, got {value!r}")
    return float(value)


def _text(options: Mapping[str, object], name: str, bucket: str) -> str | None:
    value = options.get(name)
    if value is not None and (not isinstance(value, str) or not value):
        raise InvalidArgument(f"bucket {bucket!r}: {name} must be a non-empty string, got {value!r}")
    return value


def _flag(value: object, name: str, bucket: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    raise InvalidArgument(f"bucket {bucket!r}: {name} must be true or false, got {value!r}")


def _url(value: str | None, name: str, bucket: str) -> str | None:
    if value is not None and not value.startswith(("http://", "https://")):
        raise InvalidArgument(f"bucket {bucket!r}: {name} must be an http(s) URL, got {value!r}")
    return value.rstrip("/") if value else None


def _csek(options: Mapping[str, object], bucket: str) -> bytes | None:
    text = _text(options, "encryption_key", bucket)
    env = _text(options, "encryption_key_env", bucket)
    if text is not None and env is not None:
        raise InvalidArgument(f"bucket {bucket!r}: give encryption_key or encryption_key_env, not both")
    if env is not None:
        text = os.environ.get(env)
        if not text:
            raise InvalidArgument(f"bucket {bucket!r}: encryption_key_env names {env}, which is not set")
    if text is None:
        return None
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise InvalidArgument(
            f"bucket {bucket!r}: the customer-supplied encryption key must be 32 bytes, base64-encoded "
            "(e.g. `openssl rand -base64 32`)"
        )
    return key


def http_settings(settings: BucketSettings, name: str) -> tuple[str, HttpSettings]:
    """(the cloud bucket's name, its transport settings) from a ``gs://`` URL and options."""
    parts = urlsplit(settings.url)
    query = parse_qs(parts.query)
    unknown = set(query) - set(URL_PARAMS)
    if unknown:
        raise InvalidArgument(f"bucket {name!r}: unknown gs:// URL parameters {sorted(unknown)}")
    opts = settings.options
    endpoint = _url(query.get("endpoint", [None])[0], "endpoint", name)
    named: object = query.get("emulator", [None])[0]
    if named is None:
        named = opts.get("emulator")
    emulator = _flag(named, "emulator", name) if named is not None else False
    env_host = os.environ.get("STORAGE_EMULATOR_HOST")
    if env_host and not emulator:
        env_root = (env_host if env_host.startswith("http") else f"http://{env_host}").rstrip("/")
        if endpoint is None or endpoint == env_root:
            endpoint, emulator = env_root, True
    if emulator and endpoint is None:
        raise InvalidArgument(
            f"bucket {name!r}: emulator=true needs an endpoint= URL (or STORAGE_EMULATOR_HOST)"
        )
    service_file = _text(opts, "service_file", name)
    retries = opts.get("retries")
    if retries is not None and (isinstance(retries, bool) or not isinstance(retries, int) or retries < 1):
        raise InvalidArgument(f"bucket {name!r}: retries must be a positive int, got {retries!r}")
    traces = opts.get("trace_configs", ())
    if not isinstance(traces, list | tuple) or not all(isinstance(t, aiohttp.TraceConfig) for t in traces):
        raise InvalidArgument(f"bucket {name!r}: trace_configs must be a list of aiohttp.TraceConfig")
    universe = _text(opts, "universe_domain", name) or os.environ.get("GOOGLE_CLOUD_UNIVERSE_DOMAIN")
    kms = _text(opts, "kms_key_name", name)
    csek = _csek(opts, name)
    if kms is not None and csek is not None:
        raise InvalidArgument(f"bucket {name!r}: kms_key_name and a customer-supplied key exclude each other")
    policy = RetryPolicy(
        initial=_float(opts, "retry_initial", 1.0),
        cap=_float(opts, "retry_cap", 60.0),
        deadline=_float(opts, "retry_deadline", 120.0),
        attempts=retries,
        bucket=name,
    )
    http = HttpSettings(
        endpoint=endpoint,
        service_file=service_file,
        emulator=emulator,
        universe_domain=universe or "googleapis.com",
        user_project=_text(opts, "user_project", name),
        kms_key_name=kms,
        encryption_key=csek,
        signing_service_account=_text(opts, "signing_service_account", name),
        iam_endpoint=_url(_text(opts, "iam_endpoint", name), "iam_endpoint", name),
        connect_timeout=_float(opts, "connect_timeout", 10.0),
        read_timeout=_float(opts, "read_timeout", 60.0),
        request_timeout=_float(opts, "request_timeout", 120.0),
        retry=policy,
        trace_configs=tuple(traces),
    )
    return parts.netloc or name, http
