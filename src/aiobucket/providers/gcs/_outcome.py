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
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ...errors import BucketError, ObjectNotFound, OutcomeUnknown

__all__ = ["Written", "read_back"]


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
