"""The Azure Blob Storage backend. ``aiobucket.providers.azure:create`` is its factory.

Nothing heavy is imported here, so the configuration can read ``OPTIONS`` (to reject
misspelt option names) in a process that never talks to Azure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._settings import OPTIONS, AzureSettings

if TYPE_CHECKING:
    from ._provider import CAPABILITIES, AzureProvider, create

__all__ = ["CAPABILITIES", "OPTIONS", "AzureProvider", "AzureSettings", "create"]


def __getattr__(name: str) -> Any:
    if name in ("CAPABILITIES", "AzureProvider", "create"):
        from . import _provider

        return getattr(_provider, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
