"""The local filesystem backend: blob files plus a SQLite index (see ``_provider``)."""

from ._index import INDEX
from ._provider import CAPABILITIES, OPTIONS, LocalProvider, create, is_bucket, root_of

__all__ = ["CAPABILITIES", "INDEX", "OPTIONS", "LocalProvider", "create", "is_bucket", "root_of"]
