"""Google Cloud as a keyless workload sees it: the metadata server and IAM ``signBlob``.

One aiohttp app on one 127.0.0.1 port plays both (point ``GCE_METADATA_HOST`` and the
bucket's ``iam_endpoint`` option at ``persona.url``). It runs in the test's event loop.

Rules, each as Google documents it:

* Metadata requests need ``Metadata-Flavor: Google``; without it the server answers 403.
  https://cloud.google.com/compute/docs/metadata/querying-metadata
* ``/computeMetadata/v1/instance/service-accounts/default/token`` answers
  ``{"access_token", "expires_in", "token_type": "Bearer"}``; ``?scopes=a,b`` asks for
  scopes, which Cloud Run and GKE honour, while a Compute Engine VM gives the access
  scopes it was created with (``vm_scopes``).
  https://cloud.google.com/compute/docs/access/authenticate-workloads#applications
  https://cloud.google.com/run/docs/container-contract#metadata-server
* ``.../default/email`` answers the service account's email as text.
  https://cloud.google.com/compute/docs/metadata/predefined-metadata-keys
* ``POST /v1/projects/-/serviceAccounts/{email}:signBlob`` with ``{"payload": base64}``
  answers ``{"keyId", "signedBlob"}`` (RSASSA-PKCS1-v1_5, SHA-256, with the account's key).
  https://cloud.google.com/iam/docs/reference/credentials/rest/v1/projects.serviceAccounts/signBlob
  It needs an OAuth token with the cloud-platform (or iam) scope; an unknown token is 401
  UNAUTHENTICATED, a token without the scope is 403 ACCESS_TOKEN_SCOPE_INSUFFICIENT
  ("Request had insufficient authentication scopes.").
  https://cloud.google.com/docs/authentication/troubleshoot-google-apis (scope errors)
  The caller needs iam.serviceAccounts.signBlob (roles/iam.serviceAccountTokenCreator) on
  the account; without it, 403 PERMISSION_DENIED "Permission 'iam.serviceAccounts.signBlob'
  denied on resource (or it may not exist)." (``granted=False``).
  https://cloud.google.com/iam/docs/service-account-permissions#token-creator-role
* A project that has not enabled the IAM Service Account Credentials API answers 403
  PERMISSION_DENIED with the ErrorInfo reason SERVICE_DISABLED ("... API has not been used
  in project N before or it is disabled. Enable it by visiting ...") (``api_enabled=False``).
  https://github.com/googleapis/googleapis/blob/master/google/api/error_reason.proto
* Google's error body: ``{"error": {"code", "message", "status", "details"}}``.
  https://cloud.google.com/apis/design/errors#http_mapping

Faults for tests: ``silent`` (the metadata server accepts and never answers),
``token_failures`` (that many 503s from the token endpoint first).
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

VECTORS = Path(__file__).parent.parent / "vectors" / "gcs"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
IAM_SCOPE = "https://www.googleapis.com/auth/iam"
DEVSTORAGE_RW = "https://www.googleapis.com/auth/devstorage.read_write"


def google_test_account() -> dict[str, str]:
    """Google's published, inactive test service account (key included)."""
    data: dict[str, str] = json.loads((VECTORS / "test_service_account.not-a-test.json").read_text())
    return data


def _error(code: int, status: str, message: str, reason: str | None = None) -> web.Response:
    err: dict[str, Any] = {"code": code, "message": message, "status": status}
    if reason is not None:
        err["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": reason,
                "domain": "googleapis.com",
            }
        ]
    return web.json_response({"error": err}, status=code)


