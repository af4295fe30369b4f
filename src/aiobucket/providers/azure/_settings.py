"""Parsing ``az://<container>?account=NAME&endpoint=...`` bucket settings (no driver imports).

Option names follow the S3 and GCS ones where the meaning is the same (``endpoint``,
``max_attempts``, timeouts, backoff, pool size). Credentials, in the order tried:
``account_key`` (or ``account_key_env``) signs with SharedKey; else ``sas_token``
is appended to every request; else azure-identity's ``DefaultAzureCredential``
supplies AAD bearer tokens (the ``aiobucket[azure]`` extra).

A ``connection_string`` (or ``connection_string_env``, such as
``AZURE_STORAGE_CONNECTION_STRING``), as the portal and the SDK's
``from_connection_string`` give it, supplies the account, the blob endpoint and the
key or SAS token instead; it cannot be combined with them (one source of truth).
``UseDevelopmentStorage=true`` is Azurite with its published development account.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from ...errors import InvalidArgument
from .._options import non_empty, positive

if TYPE_CHECKING:
    from ...config import BucketSettings

URL_PARAMS = ("account", "endpoint")
OPTIONS = (
    "account",
    "endpoint",
    "account_key",
    "account_key_env",
    "sas_token",
    "max_pool_connections",
    "max_attempts",
    "connect_timeout",
    "read_timeout",
    "backoff_base",
    "backoff_max",
    "ca_bundle",
    "connection_string",
    "connection_string_env",
)
DEV_ACCOUNT = "devstoreaccount1"
DEV_ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
"""Azurite's well-known development account (published in Azurite's README and the SDKs)."""
# Container names: 3-63 of lowercase letters, digits and single hyphens (Azure's naming rules).
_CONTAINER = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$")
_ACCOUNT = re.compile(r"^[a-z0-9]{3,24}$")


@dataclass(frozen=True, slots=True)
class AzureSettings:
    container: str
    account: str
    endpoint: str
    """The account's blob endpoint, no trailing slash: https://NAME.blob.core.windows.net,
    or Azurite's http://127.0.0.1:10000/devstoreaccount1."""
    account_key: str | None = None
    sas_token: str | None = None
    max_pool_connections: int = 64
    max_attempts: int = 5
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    backoff_base: float = 0.1
    backoff_max: float = 5.0
    ca_bundle: str | None = None
    """A PEM file of the CAs that the endpoint's TLS is verified against, instead of the
    system's store (a sovereign cloud's or a private endpoint's CA; Azurite with --cert)."""

    def __repr__(self) -> str:  # never print the key or the token
        return (
            f"AzureSettings(container={self.container!r}, account={self.account!r}, "
            f"endpoint={self.endpoint!r})"
        )


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _connection_string(opts: Mapping[str, object], where: str) -> dict[str, str]:
    """account, endpoint and account_key or sas_token from a connection string; {} without one."""
    text, env_name = opts.get("connection_string"), opts.get("connection_string_env")
    if text is not None and env_name is not None:
        raise InvalidArgument(f"{where}: set connection_string or connection_string_env, not both")
    if env_name is not None:
        text = os.environ.get(non_empty("connection_string_env", where, env_name))
        if not text:
            raise InvalidArgument(
                f"{where}: connection_string_env names {env_name!r}, but that environment variable is not set"
            )
    if text is None:
        return {}
    fields: dict[str, str] = {}
    for part in non_empty("connection_string", where, text).split(";"):
        if part.strip():
            field, sep, value = part.partition("=")
            if not sep:  # never echo the string: it may hold the key
                raise InvalidArgument(f"{where}: connection_string has a part that is not Name=Value")
            fields[field.strip().lower()] = value.strip()
    if fields.get("usedevelopmentstorage", "").lower() == "true":
        proxy = fields.get("developmentstorageproxyuri", "http://127.0.0.1").rstrip("/")
        return {
            "account": DEV_ACCOUNT,
            "account_key": DEV_ACCOUNT_KEY,
            "endpoint": f"{proxy}:10000/{DEV_ACCOUNT}",
        }
    out: dict[str, str] = {}
    if "accountname" in fields:
        out["account"] = fields["accountname"]
    if "blobendpoint" in fields:
        out["endpoint"] = fields["blobendpoint"]
    elif "account" in out:
        scheme = fields.get("defaultendpointsprotocol", "https")
        out["endpoint"] = (
            f"{scheme}://{out['account']}.blob.{fields.get('endpointsuffix', 'core.windows.net')}"
        )
    if "accountkey" in fields:
        out["account_key"] = fields["accountkey"]
    elif "sharedaccesssignature" in fields:
        out["sas_token"] = fields["sharedaccesssignature"]
    if "account" not in out:
        if "endpoint" not in out:
            raise InvalidArgument(f"{where}: connection_string names no AccountName and no BlobEndpoint")
        # NAME.blob.core.windows.net, or an emulator's http://127.0.0.1:10000/NAME.
        parts = urlsplit(out["endpoint"])
        host, path = parts.hostname or "", parts.path.strip("/")
        out["account"] = path.split("/")[0] if host == "localhost" or _is_ip(host) else host.split(".")[0]
    return out


