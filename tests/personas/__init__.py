"""Personas: small servers on 127.0.0.1, or fault-proxy rules in front of a real server, that
answer as a provider's documentation says.

Each rule cites the documentation page it follows. They stand in for services the tests
cannot reach (Google's metadata server and IAM, ...) or for answers where an emulator differs
from the cloud (``azure.py``, in front of Azurite); they are never mocks of our own code.
"""
