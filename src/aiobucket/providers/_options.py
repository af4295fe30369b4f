"""Checks of bucket option values that the S3 and Azure settings share.

Each names the bucket (``where``) and the option in its message, so the error says
which line of the configuration to fix; none has a default (the caller's job).
"""

from __future__ import annotations

from ..errors import InvalidArgument

__all__ = ["non_empty", "positive"]


def positive(name: str, where: str, value: object, kind: type[int] | type[float]) -> float:
    """``value`` as a positive ``kind`` (a number, or a string of one; never a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidArgument(f"{where}: {name} must be a positive number, got {value!r}")
    try:
        n = kind(value)
    except ValueError:
        raise InvalidArgument(f"{where}: {name} must be a positive number, got {value!r}") from None
    if n <= 0:
        raise InvalidArgument(f"{where}: {name} must be a positive number, got {value!r}")
    return n


def non_empty(name: str, where: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"{where}: {name} must be a non-empty string")
    return value
