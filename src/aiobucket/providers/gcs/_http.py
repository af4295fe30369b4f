"""GCS transport: one lazily made aiohttp session, auth headers, retries, error mapping.

The session is shared by gcloud-aio's ``Storage`` client (URL roots, emulator
detection) and its ``Token`` (credential chain), and closed in ``aclose()``.
Requests go through :meth:`GcsHttp.request`, which retries with full-jitter
exponential backoff on 408, 429, 5xx and connection errors, but only when the
request is idempotent (a connection refused before anything was sent is always
safe to retry). Every failure leaves here as an ``aiobucket.errors`` type.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import aiohttp

from ...errors import (
    BackendError,
    BucketError,
    InvalidArgument,
    ObjectNotFound,
    PermissionDenied,
    PreconditionFailed,
    RangeNotSatisfiable,
)
from ...types import ObjectAttrs

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
GCS_PUBLIC_ROOT = "https://storage.googleapis.com"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 6
    """Total tries, including the first."""
    base: float = 0.1
    cap: float = 8.0

    def delay(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
        return random.uniform(0, min(self.cap, self.base * (2**attempt)))


@dataclass(frozen=True, slots=True)
class HttpSettings:
    endpoint: str | None = None
    service_file: str | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    """Longest silence on a socket, for streams too (streams have no total timeout)."""
    request_timeout: float = 120.0
    """Total time for a small, non-streaming request (metadata, list, delete)."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    trace_configs: Sequence[aiohttp.TraceConfig] = ()


def _retryable_exc(exc: BaseException) -> bool:
    return isinstance(exc, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError | TimeoutError)


def _never_sent(exc: BaseException) -> bool:
    """The request cannot have reached the server, so retrying is always safe."""
    return isinstance(exc, aiohttp.ClientConnectorError) and not isinstance(
        exc, aiohttp.ClientConnectorCertificateError
    )


