"""S3 error answers mapped onto the aiobucket hierarchy (the same types and messages as before).

``error_for`` turns a final non-2xx response into an error; ``BODY_ERRORS`` lists the
exceptions that mean a streamed body was cut. Retry decisions are not made here
(see ``_retry.py``).
"""

from __future__ import annotations

import asyncio

import aiohttp

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
from ._transport import Response

__all__ = ["BODY_ERRORS", "error_for"]

_NOT_FOUND = {"NoSuchKey", "NoSuchVersion", "NotFound"}
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
}
_INTEGRITY = {"BadDigest", "XAmzContentChecksumMismatch", "XAmzContentSHA256Mismatch", "InvalidDigest"}
_REJECTED = {
    "EntityTooSmall",
    "EntityTooLarge",
    "InvalidPart",
    "InvalidPartOrder",
    "KeyTooLongError",
    "MetadataTooLarge",
    "InvalidArgument",
    "InvalidRequest",
}

BODY_ERRORS: tuple[type[BaseException], ...] = (
    aiohttp.ClientPayloadError,
    aiohttp.ClientConnectionError,
    ConnectionError,
    asyncio.TimeoutError,
)
"""Exceptions that mean the connection dropped in the middle of a body."""


def error_for(
    resp: Response,
    *,
    op: str,
    bucket: str,
    key: str | None = None,
    version: str | None = None,
    conditional_write: bool = False,
) -> BucketError:
    """The aiobucket error for a final S3 error answer."""
    status, code = resp.status, resp.code
    message = resp.message or code or str(status)
    tries = f" after {resp.attempts} attempts" if resp.attempts > 1 else ""
    if code == "NoSuchBucket":
        return BackendError(
            f"{op}: the cloud bucket {bucket!r} does not exist on this S3 endpoint "
            "(check the s3:// URL in the bucket's configuration)",
            key=key,
        )
    if status == 412 or code in ("PreconditionFailed", "ConditionalRequestConflict"):
        return PreconditionFailed(f"{op}: precondition failed ({code or status}: {message})", key=key)
    if code in _INTEGRITY:
        return IntegrityError(
            f"{op}: S3 refused the body: it does not match its checksum ({code}: {message}); "
            "nothing was stored",
            key=key,
        )
    if conditional_write and (code in _NOT_FOUND or status == 404):
        # If-Match on a missing object: S3 answers 404; the contract says precondition.
        return PreconditionFailed(f"{op}: precondition if_match failed: the object does not exist", key=key)
    if code in _NOT_FOUND or status == 404:
        return ObjectNotFound(
            "object not found" if version is None else "object version not found", key=key, version=version
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
    if code == "NotImplemented" or status == 501:
        return NotSupported(f"{op}: not supported by this S3 server ({message})", key=key)
    if code in _REJECTED:
        return InvalidArgument(f"{op}: S3 rejected the request ({code}: {message})", key=key)
    return BackendError(f"{op}: S3 error {code or status}: {message}{tries}", key=key)
