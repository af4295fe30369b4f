"""The argument rules of ``signed_upload_form()`` and the signed-PUT extras, in one place.

Everything a provider receives in a :class:`PostPolicy` has passed these checks:
sizes are non-negative ints with ``min_size <= max_size``; exactly one of
``content_type`` / ``content_type_prefix`` is set (the type guessed from the key
when the caller gave neither); both are printable ASCII, so they fit a form field,
a JSON policy and an HMAC message unchanged; metadata follows UploadAttrs' rules.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping
from datetime import timedelta

from .errors import InvalidArgument
from .providers.base import PostPolicy
from .types import UploadAttrs

__all__ = ["check_content_type", "check_size", "make_policy"]

_FILENAME_VARIABLE = "${filename}"


def check_size(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidArgument(f"{name} must be an int >= 0 (bytes), got {value!r}")
    return value


def check_content_type(name: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"{name} must be a non-empty str, got {value!r}")
    if not all(" " <= c <= "~" for c in value):
        raise InvalidArgument(f"{name} must be printable ASCII, got {value!r}")
    return value


def make_policy(
    key: str,
    ttl: timedelta,
    max_size: object,
    min_size: object,
    content_type: object,
    content_type_prefix: object,
    metadata: object,
) -> PostPolicy:
    """A checked PostPolicy for ``key`` (already a valid key), or InvalidArgument saying what to fix."""
    if _FILENAME_VARIABLE in key:
        # S3 and GCS replace it with the browser's file name, so the stored key would not
        # be the one signed here (and the dev server would store it literally).
        raise InvalidArgument(f"an upload form's key must not contain {_FILENAME_VARIABLE!r}")
    high = check_size("max_size", max_size)
    low = check_size("min_size", min_size)
    if low > high:
        raise InvalidArgument(f"min_size ({low}) must not exceed max_size ({high})")
    if content_type is not None and content_type_prefix is not None:
        raise InvalidArgument("pass content_type (exact) or content_type_prefix, not both")
    if content_type_prefix is not None:
        prefix: str | None = check_content_type("content_type_prefix", content_type_prefix)
        exact = None
    else:
        prefix = None
        exact = (
            check_content_type("content_type", content_type)
            if content_type is not None
            else mimetypes.guess_type(key)[0] or "application/octet-stream"
        )
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, Mapping):
        raise InvalidArgument(f"metadata must be a dict[str, str], got {type(metadata).__name__}")
    meta = UploadAttrs(metadata=metadata).metadata  # the same rules as an upload's metadata
    for k, v in meta.items():
        if not all(" " <= c <= "~" for c in v):
            raise InvalidArgument(f"metadata value for {k!r} must be printable ASCII in a form, got {v!r}")
    return PostPolicy(
        ttl=ttl,
        min_size=low,
        max_size=high,
        content_type=exact,
        content_type_prefix=prefix,
        metadata=meta,
    )