def error_for_status(
    status: int,
    body: str,
    *,
    key: str | None,
    version: str | None = None,
    what: str = "",
    not_found: type[BucketError] = ObjectNotFound,
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
        return InvalidArgument(f"{prefix}GCS rejected the request (HTTP 400){suffix}", key=key)
    return BackendError(f"{prefix}GCS returned HTTP {status}{suffix}", key=key, version=version)


def _google_message(body: str) -> str:
    try:
        data = json.loads(body)
        msg = data["error"]["message"]
        return str(msg)
    except (ValueError, KeyError, TypeError):
        return body.strip()[:300]


class HttpError(Exception):
    """Internal: a non-success status, with its body read (the response is released)."""

    def __init__(self, status: int, body: str, headers: Mapping[str, str]) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body
        self.headers = headers


class GcsHttp:
    """Per-provider transport, bound to the loop of its first use."""

    def __init__(self, settings: HttpSettings) -> None:
        self.settings = settings
        self._session: aiohttp.ClientSession | None = None
        self._storage: Any = None
        self._closed = False

    # -- lifecycle -------------------------------------------------------------

    def _ensure(self) -> tuple[aiohttp.ClientSession, Any]:
        if self._closed:
            raise BackendError("the GCS provider was closed (aiobucket.aclose()); use a new one")
        if self._session is None:
            from gcloud.aio.storage import Storage

            s = self.settings
            timeout = aiohttp.ClientTimeout(
                total=None, sock_connect=s.connect_timeout, sock_read=s.read_timeout
            )
            session = aiohttp.ClientSession(
                timeout=timeout,
                trace_configs=list(s.trace_configs) or None,
            )
            # aiohttp silently re-sends an "idempotent" method (PUT, DELETE) once when a
            # kept-alive connection drops. For a resumable chunk PUT that would resend
            # bytes GCS may already have committed, and it hides failures from the
            # retry policy here (which knows what is really idempotent), so turn it off.
            if hasattr(session, "_retry_connection"):
                session._retry_connection = False
            try:
                # gcloud-aio types its session as its own wrapper; an aiohttp session is what it wraps.
                storage = Storage(
                    service_file=s.service_file, session=cast(Any, session), api_root=s.endpoint
                )
            except Exception as exc:
                # The session holds no connection yet; closing it later is enough.
                self._session = session
                raise PermissionDenied(
                    f"cannot load GCS credentials ({s.service_file or 'default chain'}): {exc}"
                ) from exc
            self._session, self._storage = session, storage
        return self._session, self._storage

    @property
    def storage(self) -> Any:
        return self._ensure()[1]

    @property
    def api_root(self) -> str:
        root: str = self.storage._api_root
        return root.rstrip("/")

    @property
    def is_emulator(self) -> bool:
        return bool(self.storage._api_is_dev)

    def object_url(self, bucket: str, key: str) -> str:
        from urllib.parse import quote

        return f"{self.api_root}/storage/v1/b/{quote(bucket, safe='')}/o/{quote(key, safe='')}"

    def bucket_url(self, bucket: str, upload: bool = False) -> str:
        from urllib.parse import quote

        mid = "upload/storage/v1" if upload else "storage/v1"
        return f"{self.api_root}/{mid}/b/{quote(bucket, safe='')}/o"

    async def aclose(self) -> None:
        self._closed = True
        session, self._session, self._storage = self._session, None, None
        if session is not None and not session.closed:
            await session.close()

    # -- requests --------------------------------------------------------------

    async def auth_headers(self) -> dict[str, str]:
        storage = self.storage
        try:
            headers: dict[str, str] = await storage._headers()
        except asyncio.CancelledError:
            raise
        except aiohttp.ClientResponseError as exc:
            if exc.status in (400, 401, 403):
                raise PermissionDenied(f"GCS credentials were refused: {exc.message}") from exc
            raise BackendError(f"cannot get a GCS access token: {exc}") from exc
        except Exception as exc:  # the token chain raises many kinds
            raise PermissionDenied(f"cannot get a GCS access token: {exc}") from exc
        return headers

    async def request(
        self,
        method: str,
        url: str,
        *,
        key: str | None,
        idempotent: bool,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
        ok: Sequence[int] = (200, 201, 204),
        stream: bool = False,
        what: str = "",
    ) -> aiohttp.ClientResponse:
        """Send with retries; return the response on an ``ok`` status, else raise HttpError.

        The caller owns a returned response and must read or release it. An
        HttpError carries the status and body; translate it with
        ``error_for_status`` (the caller knows what a 404 means).
        """
        session, _ = self._ensure()
        policy = self.settings.retry
        timeout = (
            None
            if stream
            else aiohttp.ClientTimeout(
                total=self.settings.request_timeout,
                sock_connect=self.settings.connect_timeout,
                sock_read=self.settings.read_timeout,
            )
        )
        attempt = 0
        while True:
            hdrs = dict(headers or {})
            hdrs.update(await self.auth_headers())
            try:
                resp = await session.request(
                    method, url, params=params, headers=hdrs, data=data, timeout=timeout
                )
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                if attempt + 1 < policy.attempts and (idempotent or _never_sent(exc)):
                    await asyncio.sleep(policy.delay(attempt))
                    attempt += 1
                    continue
                raise connection_error(exc, self.api_root, what, key) from exc
            if resp.status in ok:
                return resp
            try:
                body = await resp.text(errors="replace")
            except (aiohttp.ClientError, TimeoutError, OSError):
                body = ""
            finally:
                resp.release()
            if resp.status in RETRYABLE_STATUS and idempotent and attempt + 1 < policy.attempts:
                await asyncio.sleep(_retry_after(resp.headers) or policy.delay(attempt))
                attempt += 1
                continue
            raise HttpError(resp.status, body, resp.headers)

    async def json(
        self,
        method: str,
        url: str,
        *,
        key: str | None,
        idempotent: bool,
        version: str | None = None,
        what: str = "",
        not_found: type[BucketError] = ObjectNotFound,
        **kw: Any,
    ) -> dict[str, Any]:
        """A small request whose answer is a JSON document (or empty)."""
        try:
            resp = await self.request(method, url, key=key, idempotent=idempotent, what=what, **kw)
        except HttpError as exc:
            raise error_for_status(
                exc.status, exc.body, key=key, version=version, what=what, not_found=not_found
            ) from exc
        try:
            raw = await resp.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise connection_error(exc, self.api_root, what, key) from exc
        finally:
            resp.release()
        if not raw.strip():
            return {}
        try:
            out = json.loads(raw)
        except ValueError as exc:
            raise BackendError(f"{what}: GCS sent a response that is not JSON", key=key) from exc
        return out if isinstance(out, dict) else {}


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return min(float(value), 30.0)
    except ValueError:
        return None


def connection_error(exc: BaseException, root: str, what: str, key: str | None) -> BackendError:
    prefix = f"{what}: " if what else ""
    if isinstance(exc, TimeoutError):
        return BackendError(f"{prefix}GCS request to {root} timed out", key=key)
    return BackendError(f"{prefix}cannot reach GCS at {root}: {exc}", key=key)


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def attrs_from_resource(item: Mapping[str, Any], *, versioned: bool) -> ObjectAttrs:
    """An objects resource (JSON API) as ObjectAttrs; ``version`` only on versioned buckets."""
    meta = item.get("metadata") or {}
    return ObjectAttrs(
        name=str(item["name"]),
        size=int(item.get("size", 0)),
        etag=str(item.get("etag", "")).strip('"'),
        content_type=str(item.get("contentType") or "application/octet-stream"),
        version=str(item["generation"]) if versioned and "generation" in item else None,
        cache_control=item.get("cacheControl"),
        content_disposition=item.get("contentDisposition"),
        metadata={str(k): str(v) for k, v in meta.items() if v is not None},
        last_modified=parse_time(item.get("updated") or item.get("timeCreated")),
    )


def resource_metadata(
    content_type: str,
    cache_control: str | None,
    content_disposition: str | None,
    metadata: Mapping[str, str],
    name: str | None = None,
) -> dict[str, Any]:
    """The writable part of an objects resource, for uploads and rewrites."""
    out: dict[str, Any] = {"contentType": content_type, "metadata": dict(metadata)}
    if name is not None:
        out["name"] = name
    if cache_control is not None:
        out["cacheControl"] = cache_control
    if content_disposition is not None:
        out["contentDisposition"] = content_disposition
    return out
