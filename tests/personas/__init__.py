"""Personas: small servers on 127.0.0.1, or fault-proxy rules in front of a real server, that
answer as a provider's documentation (or its issue tracker) says.

Each rule cites the documentation page it follows. They stand in for services the tests
cannot reach (Google's metadata server and IAM, S3-compatible stores, ...) or for answers
where an emulator differs from the cloud (``azure.py``, in front of Azurite; ``aws.py`` and
``aws_kms.py``, in front of SeaweedFS or moto; ``stores.py``, S3-compatible stores in front
of SeaweedFS or moto); they are never mocks of our own code.
"""

from __future__ import annotations

import importlib
from typing import Protocol

__all__ = ["Persona", "persona"]


class Persona(Protocol):
    def install(self, proxy: object) -> None:
        """Add this persona's rules to a ``faultproxy.FaultProxy``."""


def persona(name: str) -> Persona:
    """A ready-made persona by name, ``"<module>:<persona>"`` (e.g. ``"aws:bucket-in-another-region"``)."""
    provider, _, which = name.partition(":")
    module = importlib.import_module(f"personas.{provider}")
    table: dict[str, Persona] = getattr(module, "PERSONAS", {})
    if which not in table:
        raise KeyError(f"no persona {which!r} in personas.{provider}; known: {sorted(table)}")
    return table[which]
