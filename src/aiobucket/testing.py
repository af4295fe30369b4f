"""Test support: every bucket on the in-memory backend, isolated per test.

Outside pytest::

    with aiobucket.testing.memory_buckets():
        ...  # every Bucket lives in a fresh, private memory store

Under pytest this module is a plugin (registered through the ``pytest11``
entry point) that provides the ``aiobucket_memory`` fixture. Ask for it, or
put ``pytestmark = pytest.mark.usefixtures("aiobucket_memory")`` in a module.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from . import config
from .providers import memory

__all__ = ["memory_buckets"]


@contextmanager
def memory_buckets() -> Iterator[None]:
    """Route every bucket to a fresh memory namespace; dropped again on exit."""
    namespace = uuid.uuid4().hex
    try:
        with config.override(default=f"memory://?ns={namespace}"):
            yield
    finally:
        memory.drop_namespace(namespace)


try:
    import pytest
except ImportError:  # pragma: no cover - pytest is only needed for the plugin
    pass
else:

    @pytest.fixture
    def aiobucket_memory() -> Iterator[None]:
        """Every bucket on the memory backend, private to this test (listing included)."""
        with memory_buckets():
            yield