@dataclass
class GcpPersona:
    email: str
    private_key_pem: str
    key_id: str = "persona-key"
    vm_scopes: tuple[str, ...] | None = None
    """None: requested scopes are honoured (Cloud Run, GKE); else a VM's fixed access scopes."""
    granted: bool = True
    """Whether the caller holds roles/iam.serviceAccountTokenCreator on the account."""
    api_enabled: bool = True
    """Whether the project enabled iamcredentials.googleapis.com."""
    silent: bool = False
    token_failures: int = 0
    token_ttl: int = 3600
    tokens: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Every token issued, with its scopes."""
    token_requests: list[tuple[str, ...]] = field(default_factory=list)
    email_requests: int = 0
    metadata_requests: int = 0
    """Every request the metadata server received, answered or not."""
    sign_requests: list[str] = field(default_factory=list)
    """The bearer token of each signBlob call."""
    asked: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the token endpoint has been asked."""
    url: str = ""
    _runner: web.AppRunner | None = None
    _hang: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    def google_test_key(cls, **kw: Any) -> GcpPersona:
        account = google_test_account()
        return cls(account["client_email"], account["private_key"], account["private_key_id"], **kw)

    # -- metadata server ----------------------------------------------------------------

    async def _metadata_gate(self, request: web.Request) -> web.Response | None:
        self.metadata_requests += 1
        if self.silent:
            await self._hang.wait()  # accepts, never answers (until close)
        if request.headers.get("Metadata-Flavor") != "Google":
            return web.Response(status=403, text="Missing Metadata-Flavor:Google header.")
        return None

    async def token(self, request: web.Request) -> web.Response:
        refused = await self._metadata_gate(request)
        if refused is not None:
            return refused
        asked = tuple(s for s in request.query.get("scopes", "").split(",") if s)
        self.token_requests.append(asked)
        self.asked.set()
        if self.token_failures > 0:
            self.token_failures -= 1
            return web.Response(status=503, text="metadata server temporarily unavailable")
        scopes = self.vm_scopes if self.vm_scopes is not None else (asked or (CLOUD_PLATFORM,))
        value = f"ya29.persona-{secrets.token_hex(8)}"
        self.tokens[value] = scopes
        return web.json_response(
            {"access_token": value, "expires_in": self.token_ttl, "token_type": "Bearer"}
        )

    async def email_of(self, request: web.Request) -> web.Response:
        refused = await self._metadata_gate(request)
        if refused is not None:
            return refused
        self.email_requests += 1
        return web.Response(text=self.email, content_type="application/text")

    # -- IAM Credentials ----------------------------------------------------------------

    async def sign_blob(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ")
        self.sign_requests.append(token)
        if token not in self.tokens:
            return _error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials.",
                "ACCESS_TOKEN_EXPIRED",
            )
        if not self.api_enabled:
            return _error(
                403,
                "PERMISSION_DENIED",
                "IAM Service Account Credentials API has not been used in project 123456 before or it "
                "is disabled. Enable it by visiting https://console.developers.google.com/apis/api/"
                "iamcredentials.googleapis.com/overview?project=123456 then retry.",
                "SERVICE_DISABLED",
            )
        if not {CLOUD_PLATFORM, IAM_SCOPE} & set(self.tokens[token]):
            return _error(
                403,
                "PERMISSION_DENIED",
                "Request had insufficient authentication scopes.",
                "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
            )
        account = request.match_info["account"]
        if account != self.email or not self.granted:
            return _error(
                403,
                "PERMISSION_DENIED",
                "Permission 'iam.serviceAccounts.signBlob' denied on resource (or it may not exist).",
                "IAM_PERMISSION_DENIED",
            )
        payload = base64.b64decode((await request.json())["payload"])
        signature = _rsa_sign(self.private_key_pem, payload)
        return web.json_response({"keyId": self.key_id, "signedBlob": base64.b64encode(signature).decode()})

    def revoke_all(self) -> None:
        self.tokens.clear()

    # -- lifecycle ----------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        base = "/computeMetadata/v1/instance/service-accounts/default"
        app.router.add_get(f"{base}/token", self.token)
        app.router.add_get(f"{base}/email", self.email_of)
        app.router.add_post(r"/v1/projects/-/serviceAccounts/{account}:signBlob", self.sign_blob)
        return app

    async def __aenter__(self) -> GcpPersona:
        self._runner = web.AppRunner(self.app(), shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._hang.set()
        if self._runner is not None:
            await self._runner.cleanup()


def _rsa_sign(pem: str, message: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key.sign(message, padding.PKCS1v15(), hashes.SHA256())
