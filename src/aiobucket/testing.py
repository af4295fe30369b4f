"""Test support: every bucket on the in-memory backend, isolated per test.

Outside pytest::

    with aiobucket.testing.memory_buckets():
        ...  # every Bucket lives in a fresh, private memory store

Under pytest this module is a plugin (registered through the ``pytest11``
entry point) that provides the ``aiobucket_memory`` fixture. Ask for it, or
put ``pytestmark = pytest.mark.usefixtures("aiobucket_memory")`` in a module.
The fixture is synchronous, so it works with any async test runner: anyio's
pytest plugin (``@pytest.mark.anyio``) and pytest-asyncio (``@pytest.mark.asyncio``)
are both tested.
"""

from __future__ import annotations

import sys
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


# The fixture only exists under pytest, which loads this module as a plugin after importing
# itself; a script calling memory_buckets() does not pay for importing pytest.
if "pytest" in sys.modules:
    import pytest

    @pytest.fixture
    def aiobucket_memory() -> Iterator[None]:
        """Every bucket on the memory backend, private to this test (listing included)."""
        with memory_buckets():
            yield
