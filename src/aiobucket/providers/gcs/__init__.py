"""The Google Cloud Storage backend. ``aiobucket.providers.gcs:create`` is its factory.

The driver (gcloud-aio-storage, aiohttp) is imported on first use of the provider,
not here, so the configuration can read ``OPTIONS`` (to reject misspelt option
names) in a process that never talks to GCS, or that lacks the ``gcs`` extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._provider import CAPABILITIES, GcsProvider, create

__all__ = ["CAPABILITIES", "OPTIONS", "GcsProvider", "create"]

OPTIONS = (
    "service_file",
    "connect_timeout",
    "read_timeout",
    "request_timeout",
    "retries",
    "retry_initial",
    "retry_cap",
    "retry_deadline",
    "trace_configs",
    "emulator",
    "universe_domain",
    "user_project",
    "kms_key_name",
    "encryption_key",
    "encryption_key_env",
    "signing_service_account",
    "iam_endpoint",
)
"""The config options gs:// buckets take (besides url, key_prefix, ...); ``create`` reads them."""


def __getattr__(name: str) -> Any:
    if name in ("CAPABILITIES", "GcsProvider", "create"):
        from . import _provider

        return getattr(_provider, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
