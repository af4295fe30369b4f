"""Error mapping and retry policy for the S3 provider.

Imported only by ``providers/s3.py`` (it imports botocore and aiohttp, which
``import aiobucket`` must not pull in).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
from botocore import exceptions as bce

from ...errors import (
    BackendError,
    BucketError,
    ConnectionLost,
    InvalidArgument,
    NotModified,
    NotSupported,
    ObjectNotFound,
    PermissionDenied,
    PreconditionFailed,
    RangeNotSatisfiable,
)

_NOT_FOUND = {"NoSuchKey", "NoSuchVersion", "NotFound", "404"}
_DENIED = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AllAccessDisabled",
    "AccountProblem",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "RequestTimeTooSkewed",
    "403",
}
_THROTTLED = {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests"}

# The failures after which the server certainly did not apply a request: the
# connection was never made, or the server answered "busy, try again".
_NOT_SENT = (bce.EndpointConnectionError, bce.ConnectTimeoutError)


def client_error_code(exc: BaseException) -> tuple[str, int]:
    if isinstance(exc, bce.ClientError):
        err = exc.response.get("Error", {})
        meta = exc.response.get("ResponseMetadata", {})
        return str(err.get("Code", "")), int(meta.get("HTTPStatusCode") or 0)
    return "", 0


def map_error(
    exc: Exception,
    *,
    op: str,
    bucket: str,
    key: str | None = None,
    version: str | None = None,
    conditional_write: bool = False,
) -> BucketError:
    """Translate a botocore/aiohttp exception into the aiobucket hierarchy."""
    if isinstance(exc, BucketError):
        return exc
    if isinstance(exc, bce.ClientError):
        code, status = client_error_code(exc)
        message = str(exc.response.get("Error", {}).get("Message") or code or status)
        if code == "NoSuchBucket":
            return BackendError(
                f"{op}: the cloud bucket {bucket!r} does not exist on this S3 endpoint "
                "(check the s3:// URL in the bucket's configuration)",
                key=key,
            )
        if status == 304:  # a conditional GET (if_none_match / if_modified_since) matched
            return NotModified(f"{op}: not modified", key=key, version=version)
        if status == 412 or code in ("PreconditionFailed", "ConditionalRequestConflict"):
            return PreconditionFailed(f"{op}: precondition failed ({code or status}: {message})", key=key)
        if conditional_write and (code in _NOT_FOUND or status == 404):
            # If-Match on a missing object: S3 answers 404; the contract says precondition.
            return PreconditionFailed(
                f"{op}: precondition if_match failed: the object does not exist", key=key
            )
        if code in _NOT_FOUND or status == 404:
            return ObjectNotFound(
                "object not found" if version is None else "object version not found",
                key=key,
                version=version,
            )
        if version is not None and (
            (status == 400 and code in ("InvalidArgument", "InvalidVersionId", "InvalidRequest"))
            or status == 405  # the version is a delete marker, which is not an object version
        ):
            return ObjectNotFound("object version not found", key=key, version=version)
        if status == 416 or code == "InvalidRange":
            return RangeNotSatisfiable(f"{op}: range not satisfiable ({message})", key=key)
        if code in _DENIED or status == 403:
            return PermissionDenied(f"{op}: permission denied by S3 ({code or status}: {message})", key=key)
        if code in ("NotImplemented",) or status == 501:
            return NotSupported(f"{op}: not supported by this S3 server ({message})", key=key)
        if code in (
            "EntityTooSmall",
            "EntityTooLarge",
            "InvalidPart",
            "InvalidPartOrder",
            "KeyTooLongError",
            "MetadataTooLarge",
            "InvalidArgument",
            "InvalidRequest",
        ):
            return InvalidArgument(f"{op}: S3 rejected the request ({code}: {message})", key=key)
        return BackendError(f"{op}: S3 error {code or status}: {message}", key=key)
    if isinstance(exc, bce.NoCredentialsError | bce.PartialCredentialsError):
        return PermissionDenied(f"{op}: no S3 credentials found ({exc})", key=key)
    if isinstance(exc, bce.ParamValidationError):
        return InvalidArgument(f"{op}: invalid request: {exc}", key=key)
    if isinstance(exc, bce.IncompleteReadError | bce.ResponseStreamingError):
        return ConnectionLost(f"{op}: connection lost while reading the body ({exc})", key=key)
    if isinstance(exc, bce.BotoCoreError | aiohttp.ClientError | OSError | asyncio.TimeoutError):
        return BackendError(f"{op}: cannot reach S3: {type(exc).__name__}: {exc}", key=key)
    return BackendError(f"{op}: unexpected S3 driver error: {type(exc).__name__}: {exc}", key=key)


@contextmanager
def mapped(
    op: str,
    bucket: str,
    key: str | None = None,
    version: str | None = None,
    *,
    conditional_write: bool = False,
) -> Iterator[None]:
    """Re-raise driver exceptions as aiobucket errors (CancelledError passes through)."""
    try:
        yield
    except BucketError:
        raise
    except Exception as exc:
        raise map_error(
            exc, op=op, bucket=bucket, key=key, version=version, conditional_write=conditional_write
        ) from exc


def body_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean the connection dropped in the middle of a body."""
    return (
        bce.ResponseStreamingError,
        bce.IncompleteReadError,
        bce.ReadTimeoutError,
        bce.ConnectionClosedError,
        aiohttp.ClientPayloadError,
        aiohttp.ClientConnectionError,
        ConnectionError,
        asyncio.TimeoutError,
    )


# Operations that must not be blindly retried when they may already have been
# applied: completing an upload twice fails (NoSuchUpload), and a conditional
# write retried after a lost response would report its own success as a
# precondition failure (or, for If-Match, overwrite a newer object).
UNSAFE_OPS = ("PutObject", "CompleteMultipartUpload", "CopyObject")


def veto_unsafe_retry(
    request_dict: dict[str, Any] | None = None,
    response: tuple[Any, dict[str, Any]] | None = None,
    caught_exception: BaseException | None = None,
    operation: Any = None,
    **_: Any,
) -> bool | None:
    """``needs-retry`` hook: return False to stop a retry, None to let botocore decide.

    Whole uploads (PutObject), completions and copies are retried only when the
    server certainly did not apply them: the connection could not be made, or
    the server answered 503/throttling. A 500 or a dropped connection after the
    body was sent is ambiguous, so it is surfaced instead of retried.
    """
    if caught_exception is not None:
        return None if isinstance(caught_exception, _NOT_SENT) else False
    if response is not None:
        parsed = response[1] if len(response) > 1 else {}
        status = int(parsed.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        code = str(parsed.get("Error", {}).get("Code", ""))
        if status in (429, 503) or code in _THROTTLED:
            return None
        if status >= 500:
            return False
    return None
