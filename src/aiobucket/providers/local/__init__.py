"""The local filesystem backend: blob files plus a SQLite index (see ``_provider``)."""

from ._provider import CAPABILITIES, LocalProvider, create

__all__ = ["CAPABILITIES", "LocalProvider", "create"]
