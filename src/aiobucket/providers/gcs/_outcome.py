"""Recognising our own write when its answer was lost.

A write whose answer never arrived (a reset after sending, a 5xx, a body cut)
may have been applied. Retrying a conditional write then meets its own result:
``ifGenerationMatch=0`` gets 412 because *our* object now exists. Before such a
412 (or a vanished upload session) is reported, the object is read back and
compared with what we wrote:

* same size and CRC32C (and, where we set them, the same content type and
  metadata; and not the generation an ``if_match`` write replaced): it is ours,
  and the write succeeded;
* something else: the caller's rule applies (a real PreconditionFailed for a
  conditional write);
* the object cannot be read (gone, or the read fails): ``OutcomeUnknown``.

A ``not_exists`` write still refused with 429 at the retry deadline (other
writers held the key at GCS's limit of one write per second per object) is
settled the same way, whichever request it was (a small upload, a resumable
session's start or final chunk, a rewrite): ours is success, anything else (or
nothing) PreconditionFailed, never BackendError (:func:`rate_limited`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ...errors import BucketError, ObjectNotFound, OutcomeUnknown, PreconditionFailed

__all__ = ["Written", "rate_limited", "read_back"]


@dataclass(frozen=True, slots=True)
class Written:
    """What a write meant to store."""

    size: int
    crc32c: str | None
    content_type: str | None = None
    """None: not compared (a copy that keeps the source's attributes)."""
    metadata: Mapping[str, str] | None = None
    replaced: str | None = None
    """The generation an ``if_match`` write replaced: our object is another one."""

    def stored_by(self, res: Mapping[str, Any]) -> bool:
        """Whether the object resource ``res`` is this write's result."""
        if str(res.get("size", "")) != str(self.size):
            return False
        if self.crc32c is None or res.get("crc32c") != self.crc32c:
            return False
        if self.replaced is not None and str(res.get("generation")) == self.replaced:
            return False
        if self.content_type is not None and res.get("contentType") != self.content_type:
            return False
        return self.metadata is None or dict(res.get("metadata") or {}) == dict(self.metadata)


async def read_back(
    fetch: Callable[[], Awaitable[dict[str, Any]]], written: Written, key: str, what: str
) -> dict[str, Any] | None:
    """The stored object's resource if it is ours, None if it is someone else's.

    Raises OutcomeUnknown when the object cannot be read to tell.
    """
    try:
        res = await fetch()
    except ObjectNotFound as exc:
        raise OutcomeUnknown(
            f"{what}: the answer was lost and the object is not there now, so whether the write "
            "was applied cannot be known; read the object to find out",
            key=key,
        ) from exc
    except BucketError as exc:
        raise OutcomeUnknown(
            f"{what}: the answer was lost and the object could not be read back to check "
            f"whether the write was applied ({exc.message}); read the object to find out",
            key=key,
        ) from exc
    return res if written.stored_by(res) else None


async def rate_limited(
    fetch: Callable[[], Awaitable[dict[str, Any]]],
    written: Written | None,
    key: str,
    what: str,
    attempts: int,
    cause: BaseException,
) -> dict[str, Any]:
    """Settle a ``not_exists`` write that GCS refused with 429 until the retry deadline.

    Others were writing this key (GCS allows one write per second per object), so the
    race is settled by looking: the stored object's resource if it is ours (an earlier
    attempt of ours won; ``written`` None: nothing of ours can be there), else
    PreconditionFailed. An object that cannot be read is OutcomeUnknown when an earlier
    attempt of ours may be it, else PreconditionFailed (the 429s say that others held the
    key, and nothing of ours can be stored).
    """
    try:
        res: dict[str, Any] | None = await fetch()
    except ObjectNotFound:
        res = None
    except BucketError as exc:
        if written is not None:
            raise OutcomeUnknown(
                f"{what}: GCS refused it with HTTP 429 until the retry deadline and the object could "
                f"not be read back to check whether an earlier attempt was applied ({exc.message}); "
                "read the object to find out",
                key=key,
            ) from exc
        res = None
    if res is not None and written is not None and written.stored_by(res):
        return res
    state = "another writer's object is there" if res is not None else "the object is not there now"
    raise PreconditionFailed(
        f"precondition not_exists failed ({what}): other writers held this key at GCS's limit of one "
        f"write per second until the retry deadline (HTTP 429 after {attempts} attempts); {state}",
        key=key,
    ) from cause
