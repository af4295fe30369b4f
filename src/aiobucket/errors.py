"""The one error hierarchy: every error aiobucket raises derives from BucketError.

Providers raise these with the key they know; the bucket layer adds the bucket
name, so every message names both.
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "BucketError",
    "ConnectionLost",
    "IntegrityError",
    "InvalidArgument",
    "NotModified",
    "NotSupported",
    "ObjectChanged",
    "ObjectNotFound",
    "OutcomeUnknown",
    "PermissionDenied",
    "PreconditionFailed",
    "RangeNotSatisfiable",
    "UploadAborted",
    "WriterClosed",
]


class BucketError(Exception):
    """Base class of every aiobucket error.

    ``bucket``, ``key`` and ``version`` say what the failed operation was about,
    where known. ``str(err)`` renders them after the message.
    """

    def __init__(
        self,
        message: str,
        *,
        bucket: str | None = None,
        key: str | None = None,
        version: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.bucket = bucket
        self.key = key
        self.version = version

    def __str__(self) -> str:
        where = []
        if self.bucket is not None:
            where.append(f"bucket {self.bucket!r}")
        if self.key is not None:
            where.append(f"key {self.key!r}")
        if self.version is not None:
            where.append(f"version {self.version!r}")
        return f"{self.message} ({', '.join(where)})" if where else self.message

    def with_context(self, *, bucket: str | None = None, key: str | None = None) -> BucketError:
        """Fill in the bucket and key where the raiser did not know them."""
        if self.bucket is None:
            self.bucket = bucket
        if self.key is None:
            self.key = key
        return self


class ObjectNotFound(BucketError):
    """The object (or the requested version of it) does not exist."""


class PreconditionFailed(BucketError):
    """A precondition (not_exists, if_match) did not hold."""


class InvalidArgument(BucketError, ValueError):
    """The caller passed something aiobucket cannot accept; the message says what to fix."""


class RangeNotSatisfiable(InvalidArgument):
    """A ranged download starts at or beyond the end of the object."""

    size: int | None = None
    """The object's size, where known (aiobucket.http sets it, for a 416 reply)."""


class PermissionDenied(BucketError, PermissionError):
    """The credentials, or the bucket ref, do not allow this operation."""


class NotSupported(BucketError):
    """The backend does not offer this capability (see ``Capabilities``)."""


class WriterClosed(BucketError):
    """The writer was already closed; start a new upload to write again."""


class UploadAborted(BucketError):
    """The upload was aborted; nothing was stored."""


class BackendError(BucketError):
    """The storage backend failed in a way that has no more specific error.

    The original exception is chained as ``__cause__``.
    """


class ConnectionLost(BackendError):
    """The connection dropped in the middle of a body; a reader may resume."""


class ObjectChanged(PreconditionFailed):
    """The object changed while it was being read; resuming would splice two versions."""


class IntegrityError(BackendError):
    """Bytes failed verification: a checksum, a length or a digest did not match.

    On a write nothing was stored; on a read the bad bytes were not returned as good.
    """


class OutcomeUnknown(BackendError):
    """A write may or may not have been applied, and checking afterwards could not tell.

    Raised after a conditional write lost its response and the object could not be
    read back to compare. Read the object to find out; never assume either way.
    """


class NotModified(BucketError):
    """A conditional download (``if_none_match`` / ``if_modified_since``) matched:
    the caller's copy is current, and no body was transferred.

    ``attrs`` holds the object's attributes where the backend reported them.
    """

    attrs: object | None = None
