"""GCS transport: one lazily made aiohttp session, retries, timeouts, error mapping.

Invariants:

* Every request goes through :meth:`GcsHttp.call` (the answer is read whole,
  inside the retry loop, so a body cut after its headers is retried like any
  other failure) or :meth:`GcsHttp.open` (a streamed download: status and
  headers are checked inside the loop, the body is the caller's).
* Whether a failed attempt is tried again is decided by ``_retry.RetryPolicy``
  for the request's ``Kind``, and nowhere else; attempts are bounded by its
  deadline. Getting the token is part of the attempt: bounded by the request
  timeout, retried within the same budget, and a final failure is
  PermissionDenied. A 401 refreshes the token once and tries again.
* Requests to the storage API carry the bucket-wide extras in one place
  (:meth:`GcsHttp.extras`): ``userProject`` and customer-supplied key headers.
* Every request has explicit timeouts: small ones a total limit (``request_timeout``),
  streamed ones (``long=True``) only the connect and socket-read limits, so a stream
  never waits forever and never dies of its length. Both clients apply the same ones.
* A write marked ``shield=True`` (a commit) is awaited to its answer even if the
  caller is cancelled (it may be on the wire); the backoff between attempts is
  never shielded.
* Every failure leaves here as an ``aiobucket.errors`` type, or as
  :class:`HttpError` for the caller to map (it knows what a 404 means).
* A provider dropped without ``aclose()`` closes its session's and the lean client's
  connections quietly when it is collected (or at exit), as S3's and Azure's transport does.
* Streamed reads (``open``) and requests with a body of at most ``h1.SMALL_BODY`` bytes
  (metadata, listings, small uploads, commits) go through the lean client (``_http/h1.py``)
  unless a proxy applies or the user traces aiohttp's requests; everything else (a resumable
  upload's chunks) through the session. Either way the same bytes go on the wire, and an
  answer reads the same (``_exchange_lean``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import weakref
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import aiohttp
from yarl import URL

from ..._aio import run_to_completion
from ...errors import (
    BackendError,
    BucketError,
    IntegrityError,
    InvalidArgument,
    ObjectNotFound,
    PermissionDenied,
    PreconditionFailed,
    RangeNotSatisfiable,
)
from .._http import h1
from .._http.transport import close_pool_quietly, close_quietly, ssl_context
from ._gcloud import Auth, EnvProxies, TokenUnavailable, make_session
from ._retry import Kind, RetryPolicy, never_sent

__all__ = [
    "GcsHttp",
    "HttpError",
    "HttpSettings",
    "Kind",
    "Reply",
    "RetryPolicy",
    "Streamed",
    "error_for_status",
]

Streamed = aiohttp.ClientResponse | h1.Reply
"""A streamed answer from either client: ``status``, ``headers``, ``content``, ``release``, ``close``."""
_POOL = 100
"""Connections the lean client keeps, as many as aiohttp's session (its default connector)."""
_AIOHTTP_DEFAULTS: dict[str, str] = {
    **{str(name): value for name, value in aiohttp.ClientRequest.DEFAULT_HEADERS.items()},
    "User-Agent": aiohttp.http.SERVER_SOFTWARE,
}
"""The headers aiohttp's session adds to every request (GCS sees the same request either way)."""


def _with_defaults(
    headers: Mapping[str, str], method: str = "GET", data: bytes | memoryview | None = None
) -> dict[str, str]:
    """The headers aiohttp's session sends for ``headers``, in its order: theirs, then its
    defaults that they do not name, then Content-Length (a body's, or 0 for a body-less
    method that may carry one) and the Content-Type it gives bytes or an empty POST, PUT
    or PATCH (``ClientRequest.update_body_from_data`` and ``send``)."""
    named = {name.lower() for name in headers}
    out = dict(headers) | {
        name: value for name, value in _AIOHTTP_DEFAULTS.items() if name.lower() not in named
    }
    if "content-length" not in named:
        if data is not None:
            out["Content-Length"] = str(_size(data))
        elif method not in aiohttp.ClientRequest.GET_METHODS:
            out["Content-Length"] = "0"
    if "content-type" not in named and (data is not None or method in aiohttp.ClientRequest.POST_METHODS):
        out["Content-Type"] = "application/octet-stream"
    return out


