"""The S3 backend (AWS and S3-compatible stores). ``aiobucket.providers.s3:create`` is its factory."""

from ._provider import CAPABILITIES, S3Provider, S3Settings, create

__all__ = ["CAPABILITIES", "S3Provider", "S3Settings", "create"]
