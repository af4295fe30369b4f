"""Azure Blob error answers mapped onto the aiobucket hierarchy.

Azure names the error in the ``x-ms-error-code`` header (always, HEAD included) and
in the XML body's ``<Code>``. Retry decisions are not made here but in the shared
loop (``_http/retry.py``), whose status rules cover Azure's transient answers: 5xx
(503 ServerBusy, 500 OperationTimedOut / InternalError) and 429. No Azure code is
transient at another status, so ``AZURE_RULES`` names no codes.
"""

from __future__ import annotations

from ...errors import (
    BackendError,
    BucketError,
    IntegrityError,
    InvalidArgument,
    NotSupported,
    ObjectNotFound,
    PermissionDenied,
    PreconditionFailed,
    RangeNotSatisfiable,
)
from .._http.retry import RetryRules
from .._http.transport import Response

__all__ = ["AZURE_RULES", "error_for"]

AZURE_RULES = RetryRules("Azure", "azure")
"""What Azure's error codes mean to the retry loop: nothing beyond their HTTP status."""

_NOT_FOUND = {"BlobNotFound", "ResourceNotFound", "CannotVerifyCopySource"}
_DENIED = {
    "AuthenticationFailed",
    "AuthorizationFailure",
    "AuthorizationPermissionMismatch",
    "AuthorizationResourceTypeMismatch",
    "InsufficientAccountPermissions",
    "AccountIsDisabled",
}
_INTEGRITY = {"Md5Mismatch", "InvalidMd5", "Crc64Mismatch"}
_CONDITION = {"ConditionNotMet", "BlobAlreadyExists", "TargetConditionNotMet", "SourceConditionNotMet"}


def error_for(
    resp: Response, *, op: str, container: str, key: str | None = None, version: str | None = None
) -> BucketError:
    """The aiobucket error for a final Azure error answer."""
    status, code = resp.status, resp.code
    message = (resp.message or code or str(status)).split("\n", 1)[0]
    tries = f" after {resp.attempts} attempts" if resp.attempts > 1 else ""
    if code == "ContainerNotFound":
        return BackendError(
            f"{op}: the container {container!r} does not exist in this storage account "
            "(check the az:// URL in the bucket's configuration)",
            key=key,
        )
    if status == 412 or code in _CONDITION:
        return PreconditionFailed(f"{op}: precondition failed ({code or status}: {message})", key=key)
    if code in _INTEGRITY:
        return IntegrityError(
            f"{op}: Azure refused the body: it does not match its Content-MD5 ({code}); nothing was stored",
            key=key,
        )
    if code in _NOT_FOUND or status == 404:
        return ObjectNotFound(
            "object not found" if version is None else "object version not found", key=key, version=version
        )
    if status == 416 or code == "InvalidRange":
        return RangeNotSatisfiable(f"{op}: range not satisfiable ({message})", key=key)
    if code in _DENIED or status == 403:
        return PermissionDenied(f"{op}: permission denied by Azure ({code or status}: {message})", key=key)
    if status == 501 or code == "NotImplemented":
        return NotSupported(f"{op}: not supported by this Azure endpoint ({message})", key=key)
    if code == "InvalidBlockList":
        return BackendError(
            f"{op}: Azure refused the block list (InvalidBlockList): another upload to the same key "
            "committed first and its commit discarded this upload's blocks; upload again",
            key=key,
        )
    if status == 400:
        return InvalidArgument(f"{op}: Azure rejected the request ({code or status}: {message})", key=key)
    return BackendError(f"{op}: Azure error {code or status}: {message}{tries}", key=key)