def _decoded(body: bytes, headers: Mapping[str, str]) -> bytes:
    """The body as aiohttp's session hands it over (``auto_decompress``): a gzip or deflate
    Content-Encoding (what ``Accept-Encoding: gzip, deflate`` allows) undone."""
    encoding = headers.get("Content-Encoding")
    if not body or encoding is None or encoding == "identity":
        return body
    encoding = encoding.strip().lower()
    try:
        if encoding in ("gzip", "x-gzip"):
            return zlib.decompress(body, 16 + zlib.MAX_WBITS)
        if encoding == "deflate":
            try:
                return zlib.decompress(body)
            except zlib.error:
                return zlib.decompress(body, -zlib.MAX_WBITS)  # raw deflate, as some servers send
    except zlib.error as exc:
        raise aiohttp.ClientPayloadError(f"Can not decode content-encoding: {encoding}") from exc
    return body


# A 408 or 429 is a refusal before any work; a 5xx may come after the write was applied.
_MAYBE_APPLIED_STATUS = frozenset({500, 502, 503, 504})
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class HttpSettings:
    endpoint: str | None = None
    """Where the JSON API is (None: ``https://storage.{universe_domain}``)."""
    service_file: str | None = None
    emulator: bool = False
    """No credentials are sent (only for an endpoint named an emulator)."""
    universe_domain: str = "googleapis.com"
    user_project: str | None = None
    """Billed for requester-pays buckets (``userProject``)."""
    kms_key_name: str | None = None
    """The Cloud KMS key new objects are encrypted with (CMEK)."""
    encryption_key: bytes | None = field(default=None, repr=False)
    """A customer-supplied AES-256 key (CSEK), 32 bytes (never printed)."""
    signing_service_account: str | None = None
    iam_endpoint: str | None = None
    """The IAM Credentials API root (None: ``https://iamcredentials.{universe_domain}``)."""
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    """Longest silence on a socket, for streams too (streams have no total timeout)."""
    request_timeout: float = 120.0
    """Total time for a small, non-streaming request (metadata, list, delete)."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    trace_configs: Sequence[aiohttp.TraceConfig] = ()


@dataclass(frozen=True, slots=True)
class Reply:
    """A whole answer with an ``ok`` status."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    attempts: int
    maybe_applied: bool
    """An earlier attempt of this request may have been applied by the server."""

    def json(self, key: str | None, what: str) -> dict[str, Any]:
        return parse_json(self.body, key, what)


class HttpError(Exception):
    """Internal: a non-success status, with its body read (the response is released)."""

    def __init__(
        self,
        status: int,
        body: str,
        headers: Mapping[str, str],
        *,
        attempts: int = 1,
        maybe_applied: bool = False,
    ) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body
        self.headers = headers
        self.attempts = attempts
        self.maybe_applied = maybe_applied
        """An attempt before the one that got this status may have been applied."""


def error_for_status(
    status: int,
    body: str,
    *,
    key: str | None,
    version: str | None = None,
    what: str = "",
    not_found: type[BucketError] = ObjectNotFound,
    attempts: int = 1,
) -> BucketError:
    """Map an HTTP error status from the JSON API to our hierarchy."""
    detail = _google_message(body)
    suffix = f": {detail}" if detail else ""
    prefix = f"{what}: " if what else ""
    if status == 404:
        if not_found is ObjectNotFound:
            msg = "object not found" if version is None else "object version not found"
            return ObjectNotFound(msg, key=key, version=version)
        return not_found(f"{prefix}not found (HTTP 404){suffix}", key=key, version=version)
    if status == 412:
        return PreconditionFailed(f"{prefix}precondition failed (HTTP 412){suffix}", key=key)
    if status == 416:
        return RangeNotSatisfiable(f"{prefix}requested range not satisfiable{suffix}", key=key)
    if status in (401, 403):
        return PermissionDenied(f"{prefix}GCS denied access (HTTP {status}){suffix}", key=key)
    if status == 400:
        lowered = detail.lower()
        if "crc32c" in lowered or "md5" in lowered or "checksum" in lowered:
            # GCS refuses an upload whose bytes do not match the hash we sent.
            return IntegrityError(f"{prefix}GCS refused the bytes (HTTP 400){suffix}", key=key)
        return InvalidArgument(f"{prefix}GCS rejected the request (HTTP 400){suffix}", key=key)
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    return BackendError(f"{prefix}GCS returned HTTP {status}{tries}{suffix}", key=key, version=version)