def parse_settings(settings: BucketSettings, name: str) -> AzureSettings:
    where = f"bucket {name!r}"
    parts = urlsplit(settings.url)
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    unknown = sorted(set(query) - set(URL_PARAMS))
    if unknown:
        raise InvalidArgument(
            f"{where}: unknown parameter(s) {unknown} in {settings.url!r}; "
            f"az:// URLs take {', '.join(URL_PARAMS)}"
        )
    opts: Mapping[str, object] = settings.options
    unknown = sorted(set(opts) - set(OPTIONS))
    if unknown:
        raise InvalidArgument(f"{where}: unknown Azure option(s) {unknown}; known: {', '.join(OPTIONS)}")
    merged: dict[str, object] = {**opts, **query}
    from_string = _connection_string(opts, where)
    if from_string:
        clash = sorted(set(merged) & {"account", "endpoint", "account_key", "account_key_env", "sas_token"})
        if clash:
            raise InvalidArgument(f"{where}: set connection_string or {', '.join(clash)}, not both")
        merged.update(from_string)
        opts = {**opts, **from_string}
    container = parts.netloc or name
    if not _CONTAINER.match(container):
        raise InvalidArgument(
            f"{where}: {container!r} is not an Azure container name (3-63 lowercase letters, digits "
            "and single hyphens)"
        )
    if "account" not in merged:
        raise InvalidArgument(f"{where}: az:// needs the storage account: az://{container}?account=NAME")
    account = non_empty("account", where, merged["account"])
    if not _ACCOUNT.match(account):
        raise InvalidArgument(
            f"{where}: {account!r} is not a storage account name (3-24 lowercase letters/digits)"
        )
    endpoint = merged.get("endpoint")
    if endpoint is None:
        endpoint = f"https://{account}.blob.core.windows.net"
    endpoint = non_empty("endpoint", where, endpoint).rstrip("/")
    if not endpoint.startswith(("http://", "https://")):
        raise InvalidArgument(f"{where}: endpoint {endpoint!r} must start with http:// or https://")

    key = opts.get("account_key")
    key_env = opts.get("account_key_env")
    if key is not None and key_env is not None:
        raise InvalidArgument(f"{where}: set account_key or account_key_env, not both")
    if key_env is not None:
        env_name = non_empty("account_key_env", where, key_env)
        key = os.environ.get(env_name)
        if not key:
            raise InvalidArgument(
                f"{where}: account_key_env names {env_name!r}, but that environment variable is not set"
            )
    sas = opts.get("sas_token")
    concurrency = settings.concurrency or 8
    return AzureSettings(
        container=container,
        account=account,
        endpoint=endpoint,
        account_key=non_empty("account_key", where, key) if key is not None else None,
        sas_token=non_empty("sas_token", where, sas).lstrip("?") if sas is not None else None,
        max_pool_connections=int(
            positive(
                "max_pool_connections",
                where,
                opts.get("max_pool_connections", max(64, concurrency * 2 + 10)),
                int,
            )
        ),
        max_attempts=int(positive("max_attempts", where, opts.get("max_attempts", 5), int)),
        connect_timeout=positive("connect_timeout", where, opts.get("connect_timeout", 10.0), float),
        read_timeout=positive("read_timeout", where, opts.get("read_timeout", 60.0), float),
        backoff_base=positive("backoff_base", where, opts.get("backoff_base", 0.1), float),
        backoff_max=positive("backoff_max", where, opts.get("backoff_max", 5.0), float),
        ca_bundle=non_empty("ca_bundle", where, opts["ca_bundle"]) if "ca_bundle" in opts else None,
    )
