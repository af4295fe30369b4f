"""Personas: small servers on 127.0.0.1, or fault-proxy rules in front of a real server, that
answer as a provider's documentation says.

Each rule cites the documentation page it follows. They stand in for services the tests
cannot reach (Google's metadata server and IAM, ...) or for answers where an emulator differs
from the cloud (``azure.py``, in front of Azurite; ``aws.py`` and ``aws_kms.py``, in front of
SeaweedFS or moto); they are never mocks of our own code.

Layout: one module per provider or concern. A module whose personas are fault-proxy rules
may offer a ``PERSONAS`` table of named, ready-made instances with an ``install(proxy)``
method, so a test or the conformance suite can ask for one by name::

    from personas import persona
    with FaultProxy(s3_server.endpoint) as proxy:
        persona("aws:bucket-in-another-region").install(proxy)
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