def _google_message(body: str) -> str:
    try:
        data = json.loads(body)
        msg = data["error"]["message"]
        return str(msg)
    except (ValueError, KeyError, TypeError):
        return body.strip()[:300]


def parse_json(raw: bytes, key: str | None, what: str) -> dict[str, Any]:
    """A JSON object answer (an empty body is ``{}``); anything else is BackendError."""
    if not raw.strip():
        return {}
    try:
        out = json.loads(raw)
    except ValueError as exc:
        raise BackendError(f"{what}: GCS sent a response that is not JSON", key=key) from exc
    if not isinstance(out, dict):
        raise BackendError(f"{what}: GCS sent a JSON {type(out).__name__}, not an object", key=key)
    return out


class _BadBody(Exception):
    """Internal: an ok status whose body did not parse (a corrupted or cut answer)."""


class GcsHttp:
    """Per-provider transport, bound to the loop of its first use."""

    def __init__(self, settings: HttpSettings) -> None:
        self.settings = settings
        self._session: aiohttp.ClientSession | None = None
        self._pool_h1: h1.Pool | None = None
        self._proxies = EnvProxies()
        self._auth: Auth | None = None
        self._closed = False
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._pool_finalizer: weakref.finalize[Any, Any] | None = None
        s = settings
        self._root = (s.endpoint or f"https://storage.{s.universe_domain}").rstrip("/")
        self._small = aiohttp.ClientTimeout(
            total=s.request_timeout, sock_connect=s.connect_timeout, sock_read=s.read_timeout
        )
        # No total: a stream may take as long as it keeps moving (timeout=None would be no limit at all).
        self._long = aiohttp.ClientTimeout(
            total=None, sock_connect=s.connect_timeout, sock_read=s.read_timeout
        )
        # Made once: the customer-supplied key's headers (a SHA-256 and two base64) and the
        # bucket's prefixes of object URLs, which every request would otherwise rebuild.
        self._csek = self.encryption_headers()
        self._object_base: dict[str, str] = {}
        self._object_path: dict[str, str] = {}
        self._root_url = URL(self._root)

    # -- lifecycle -------------------------------------------------------------

    def _ensure(self) -> tuple[aiohttp.ClientSession, Auth]:
        if self._closed:
            raise BackendError("the GCS provider was closed (aiobucket.aclose()); use a new one")
        if self._session is None:
            s = self.settings
            # The session holds no connection yet; if Auth fails, aclose() closes it.
            session = self._session = make_session(self._long, list(s.trace_configs))
            if session.connector is not None:  # None only once closed
                self._finalizer = weakref.finalize(self, close_quietly, session.connector)
        if self._auth is None:
            s = self.settings
            self._auth = Auth(
                self._session,
                api_root=self.root,
                emulator=s.emulator,
                service_file=s.service_file,
                signing_service_account=s.signing_service_account,
                proxies=self._proxies,
            )
        return self._session, self._auth

    @property
    def root(self) -> str:
        """The JSON API root (no I/O)."""
        return self._root

    @property
    def iam_root(self) -> str:
        s = self.settings
        return (s.iam_endpoint or f"https://iamcredentials.{s.universe_domain}").rstrip("/")

    def encryption_headers(self, prefix: str = "x-goog-") -> dict[str, str]:
        """The customer-supplied key headers (``prefix`` ``x-goog-copy-source-`` for a rewrite's source)."""
        # https://cloud.google.com/storage/docs/encryption/using-customer-supplied-keys#rest-csek
        key = self.settings.encryption_key
        if key is None:
            return {}
        return {
            f"{prefix}encryption-algorithm": "AES256",
            f"{prefix}encryption-key": base64.b64encode(key).decode(),
            f"{prefix}encryption-key-sha256": base64.b64encode(hashlib.sha256(key).digest()).decode(),
        }

    def extras(
        self, url: str, params: Mapping[str, str] | None, headers: Mapping[str, str] | None
    ) -> tuple[Mapping[str, str] | None, dict[str, str]]:
        """The request's params and headers plus the bucket-wide ones, for storage API URLs."""
        out = dict(headers or {})
        if not url.startswith(self._root):
            return params, out
        for name, value in self._csek.items():
            out.setdefault(name, value)
        up = self.settings.user_project
        # A resumable session URI already names its upload; userProject went with its start.
        if up is not None and "upload_id=" not in url:
            params = {**(params or {}), "userProject": up}
        return params, out

    async def signing_email(self, key: str | None) -> str:
        """The signing account (``Auth.signing_email``), found within one request's budget."""
        auth = self.auth
        policy = self.settings.retry
        started = policy.start()
        attempt = 0
        while True:
            limit = min(self.settings.request_timeout, max(0.001, policy.remaining(started)))
            try:
                return await auth.signing_email(limit, key)
            except TokenUnavailable as exc:
                if await policy.wait(
                    attempt, started, what="find the signing account", reason="TokenUnavailable"
                ):
                    attempt += 1
                    continue
                raise PermissionDenied(
                    f"cannot find the service account to sign with ({attempt + 1} attempts; last: {exc}); "
                    "set the bucket's signing_service_account option",
                    key=key,
                ) from exc

    @staticmethod
    def _authorized(auth: Auth, headers: dict[str, str], signing: bool) -> dict[str, str] | None:
        """``headers`` with the Authorization header when that needs no I/O (an emulator, a
        fresh cached token: no await per request), else None (:meth:`_authorize`)."""
        found = auth.cached_headers(signing=signing)
        if found is None:
            return None
        return {**headers, **found} if found else headers

    async def _authorize(
        self, auth: Auth, headers: dict[str, str], started: float, signing: bool
    ) -> dict[str, str]:
        """``headers`` with the Authorization header, the token fetched within the request
        timeout and the budget."""
        limit = min(self.settings.request_timeout, max(0.001, self.settings.retry.remaining(started)))
        return {**headers, **await auth.headers(limit, signing=signing)}

    def _token_failed(
        self, auth: Auth, exc: TokenUnavailable, attempts: int, signing: bool
    ) -> PermissionDenied:
        source = auth.signing if signing else auth.storage
        assert source is not None
        return source.failed(exc, attempts)

    def _revoked(self, auth: Auth, sent: Mapping[str, str], signing: bool) -> bool:
        """A 401: forget the token just used; True if a new one is worth a try."""
        source = auth.signing if signing else auth.storage
        value = sent.get("Authorization", "")
        if source is None or not value.startswith("Bearer "):
            return False
        source.invalidate(value[len("Bearer ") :])
        return True

    @property
    def auth(self) -> Auth:
        return self._ensure()[1]

    @property
    def api_root(self) -> str:
        return self.root

    @property
    def is_emulator(self) -> bool:
        return self.settings.emulator

    def object_url(self, bucket: str, key: str) -> str:
        base = self._object_base.get(bucket)
        if base is None:
            base = self._object_base[bucket] = f"{self.api_root}/storage/v1/b/{quote(bucket, safe='')}/o/"
        return base + quote_key(key)

    def media_url(self, bucket: str, key: str, query: str) -> URL:
        """An object's URL with ``query`` (encoded already), as aiohttp takes it: built from its
        parts, the key quoted by :func:`quote_key` and never parsed again (yarl parsing a new URL
        string costs more than the rest of a small read's GCS request path)."""
        path = self._object_path.get(bucket)
        if path is None:
            path = self._object_path[bucket] = (
                f"{self._root_url.raw_path.rstrip('/')}/storage/v1/b/{quote(bucket, safe='')}/o/"
            )
        root = self._root_url
        return URL.build(
            scheme=root.scheme,
            authority=root.raw_authority,
            path=path + quote_key(key),
            query_string=query,
            encoded=True,
        )

    def bucket_url(self, bucket: str, upload: bool = False) -> str:
        mid = "upload/storage/v1" if upload else "storage/v1"
        return f"{self.api_root}/{mid}/b/{quote(bucket, safe='')}/o"

    async def aclose(self) -> None:
        self._closed = True
        auth, self._auth = self._auth, None
        if auth is not None:
            await auth.aclose()
        pool, self._pool_h1 = self._pool_h1, None
        if self._pool_finalizer is not None:
            self._pool_finalizer.detach()
            self._pool_finalizer = None
        if pool is not None:
            pool.close()
        session, self._session = self._session, None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if session is not None and not session.closed:
            await session.close()

    def _lean(self, url: str) -> h1.Pool | None:
        """The lean client (``_http/h1.py``) for a request to ``url``, or None when it must
        go through aiohttp: a proxy applies, or the user traces aiohttp's requests."""
        if self.settings.trace_configs or self._proxies(url):
            return None
        pool = self._pool_h1
        if pool is None:
            s = self.settings
            pool = self._pool_h1 = h1.Pool(
                limit=_POOL,
                connect_timeout=s.connect_timeout,
                read_timeout=s.read_timeout,
                ssl_context=ssl_context(None),
            )
            self._pool_finalizer = weakref.finalize(self, close_pool_quietly, pool)
        return pool

    # -- requests --------------------------------------------------------------

    async def call(
        self,
        method: str,
        url: str,
        *,
        kind: Kind,
        key: str | None,
        what: str,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        data: bytes | memoryview | None = None,
        ok: Sequence[int] = (200, 201, 204),
        long: bool = False,
        shield: bool = False,
        check: Callable[[bytes], object] | None = None,
        signing: bool = False,
    ) -> Reply:
        """Send with retries; the answer is read whole inside the loop.

        ``check`` validates an ok answer's body (it raises ValueError if the
        body is corrupt); a READ whose body fails it is tried again. A non-ok
        final status raises :class:`HttpError`. ``signing``: authorize with the
        signing token (cloud-platform scope) instead of the storage one.
        """
        session, auth = self._ensure()
        policy = self.settings.retry
        timeout = self._long if long else self._small
        params, headers = self.extras(url, params, headers)
        started = policy.start()
        maybe_applied = False
        refreshed = False
        attempt = 0
        while True:
            hdrs: dict[str, str] = headers
            try:
                found = self._authorized(auth, headers, signing)
                hdrs = found if found is not None else await self._authorize(auth, headers, started, signing)
                lean = self._lean(url) if data is None or _size(data) <= h1.SMALL_BODY else None
                if lean is not None:
                    total = None if long else self.settings.request_timeout
                    once = _exchange_lean(lean, method, url, params, hdrs, data, total)
                else:
                    once = self._exchange(
                        session, method, url, params, hdrs, data, timeout, self._proxies(url)
                    )
                status, rheaders, body = await (run_to_completion(once) if shield else once)
                if status in ok and check is not None:
                    try:
                        check(body)
                    except ValueError as exc:
                        raise _BadBody(str(exc)) from exc
            except asyncio.CancelledError:
                raise
            except TokenUnavailable as exc:
                # Our request was never sent; the token endpoint failed.
                if await policy.wait(attempt, started, what=what, reason="TokenUnavailable"):
                    attempt += 1
                    continue
                raise self._token_failed(auth, exc, attempt + 1, signing) from exc
            except BucketError:
                raise  # PermissionDenied is an OSError (PermissionError): never a network failure
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                if policy.retryable(kind, attempt, exc=exc) and await policy.wait(
                    attempt, started, what=what, reason=type(exc).__name__
                ):
                    maybe_applied = maybe_applied or not never_sent(exc)
                    attempt += 1
                    continue
                raise connection_error(exc, url, what, key, attempt + 1) from exc
            except _BadBody as exc:
                if (
                    kind is Kind.READ
                    and policy.retryable(kind, attempt, status=500)
                    and await policy.wait(attempt, started, what=what, reason="unreadable answer")
                ):
                    attempt += 1
                    continue
                raise BackendError(f"{what}: GCS sent an answer that cannot be read: {exc}", key=key) from exc
            if status in ok:
                return Reply(status, rheaders, body, attempt + 1, maybe_applied)
            if status == 401 and not refreshed and self._revoked(auth, hdrs, signing):
                refreshed = True  # a revoked or expired token: one more try with a new one
                attempt += 1
                continue
            if policy.retryable(kind, attempt, status=status) and await policy.wait(
                attempt, started, rheaders, what=what, reason=str(status)
            ):
                maybe_applied = maybe_applied or status in _MAYBE_APPLIED_STATUS
                attempt += 1
                continue
            text = body.decode("utf-8", errors="replace")
            raise HttpError(status, text, rheaders, attempts=attempt + 1, maybe_applied=maybe_applied)

    @staticmethod
    async def _exchange(
        session: aiohttp.ClientSession,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str],
        data: bytes | memoryview | None,
        limits: aiohttp.ClientTimeout,
        proxy: Mapping[str, Any],
    ) -> tuple[int, Mapping[str, str], bytes]:
        """One attempt, its answer read whole and the connection released."""
        async with session.request(
            method, url, params=params, headers=headers, data=data, timeout=limits, **proxy
        ) as resp:
            return resp.status, resp.headers, await _whole_body(resp)

    async def open(
        self,
        url: str | URL,
        *,
        key: str | None,
        what: str,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        ok: Sequence[int] = (200, 206),
        accept: Callable[[Streamed], None] | None = None,
    ) -> Streamed:
        """A streamed GET with retries; the caller owns (and must release) the response.

        Sent by the lean client when no proxy applies and no aiohttp trace is configured,
        with the headers aiohttp's session would add (``_with_defaults``), so the bytes
        on the wire do not depend on the client.

        ``accept`` validates an ok response's status and headers; it raises
        (a typed error, never retried) after closing the response. A ``URL`` is one
        :meth:`media_url` built: a storage API URL.
        """
        session, auth = self._ensure()
        policy = self.settings.retry
        text = url if isinstance(url, str) else self._root
        params, headers = self.extras(text, params, headers)
        started = policy.start()
        refreshed = False
        attempt = 0
        while True:
            hdrs: dict[str, str] = headers
            try:
                found = self._authorized(auth, headers, False)
                hdrs = found if found is not None else await self._authorize(auth, headers, started, False)
                # The bytes as served: a gzip-encoded object stays compressed (see _download.py).
                lean = self._lean(text)
                resp: Streamed
                if lean is not None:
                    target = url if isinstance(url, URL) else URL(url)
                    resp = await lean.request(
                        "GET",
                        target.extend_query(params) if params else target,
                        _with_defaults(hdrs),
                        None,
                    )
                else:
                    resp = await session.get(
                        url,
                        params=params,
                        headers=hdrs,
                        timeout=self._long,
                        auto_decompress=False,
                        **self._proxies(text),
                    )
            except asyncio.CancelledError:
                raise
            except TokenUnavailable as exc:
                if await policy.wait(attempt, started, what=what, reason="TokenUnavailable"):
                    attempt += 1
                    continue
                raise self._token_failed(auth, exc, attempt + 1, False) from exc
            except BucketError:
                raise  # PermissionDenied is an OSError (PermissionError): never a network failure
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                if policy.retryable(Kind.READ, attempt, exc=exc) and await policy.wait(
                    attempt, started, what=what, reason=type(exc).__name__
                ):
                    attempt += 1
                    continue
                raise connection_error(exc, str(url), what, key, attempt + 1) from exc
            if resp.status in ok:
                if accept is not None:
                    try:
                        accept(resp)
                    except BaseException:
                        resp.close()
                        raise
                return resp
            try:
                body = await resp.read()
            except (aiohttp.ClientError, TimeoutError, OSError):
                body = b""
            finally:
                resp.release()
            if resp.status == 401 and not refreshed and self._revoked(auth, hdrs, False):
                refreshed = True
                attempt += 1
                continue
            if policy.retryable(Kind.READ, attempt, status=resp.status) and await policy.wait(
                attempt, started, resp.headers, what=what, reason=str(resp.status)
            ):
                attempt += 1
                continue
            text = body.decode("utf-8", errors="replace")
            raise HttpError(resp.status, text, resp.headers, attempts=attempt + 1)

    async def json(
        self,
        method: str,
        url: str,
        *,
        kind: Kind,
        key: str | None,
        what: str,
        version: str | None = None,
        not_found: type[BucketError] = ObjectNotFound,
        **kw: Any,
    ) -> dict[str, Any]:
        """A small request whose answer is a JSON object (or empty), errors mapped."""
        try:
            reply = await self.call(method, url, kind=kind, key=key, what=what, check=_json_check, **kw)
        except HttpError as exc:
            raise error_for_status(
                exc.status,
                exc.body,
                key=key,
                version=version,
                what=what,
                not_found=not_found,
                attempts=exc.attempts,
            ) from exc
        return reply.json(key, what)


