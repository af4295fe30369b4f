"""Signing without a private key: the IAM Credentials ``signBlob`` API as a ``Signer``.

https://cloud.google.com/iam/docs/reference/credentials/rest/v1/projects.serviceAccounts/signBlob

``POST {iam}/v1/projects/-/serviceAccounts/{email}:signBlob`` with
``{"payload": base64(bytes)}`` answers ``{"keyId": ..., "signedBlob": base64(signature)}``:
an RSASSA-PKCS1-v1_5 SHA-256 signature with one of the account's Google-managed
keys, the same kind a V4 signature needs. This is how python-storage, object_store
and gcloud-aio-storage sign on Workload Identity, Cloud Run and Compute Engine.

Invariants: the request carries a token with the cloud-platform scope (the
storage token's scope is not enough for IAM); it is idempotent, so it is
retried like a read within the request's budget; a refusal is PermissionDenied
naming the role the caller needs, ``roles/iam.serviceAccountTokenCreator`` on the
signing account (a service account signing as itself needs it on itself).
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING
from urllib.parse import quote

from ...errors import BackendError, BucketError, PermissionDenied
from ._http import HttpError, Kind, error_for_status
from ._sign import Signer

if TYPE_CHECKING:
    from ._http import GcsHttp

__all__ = ["ROLE", "sign_blob_signer"]

ROLE = "roles/iam.serviceAccountTokenCreator"


def sign_blob_signer(http: GcsHttp, email: str, key: str | None) -> Signer:
    url = f"{http.iam_root}/v1/projects/-/serviceAccounts/{quote(email, safe='@')}:signBlob"

    async def sign(message: bytes) -> bytes:
        body = f'{{"payload": "{base64.b64encode(message).decode()}"}}'.encode()
        try:
            reply = await http.call(
                "POST",
                url,
                kind=Kind.READ,  # signing the same bytes twice changes nothing
                key=key,
                what="sign with IAM signBlob",
                data=body,
                headers={"Content-Type": "application/json; charset=UTF-8"},
                signing=True,
            )
        except HttpError as exc:
            raise refused(exc, email, key) from exc
        answer = reply.json(key, "IAM signBlob")
        try:
            return base64.b64decode(str(answer["signedBlob"]), validate=True)
        except (KeyError, binascii.Error, ValueError) as exc:
            raise BackendError("IAM signBlob answered without a signature", key=key) from exc

    return sign


def refused(exc: HttpError, email: str, key: str | None) -> BucketError:
    err = error_for_status(exc.status, exc.body, key=key, what="IAM signBlob", attempts=exc.attempts)
    if exc.status in (401, 403):
        lowered = exc.body.lower()
        if "service_disabled" in lowered or "has not been used" in lowered:
            # https://cloud.google.com/iam/docs/troubleshooting-access (the API must be enabled)
            hint = (
                "enable the IAM Service Account Credentials API (iamcredentials.googleapis.com) in "
                f"the project; the signer also needs {ROLE} on {email}"
            )
        elif "scope" in lowered:
            hint = (
                "the access token lacks the cloud-platform scope IAM needs; on Compute Engine give "
                "the VM the cloud-platform access scope"
            )
        else:
            hint = f"grant {ROLE} on the service account {email} to the identity that signs (itself)"
        return PermissionDenied(f"signing as {email} was refused: {err.message}; {hint}", key=key)
    if exc.status == 404:
        return PermissionDenied(
            f"signing as {email} failed: IAM does not know that service account ({err.message}); "
            "check the signing_service_account option",
            key=key,
        )
    return err
