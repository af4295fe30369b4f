"""Listing as an async iterator of (error, entry) pairs, faithful to the seed API.

After an error is yielded the iterator stops. The trace span ends when the
iterator stops, whether it ran out, hit the limit, failed or was closed.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import replace
from typing import TYPE_CHECKING

from . import _runtime
from .errors import BucketError
from .tracing import start_span
from .types import ListEntry, Query

if TYPE_CHECKING:
    from ._runtime import Handle

__all__ = ["ListItem", "iterate"]

ListItem = tuple[None, ListEntry] | tuple[BucketError, None]


async def iterate(bucket: Handle, query: Query, *, versions: bool) -> AsyncGenerator[ListItem, None]:
    op = "list_versions" if versions else "list"
    span = start_span(op, bucket.name, None, prefix=query.prefix, limit=query.limit)
    count = 0
    error: BucketError | None = None
    entries = None
    try:
        if query.limit == 0:
            return
        try:
            provider, _ = bucket.provider()
            entries = provider.list(
                query.prefix, delimiter=query.delimiter, versions=versions, limit=query.limit
            )
            async for entry in entries:
                if not versions and entry.version is not None:
                    # S3's ListObjectsV2 has no version ids; make every backend agree.
                    entry = replace(entry, version=None)
                count += 1
                yield None, entry
                if count == query.limit:
                    return
        except Exception as exc:
            mapped = _runtime.map_error(exc, bucket.name, None)
            assert isinstance(mapped, BucketError)
            error = mapped
        if error is not None:
            span.set(items=count)
            span.end(error)
            yield error, None
    except GeneratorExit:  # the caller stopped early: a normal end
        raise
    except BaseException as exc:  # cancellation
        span.end(exc)
        raise
    finally:
        close = getattr(entries, "aclose", None)
        if close is not None:
            await close()
        span.set(items=count)
        span.end(None)