# Characters quote(safe="") leaves as they are, and "/": a key made of these is quoted by
# replacing "/" alone (a regex match costs a fraction of quote() on every request).
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.~/-]*")


async def _whole_body(resp: Streamed) -> bytes:
    """An answer's whole body; an error status whose body cannot be read says enough without it."""
    try:
        return await resp.read()
    except (aiohttp.ClientError, TimeoutError, OSError):
        if resp.status < 400:
            raise
        return b""


def _size(data: bytes | memoryview) -> int:
    return data.nbytes if isinstance(data, memoryview) else len(data)


async def _exchange_lean(
    pool: h1.Pool,
    method: str,
    url: str,
    params: Mapping[str, str] | None,
    headers: Mapping[str, str],
    data: bytes | memoryview | None,
    total: float | None,
) -> tuple[int, Mapping[str, str], bytes]:
    """``GcsHttp._exchange`` through the lean client: the request aiohttp's session would send
    (its URL parsing, its default headers), the same total limit (``TimeoutError`` at the
    end of it, as aiohttp raises), and the answer decoded as the session decodes it."""
    target = URL(url)
    if params:
        target = target.extend_query(params)
    async with asyncio.timeout(total):
        reply = await pool.request(method, target, _with_defaults(headers, method, data), data)
        try:
            body = await _whole_body(reply)
        finally:
            reply.release()
    return reply.status, reply.headers, _decoded(body, reply.headers)


def quote_key(key: str) -> str:
    """``key`` as one path segment of a JSON API URL (``quote(key, safe="")``)."""
    return key.replace("/", "%2F") if _PLAIN_KEY.fullmatch(key) else quote(key, safe="")


def _json_check(raw: bytes) -> None:
    if raw.strip():
        json.loads(raw)  # ValueError on a corrupt answer: a READ tries again


def connection_error(
    exc: BaseException, url: str, what: str, key: str | None, attempts: int = 1
) -> BackendError:
    parts = urlsplit(url)
    root = f"{parts.scheme}://{parts.netloc}"
    prefix = f"{what}: " if what else ""
    tries = f" ({attempts} attempts)" if attempts > 1 else ""
    if isinstance(exc, TimeoutError):
        return BackendError(f"{prefix}GCS request to {root} timed out{tries}", key=key)
    return BackendError(f"{prefix}cannot reach GCS at {root}{tries}: {exc}", key=key)
