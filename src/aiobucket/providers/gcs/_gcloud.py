"""Credentials for GCS: where requests go, the tokens that authorize them, who signs.

Invariants:

* An emulator gets no credentials, and only an emulator named as one
  (``emulator=true``, or ``STORAGE_EMULATOR_HOST``; decided in ``_settings.py``).
  Any other endpoint (Private Service Connect, a regional endpoint, a proxy)
  gets the same credentials as Google's own.
* A token fetch is one attempt bounded by the time the caller gives it; the
  caller (``_http.GcsHttp``) retries it within the request's retry budget. A
  transient failure is :class:`TokenUnavailable` (internal: it never leaves
  ``_http.py``); a refusal is PermissionDenied at once.
* Concurrent requests share one fetch (single flight); a token is reused until
  shortly before it expires, or until a 401 says it was revoked (``invalidate``).
* Tokens come from the standard Google chain: the ``service_file`` option,
  ``GOOGLE_APPLICATION_CREDENTIALS``, gcloud's application-default file (all read
  and refreshed by gcloud-aio-auth's ``Token.refresh``, one attempt each), or
  the metadata server (GCE, GKE Workload Identity, Cloud Run; fetched here, so
  that the scopes a signing token needs can be asked for, and the host named by
  ``GCE_METADATA_HOST`` is read when the provider starts, not at import).

One private aiohttp attribute is set, guarded, in :func:`make_session`:
``ClientSession._retry_connection``. aiohttp silently resends a PUT, DELETE or
GET once when a kept-alive connection drops; for a resumable chunk that would
resend bytes GCS may already have committed, and for every request it would
hide an attempt from the retry policy (``_retry.py``), which must count them all.
aiohttp has no public switch for it (3.9 - 3.14).

Proxies come from the environment (``HTTPS_PROXY``, ``HTTP_PROXY``, ``NO_PROXY``), as
Google's clients take them, and so do extra CAs (``SSL_CERT_FILE``, ``SSL_CERT_DIR``: a
proxy that inspects TLS), read once per host by :class:`EnvProxies`. The request
session does not use aiohttp's ``trust_env``: that would also look ``~/.netrc`` up in
a worker thread on every request. gcloud-aio's token refreshes, which take no proxy
argument, get their own small session that does trust the environment.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any, cast
from urllib.parse import urlsplit

import aiohttp

from ...errors import BackendError, NotSupported, PermissionDenied
from .._http.transport import ssl_context

__all__ = [
    "SIGNING_SCOPES",
    "STORAGE_SCOPES",
    "Auth",
    "EnvProxies",
    "TokenSource",
    "TokenUnavailable",
    "make_session",
    "metadata_root",
]

STORAGE_SCOPES = ("https://www.googleapis.com/auth/devstorage.read_write",)
# signBlob needs a token IAM accepts: cloud-platform (or iam).
# https://cloud.google.com/iam/docs/reference/credentials/rest/v1/projects.serviceAccounts/signBlob
SIGNING_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
METADATA_HEADERS = {"Metadata-Flavor": "Google"}
METADATA_ATTEMPT_TIMEOUT = 3.0
"""One metadata-server token fetch waits at most this long (google-auth's default), so a
silent server costs retries within the request's budget, not one wait of the whole timeout."""
_NO_HEADERS: dict[str, str] = {}  # an emulator's (shared, never changed)
_EMAIL_IN_URL = re.compile(r"/serviceAccounts/([^/:]+):generateAccessToken")
_FIX = (
    "attach a service account to the workload (GKE Workload Identity, Cloud Run, Compute Engine), "
    "or set GOOGLE_APPLICATION_CREDENTIALS or the bucket's service_file option to a credentials file, "
    "or run `gcloud auth application-default login`; for an emulator set emulator=true or "
    "STORAGE_EMULATOR_HOST"
)


class TokenUnavailable(BackendError):
    """Internal: the token endpoint failed transiently; our request was never sent."""


def make_session(
    timeout: aiohttp.ClientTimeout, trace_configs: list[aiohttp.TraceConfig]
) -> aiohttp.ClientSession:
    tls = ssl_context(None)  # SSL_CERT_FILE/SSL_CERT_DIR, if set
    connector = aiohttp.TCPConnector(ssl=tls) if tls is not None else None
    session = aiohttp.ClientSession(timeout=timeout, trace_configs=trace_configs or None, connector=connector)
    if hasattr(session, "_retry_connection"):
        session._retry_connection = False  # see the module docstring
    return session


class EnvProxies:
    """The proxy for a URL from ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``, looked up once per host."""

    def __init__(self) -> None:
        self._known: dict[str, dict[str, Any]] = {}

    def __call__(self, url: str) -> dict[str, Any]:
        """``proxy`` and ``proxy_auth`` keyword arguments for an aiohttp request (or none)."""
        # Keyed by the URL's origin, cut with str.find: urlsplit on every request costs more.
        end = url.find("/", url.find("://") + 3)
        origin = url if end < 0 else url[:end]
        found = self._known.get(origin)
        if found is None:
            parts = urlsplit(url)
            found = self._known[origin] = _env_proxy(parts.scheme, parts.hostname or "")
        return found


def _env_proxy(scheme: str, host: str) -> dict[str, Any]:
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(scheme)
    if not proxy or urllib.request.proxy_bypass(host):  # NO_PROXY (on Linux, only the environment)
        return {}
    from yarl import URL

    target = URL(proxy if "://" in proxy else f"http://{proxy}")
    auth = aiohttp.BasicAuth.from_url(target) if target.user else None
    return {"proxy": target.with_user(None), "proxy_auth": auth}


def metadata_root() -> str:
    """The metadata server, as google-auth finds it (``GCE_METADATA_HOST``, then ``GCE_METADATA_ROOT``)."""
    host = (
        os.environ.get("GCE_METADATA_HOST")
        or os.environ.get("GCE_METADATA_ROOT")
        or "metadata.google.internal"
    )
    return host.rstrip("/") if host.startswith(("http://", "https://")) else f"http://{host}"


Fetch = Callable[[float], Awaitable[tuple[str, float]]]
"""One token fetch within the given seconds: (token, seconds it stays valid)."""


class TokenSource:
    """One cached token for one set of scopes, fetched by a single flight."""

    def __init__(self, fetch: Fetch, source: str, *, metadata: bool = False) -> None:
        self._fetch = fetch
        self.source = source
        """Which credential this is, for error messages."""
        self._metadata = metadata
        """The metadata server: a name that does not resolve means "not on Google Cloud"."""
        self._token: str | None = None
        self._header: dict[str, str] | None = None
        """``{"Authorization": "Bearer <token>"}`` for the cached token, made once per token."""
        self._fresh_until = 0.0
        self._flight: asyncio.Task[str] | None = None

    def cached(self) -> dict[str, str] | None:
        """The Authorization header of a cached token that is still fresh, else None (no I/O:
        a request with a fresh token pays no coroutine and builds no string for it)."""
        if self._header is not None and time.monotonic() < self._fresh_until:
            return self._header
        return None

    async def get(self, limit: float) -> str:
        if self._token is not None and time.monotonic() < self._fresh_until:
            return self._token
        if self._flight is None or self._flight.done():
            self._flight = asyncio.ensure_future(self._refresh(limit))
            self._flight.add_done_callback(_consume)
        # Shielded: a cancelled caller leaves the fetch to the others that wait on it.
        return await asyncio.shield(self._flight)

    async def _refresh(self, limit: float) -> str:
        try:
            async with asyncio.timeout(limit):
                token, ttl = await self._fetch(limit)
        except (PermissionDenied, TokenUnavailable):
            raise
        except aiohttp.ClientResponseError as exc:
            if exc.status in (400, 401, 403, 404):
                raise PermissionDenied(
                    f"GCS credentials ({self.source}) were refused: HTTP {exc.status} {exc.message}; {_FIX}"
                ) from exc
            raise TokenUnavailable(f"{self.source}: HTTP {exc.status} {exc.message}") from exc
        except aiohttp.ClientConnectorDNSError as exc:
            if not self._metadata:
                raise TokenUnavailable(f"{self.source}: {exc}") from exc
            raise PermissionDenied(
                f"no GCS credentials: {self.source} cannot be resolved ({exc}); {_FIX}"
            ) from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise TokenUnavailable(f"{self.source}: {type(exc).__name__} {exc}".rstrip()) from exc
        except Exception as exc:  # the credential chain raises many kinds (bad file, bad key, ...)
            raise PermissionDenied(f"cannot get a GCS access token from {self.source}: {exc}") from exc
        self._token = token
        self._header = {"Authorization": f"Bearer {token}"}
        # Renewed ahead of expiry, as google-auth does (it keeps a margin of 3 min 45 s).
        self._fresh_until = time.monotonic() + ttl - min(225.0, ttl / 2)
        return token

    def invalidate(self, token: str) -> None:
        """A 401 answered this token: the next request fetches a new one."""
        if self._token == token:
            self._token = self._header = None

    def failed(self, exc: BaseException, attempts: int) -> PermissionDenied:
        """The PermissionDenied for a token that could not be had within the retry budget."""
        return PermissionDenied(
            f"cannot get a GCS access token from {self.source} ({attempts} attempts; last: {exc}); {_FIX}"
        )

    def cancel(self) -> None:
        if self._flight is not None:
            self._flight.cancel()


def _consume(task: asyncio.Task[str]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved here: a fetch nobody waits for any more logs nothing


async def metadata_json_or_text(
    session: aiohttp.ClientSession,
    url: str,
    limit: float,
    params: dict[str, str] | None = None,
    proxy: dict[str, Any] | None = None,
) -> bytes:
    """GET from the metadata server; an error status raises ClientResponseError."""
    # https://cloud.google.com/compute/docs/metadata/querying-metadata (the Metadata-Flavor header)
    async with session.get(
        url,
        params=params,
        headers=METADATA_HEADERS,
        timeout=aiohttp.ClientTimeout(total=limit),
        **(proxy or {}),
    ) as resp:
        body = await resp.read()
        if resp.status != 200:
            raise aiohttp.ClientResponseError(
                resp.request_info, (), status=resp.status, message=body[:200].decode(errors="replace")
            )
        return body


class Auth:
    """Where requests go (API root, emulator or not), the tokens that authorize them, who signs."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        api_root: str,
        emulator: bool,
        service_file: str | None,
        signing_service_account: str | None = None,
        proxies: EnvProxies | None = None,
    ) -> None:
        self._session = session
        self._proxies = proxies or EnvProxies()
        self._token_session: aiohttp.ClientSession | None = None
        self.is_emulator = emulator
        self.api_root = api_root.rstrip("/")
        self._signing_account = signing_service_account
        self._metadata = metadata_root()
        self._metadata_email: str | None = None
        self.service_data: dict[str, Any] = {}
        self.storage: TokenSource | None = None
        self.signing: TokenSource | None = None
        if emulator:
            # No tokens; a key file given explicitly still signs URLs the emulator serves.
            self.service_data = _load(service_file, session, STORAGE_SCOPES) if service_file else {}
            return
        self.service_data = _load(service_file, session, STORAGE_SCOPES)
        self.storage = self._source(service_file, STORAGE_SCOPES)
        self.signing = self._source(service_file, SIGNING_SCOPES)

    @property
    def uses_metadata_server(self) -> bool:
        return not self.service_data

    def _source(self, service_file: str | None, scopes: tuple[str, ...]) -> TokenSource:
        if self.uses_metadata_server:
            # https://cloud.google.com/compute/docs/access/authenticate-workloads#applications
            url = f"{self._metadata}/computeMetadata/v1/instance/service-accounts/default/token"
            # The default (storage) token is asked for without scopes, as gcloud-aio does; a
            # signing token names cloud-platform (honoured where the platform allows it).
            params = {"scopes": ",".join(scopes)} if scopes == SIGNING_SCOPES else None

            async def from_metadata(limit: float) -> tuple[str, float]:
                limit = min(limit, METADATA_ATTEMPT_TIMEOUT)
                raw = await metadata_json_or_text(self._session, url, limit, params, self._proxies(url))
                data = json.loads(raw)
                return str(data["access_token"]), float(data.get("expires_in", 3600))

            return TokenSource(from_metadata, f"the metadata server at {self._metadata}", metadata=True)
        if self._token_session is None:
            # gcloud-aio passes no proxy, so this session takes it from the environment itself.
            self._token_session = aiohttp.ClientSession(trust_env=True)
        token = _gcloud_token(service_file, self._token_session, scopes)
        kind = self.service_data.get("type", "unknown")
        where = (
            service_file
            or os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
            or "gcloud's application-default file"
        )

        async def from_chain(limit: float) -> tuple[str, float]:
            answer = await token.refresh(timeout=max(1, int(limit)))
            return str(answer.value), float(answer.expires_in)

        return TokenSource(from_chain, f"{kind} credentials from {where}")

    async def headers(self, limit: float, *, signing: bool = False) -> dict[str, str]:
        source = self.signing if signing else self.storage
        if source is None:
            return _NO_HEADERS
        return source.cached() or {"Authorization": f"Bearer {await source.get(limit)}"}

    def cached_headers(self, *, signing: bool = False) -> dict[str, str] | None:
        """The Authorization headers when they need no I/O (an emulator's are none, a fresh
        token's are cached); None when a token must be fetched first (:meth:`headers`).
        The dict is shared: read it, never change it."""
        source = self.signing if signing else self.storage
        return _NO_HEADERS if source is None else source.cached()

    def private_key(self) -> tuple[str, str] | None:
        """(client email, PEM) when the credentials hold a service-account key."""
        email, pem = self.service_data.get("client_email"), self.service_data.get("private_key")
        if isinstance(email, str) and isinstance(pem, str) and email and pem:
            return email, pem
        return None

    async def signing_email(self, limit: float, key: str | None) -> str:
        """The service account that signs: from the credentials, the impersonation target,
        the metadata server, or the ``signing_service_account`` option, in that order."""
        data = self.service_data
        email = data.get("client_email")
        if isinstance(email, str) and email:
            return email
        found = _EMAIL_IN_URL.search(str(data.get("service_account_impersonation_url", "")))
        if found:
            return found.group(1)
        if self.uses_metadata_server and not self.is_emulator:
            if self._metadata_email is None:
                self._metadata_email = await self._email_from_metadata(limit)
            return self._metadata_email
        if self._signing_account:
            return self._signing_account
        raise NotSupported(
            "signing needs a service account and these credentials name none: set the bucket's "
            "signing_service_account option (the account needs roles/iam.serviceAccountTokenCreator "
            "on itself), or use a service account's credentials",
            key=key,
        )

    async def _email_from_metadata(self, limit: float) -> str:
        # https://cloud.google.com/compute/docs/metadata/predefined-metadata-keys (email)
        url = f"{self._metadata}/computeMetadata/v1/instance/service-accounts/default/email"
        try:
            async with asyncio.timeout(limit):
                raw = await metadata_json_or_text(self._session, url, limit, proxy=self._proxies(url))
                return raw.decode().strip()
        except aiohttp.ClientResponseError as exc:
            if self._signing_account:
                return self._signing_account
            if 400 <= exc.status < 500 and exc.status != 429:
                raise PermissionDenied(
                    f"the metadata server at {self._metadata} names no service account (HTTP {exc.status}); "
                    "attach one to the workload or set the signing_service_account option"
                ) from exc
            raise TokenUnavailable(f"the metadata server's service-account email: HTTP {exc.status}") from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            if self._signing_account:
                return self._signing_account
            raise TokenUnavailable(
                f"the metadata server's service-account email: {type(exc).__name__}"
            ) from exc

    async def aclose(self) -> None:
        for source in (self.storage, self.signing):
            if source is not None:
                source.cancel()
        if self._token_session is not None:
            await self._token_session.close()


def _gcloud_token(service_file: str | None, session: aiohttp.ClientSession, scopes: tuple[str, ...]) -> Any:
    from gcloud.aio.auth import Token

    # Typed as gcloud-aio's own Session alias; in the aio build that is aiohttp's.
    return Token(service_file=service_file, session=cast(Any, session), scopes=list(scopes))


def _load(
    service_file: str | None, session: aiohttp.ClientSession, scopes: tuple[str, ...]
) -> dict[str, Any]:
    try:
        data = _gcloud_token(service_file, session, scopes).service_data
    except Exception as exc:  # a malformed or missing service file raises many kinds
        raise PermissionDenied(
            f"cannot load GCS credentials ({service_file or 'default chain'}): {exc}"
        ) from exc
    return dict(data) if data else {}
