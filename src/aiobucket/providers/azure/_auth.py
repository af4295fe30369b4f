"""How Azure requests are authorised: SharedKey, a SAS token, or an AAD bearer token.

Chosen once per provider from the settings, in this order: an account key (SharedKey,
``_sign.py``), a SAS token (appended to every request's query), else azure-identity's
``DefaultAzureCredential`` (managed identity, workload identity, Azure CLI ...), whose
tokens for ``https://storage.azure.com/.default`` are cached until five minutes
before they expire. azure-identity is imported only then (the ``aiobucket[azure]`` extra).
Signed URLs: a service SAS with the account key, a user-delegation SAS with AAD (the
provider fetches the delegation key); a SAS token cannot sign new ones.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl, quote

from ...errors import InvalidArgument, NotSupported, PermissionDenied
from ._sign import DelegationKey, HmacKey, sas_query, shared_key, string_to_sign, user_delegation_sas_query

if TYPE_CHECKING:
    from ._settings import AzureSettings

__all__ = ["Auth", "KeyFetcher", "make_auth"]

KeyFetcher = Callable[[datetime, datetime], Awaitable[DelegationKey]]
"""Gets a user-delegation key valid from ``start`` to ``expiry`` (Get User Delegation Key)."""

SCOPE = "https://storage.azure.com/.default"
_REFRESH_BEFORE = 300.0


class Auth(Protocol):
    async def authorize(
        self, method: str, path: str, query: list[tuple[str, str]], headers: dict[str, str]
    ) -> list[tuple[str, str]]:
        """Add credentials to ``headers`` (lower-case names); return the query to send."""
        ...

    async def sas(
        self, container: str, key: str, permission: str, ttl: timedelta, version: str, fetch: KeyFetcher
    ) -> str:
        """A SAS query string for one blob: service SAS (account key) or user-delegation
        SAS (AAD: ``fetch`` gets the delegation key)."""
        ...

    async def version_sas(
        self, container: str, key: str, version_id: str, ttl: timedelta, version: str
    ) -> str:
        """A read SAS for one version of a blob (service SAS only)."""
        ...

    async def aclose(self) -> None: ...


class SharedKeyAuth:
    def __init__(self, account: str, key_b64: str) -> None:
        try:
            self._key = base64.b64decode(key_b64, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidArgument(
                "account_key is not base64 (copy it from the storage account's keys)"
            ) from None
        self._account = account
        self._hmac = HmacKey(self._key)

    def sign(
        self, method: str, path: str, query: list[tuple[str, str]], headers: dict[str, str]
    ) -> list[tuple[str, str]]:
        """``authorize`` without a coroutine: SharedKey needs no I/O (the provider's fast path)."""
        headers["authorization"] = shared_key(
            self._account, self._hmac, string_to_sign(method, self._account, path, query, headers)
        )
        return query

    async def authorize(
        self, method: str, path: str, query: list[tuple[str, str]], headers: dict[str, str]
    ) -> list[tuple[str, str]]:
        return self.sign(method, path, query, headers)

    async def sas(
        self, container: str, key: str, permission: str, ttl: timedelta, version: str, fetch: KeyFetcher
    ) -> str:
        now = datetime.now(UTC).replace(microsecond=0)
        return sas_query(
            self._account, self._key, container, key, permission=permission, expiry=now + ttl,
            start=now - timedelta(minutes=5), version=version,
        )  # fmt: skip

    async def version_sas(
        self, container: str, key: str, version_id: str, ttl: timedelta, version: str
    ) -> str:
        now = datetime.now(UTC).replace(microsecond=0)
        return sas_query(
            self._account, self._key, container, key, permission="r", expiry=now + ttl,
            start=now - timedelta(minutes=5), version=version, version_id=version_id,
        )  # fmt: skip

    async def aclose(self) -> None:
        return None


def _no_version_sas(key: str) -> NotSupported:
    return NotSupported("a signed URL of a version needs an account key (service SAS with sr=bv)", key=key)


class SasAuth:
    def __init__(self, token: str) -> None:
        self._pairs = [(k, quote(v, safe="")) for k, v in parse_qsl(token, keep_blank_values=True)]
        if not any(k == "sig" for k, _ in self._pairs):
            raise InvalidArgument("sas_token has no sig= field: give the whole SAS query string")

    async def authorize(
        self, method: str, path: str, query: list[tuple[str, str]], headers: dict[str, str]
    ) -> list[tuple[str, str]]:
        return [*query, *self._pairs]

    async def sas(
        self, container: str, key: str, permission: str, ttl: timedelta, version: str, fetch: KeyFetcher
    ) -> str:
        raise NotSupported(
            "signed URLs need an account key (service SAS) or AAD (user-delegation SAS); "
            "a bucket configured with a SAS token cannot sign new ones",
            key=key,
        )

    async def version_sas(
        self, container: str, key: str, version_id: str, ttl: timedelta, version: str
    ) -> str:
        raise _no_version_sas(key)

    async def aclose(self) -> None:
        return None


class TokenAuth:
    def __init__(self, account: str, credential: Any = None) -> None:
        self._account = account
        self._credential: Any = credential
        """azure-identity's DefaultAzureCredential, made on first use unless given."""
        self._token: str | None = None
        self._expires = 0.0
        self._lock: asyncio.Lock | None = None

    async def _bearer(self) -> str:
        if self._token is not None and time.time() < self._expires - _REFRESH_BEFORE:
            return self._token
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._token is None or time.time() >= self._expires - _REFRESH_BEFORE:
                try:
                    from azure.identity.aio import DefaultAzureCredential
                except ImportError as exc:
                    raise PermissionDenied(
                        "no Azure credentials: set account_key or sas_token, or install "
                        "aiobucket[azure] for DefaultAzureCredential"
                    ) from exc
                if self._credential is None:
                    self._credential = DefaultAzureCredential()
                try:
                    token = await self._credential.get_token(SCOPE)
                except Exception as exc:
                    raise PermissionDenied(f"no Azure AAD token: {type(exc).__name__}: {exc}") from exc
                self._token, self._expires = token.token, float(token.expires_on)
        assert self._token is not None
        return self._token

    async def authorize(
        self, method: str, path: str, query: list[tuple[str, str]], headers: dict[str, str]
    ) -> list[tuple[str, str]]:
        headers["authorization"] = "Bearer " + await self._bearer()
        return query

    async def sas(
        self, container: str, key: str, permission: str, ttl: timedelta, version: str, fetch: KeyFetcher
    ) -> str:
        """A user-delegation SAS; the delegation key is fetched with our token (``fetch``)."""
        now = datetime.now(UTC).replace(microsecond=0)
        start, expiry = now - timedelta(minutes=5), now + ttl
        delegation = await fetch(start, expiry)
        return user_delegation_sas_query(
            self._account, delegation, container, key, permission=permission, expiry=expiry, start=start
        )

    async def version_sas(
        self, container: str, key: str, version_id: str, ttl: timedelta, version: str
    ) -> str:
        raise _no_version_sas(key)

    async def aclose(self) -> None:
        credential, self._credential = self._credential, None
        if credential is not None:
            await credential.close()


def make_auth(settings: AzureSettings) -> Auth:
    if settings.account_key is not None:
        return SharedKeyAuth(settings.account, settings.account_key)
    if settings.sas_token is not None:
        return SasAuth(settings.sas_token)
    return TokenAuth(settings.account)
