"""The Google Cloud Storage backend. ``aiobucket.providers.gcs:create`` is its factory."""

from ._provider import CAPABILITIES, GcsProvider, create

__all__ = ["CAPABILITIES", "GcsProvider", "create"]
