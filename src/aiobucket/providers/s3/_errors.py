"""S3 error answers mapped onto the aiobucket hierarchy (the same types and messages as before).

``error_for`` turns a final non-2xx response into an error. Retry decisions are not
made here (see ``_retry.py``, and the shared loop in ``_http/retry.py``).

Every error's message ends with S3's request id and host id (``x-amz-request-id`` and
``x-amz-id-2``, else the body's ``<RequestId>``/``<HostId>``) when the server sent
them, since AWS support asks for both; they are also put on the operation's span
(``aws_request_id``, ``aws_extended_request_id``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ... import tracing
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
from .._http.transport import Response

__all__ = ["error_detail", "error_for", "request_ids"]

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


def error_detail(body: bytes, name: str) -> str:
    """The text of one element of an S3 ``<Error>`` body (``Region``, ``RequestId`` ...); "" if none."""
    if not body or b"<" + name.encode() not in body:
        return ""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return ""
    ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    return (root.findtext(ns + name) or "").strip()


def request_ids(resp: Response) -> str:
    """The message suffix ` (request id ..., host id ...)` (puts both on the span); "" if none."""
    rid = resp.headers.get("x-amz-request-id") or error_detail(resp.body, "RequestId")
    hid = resp.headers.get("x-amz-id-2") or error_detail(resp.body, "HostId")
    if not rid and not hid:
        return ""
    tracing.annotate(aws_request_id=rid or None, aws_extended_request_id=hid or None)
    ids = [f"request id {rid}"] if rid else []
    if hid:
        ids.append(f"host id {hid}")
    return f" ({', '.join(ids)})"


def error_for(
    resp: Response,
    *,
    op: str,
    bucket: str,
    key: str | None = None,
    version: str | None = None,
    conditional_write: bool = False,
) -> BucketError:
    """The aiobucket error for a final S3 error answer, its message ending with S3's ids."""
    err = _error_for(resp, op, bucket, key, version, conditional_write)
    ids = request_ids(resp)
    if ids:
        err.message += ids
        err.args = (err.message, *err.args[1:])
    return err


def _error_for(
    resp: Response, op: str, bucket: str, key: str | None, version: str | None, conditional_write: bool
) -> BucketError:
    status, code = resp.status, resp.code
    message = resp.message or code or str(status)
    tries = f" after {resp.attempts} attempts" if resp.attempts > 1 else ""
    if code == "NoSuchBucket":
        return BackendError(
            f"{op}: the cloud bucket {bucket!r} does not exist on this S3 endpoint "
            "(check the s3:// URL in the bucket's configuration)",
            key=key,
        )
    if status in (301, 302, 307) or code in ("PermanentRedirect", "TemporaryRedirect"):
        # Only when the redirect could not be followed (see _region.py).
        where = resp.headers.get("x-amz-bucket-region") or "another region"
        return BackendError(
            f"{op}: the cloud bucket {bucket!r} is in {where}, and S3 named no region to re-send "
            f"the request to ({code or status}: {message}); set region= in the bucket's configuration",
            key=key,
        )
    if code == "ConditionalRequestConflict":
        # AWS says "retry": still conflicting after every attempt is no lost race, and
        # nothing was written (conditional-requests.html).
        return BackendError(
            f"{op}: S3 kept answering 409 ConditionalRequestConflict (a concurrent write to the same "
            f"key){tries}; nothing was written, the call may be retried ({message})",
            key=key,
        )
    if status == 412 or code == "PreconditionFailed":
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
        # A HEAD's 400 has no body, hence no code (the region was ruled out: _region.py).
        (status == 400 and code in ("InvalidArgument", "InvalidVersionId", "InvalidRequest", ""))
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
