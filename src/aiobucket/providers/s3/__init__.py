"""The S3 backend (AWS and S3-compatible stores). ``aiobucket.providers.s3:create`` is its factory.

The driver (aiobotocore) is imported on first use of the provider, not here, so
the configuration can read ``OPTIONS`` (to reject misspelt option names) in a
process that never talks to S3, or that lacks the ``s3`` extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._settings import OPTIONS, S3Settings

if TYPE_CHECKING:
    from ._provider import CAPABILITIES, S3Provider, create

__all__ = ["CAPABILITIES", "OPTIONS", "S3Provider", "S3Settings", "create"]


def __getattr__(name: str) -> Any:
    if name in ("CAPABILITIES", "S3Provider", "create"):
        from . import _provider

        return getattr(_provider, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
