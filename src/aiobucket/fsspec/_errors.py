"""aiobucket errors as the built-in exceptions fsspec callers catch.

One table, applied at the boundary of every filesystem and file method: the
aiobucket error is chained as ``__cause__``, so nothing of it is lost.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import ObjectChanged, ObjectNotFound, PreconditionFailed

__all__ = ["FileExpired", "os_errors"]


class FileExpired(OSError):
    """The object changed after the file was opened (its ETag is not the one pinned
    at open); reading on would splice two versions. Open the file again.
    s3fs raises its own ``FileExpired`` (also an OSError, errno EBUSY) in this case."""

    def __init__(self, path: str, etag: str | None) -> None:
        super().__init__(
            errno.EBUSY,
            f"the object changed since the file was opened (ETag {etag!r} no longer matches); open it again",
            path,
        )
        self.etag = etag


@contextmanager
def os_errors(path: str) -> Iterator[None]:
    """Raise ObjectNotFound as FileNotFoundError, ObjectChanged as FileExpired, and any
    other PreconditionFailed (a create-only write that lost) as FileExistsError.
    PermissionDenied is a PermissionError already; InvalidArgument a ValueError."""
    try:
        yield
    except ObjectNotFound as exc:
        raise FileNotFoundError(errno.ENOENT, str(exc), path) from exc
    except ObjectChanged as exc:
        raise FileExpired(path, None) from exc
    except PreconditionFailed as exc:
        raise FileExistsError(errno.EEXIST, str(exc), path) from exc
