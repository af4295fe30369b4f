"""The adapter to gcloud-aio and aiohttp: the only module that touches their internals.

From gcloud-aio we use public names only: ``gcloud.aio.auth.Token`` (the Google
credential chain, ``get()`` and ``service_data``), ``gcloud.aio.storage.SCOPES``
and ``gcloud.aio.storage.storage.init_api_root`` (the emulator rules of
``STORAGE_EMULATOR_HOST``). ``Storage`` itself is not needed: every request is
built here.

One private aiohttp attribute is set, guarded, in :func:`make_session`:
``ClientSession._retry_connection``. aiohttp silently resends a PUT, DELETE or
GET once when a kept-alive connection drops; for a resumable chunk that would
resend bytes GCS may already have committed, and for every request it would
hide an attempt from the retry policy (``_retry.py``), which must count them all.
aiohttp has no public switch for it (3.9 - 3.14).
"""

from __future__ import annotations

from typing import Any, cast

import aiohttp

from ...errors import BackendError, PermissionDenied

__all__ = ["Auth", "TokenUnavailable", "make_session"]


class TokenUnavailable(BackendError):
    """Internal: the token endpoint failed transiently; our request was never sent."""


def make_session(
    timeout: aiohttp.ClientTimeout, trace_configs: list[aiohttp.TraceConfig]
) -> aiohttp.ClientSession:
    session = aiohttp.ClientSession(timeout=timeout, trace_configs=trace_configs or None)
    if hasattr(session, "_retry_connection"):
        session._retry_connection = False  # see the module docstring
    return session


class Auth:
    """Where requests go (API root, emulator or not) and the headers that authorize them."""

    def __init__(
        self, session: aiohttp.ClientSession, endpoint: str | None, service_file: str | None
    ) -> None:
        from gcloud.aio.auth import Token
        from gcloud.aio.storage import SCOPES
        from gcloud.aio.storage.storage import init_api_root

        is_dev, root = init_api_root(endpoint)
        self.is_emulator: bool = bool(is_dev)
        self.api_root: str = str(root).rstrip("/")
        try:
            # Typed as gcloud-aio's own Session alias; in the aio build that is aiohttp's.
            self._token: Any = Token(service_file=service_file, session=cast(Any, session), scopes=SCOPES)
        except Exception as exc:  # a malformed or missing service file raises many kinds
            raise PermissionDenied(
                f"cannot load GCS credentials ({service_file or 'default chain'}): {exc}"
            ) from exc

    @property
    def service_data(self) -> dict[str, Any]:
        """The loaded credential file (a service account's holds its signing key)."""
        data = self._token.service_data
        return dict(data) if data else {}

    async def headers(self) -> dict[str, str]:
        if self.is_emulator:
            return {}
        try:
            token = await self._token.get()
        except aiohttp.ClientResponseError as exc:
            if exc.status in (400, 401, 403):
                raise PermissionDenied(f"GCS credentials were refused: {exc.message}") from exc
            raise TokenUnavailable(f"cannot get a GCS access token: {exc}") from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TokenUnavailable(f"cannot get a GCS access token: {exc}") from exc
        except Exception as exc:  # the token chain raises many kinds
            raise PermissionDenied(f"cannot get a GCS access token: {exc}") from exc
        return {"Authorization": f"Bearer {token}"}
