"""Personas: a cloud provider as its documentation says it answers, on 127.0.0.1.

A persona imitates the outside world, never our own code. It is a set of rules for
``tests/faultproxy.py``'s proxy, placed in front of a real server (SeaweedFS, moto ...):
requests the provider would serve pass through to the real server, and the answers that
only the real cloud gives (a bucket in another region, throttling at a request rate ...)
are made by the rules, each citing the documentation page it follows.

Layout: one module per provider (``aws.py``, later ``gcs.py``, ``azure.py``). Each module
has persona classes with an ``install(proxy)`` method and a ``PERSONAS`` table of named,
ready-made instances, so a test or the conformance suite can ask for one by name::

    from personas import persona
    with FaultProxy(s3_server.endpoint) as proxy:
        persona("aws:bucket-in-another-region").install(proxy)

To add a rule: add a persona class (or a rule to one) in the provider's module, cite the
page beside it, and name a ready-made instance in that module's ``PERSONAS``.
"""

from __future__ import annotations

import importlib
from typing import Protocol

__all__ = ["Persona", "persona"]


class Persona(Protocol):
    def install(self, proxy: object) -> None:
        """Add this persona's rules to a ``faultproxy.FaultProxy``."""


def persona(name: str) -> Persona:
    """A ready-made persona by name, ``"<provider>:<persona>"`` (e.g. ``"aws:bucket-in-another-region"``)."""
    provider, _, which = name.partition(":")
    module = importlib.import_module(f"personas.{provider}")
    table: dict[str, Persona] = module.PERSONAS
    if which not in table:
        raise KeyError(f"no persona {which!r} for {provider}; known: {sorted(table)}")
    return table[which]
