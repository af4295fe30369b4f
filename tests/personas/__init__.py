"""Personas: small servers on 127.0.0.1 that answer as a provider's documentation says.

Each rule cites the documentation page it follows. They stand in for services the tests
cannot reach (Google's metadata server and IAM, ...); they are never mocks of our own code.
"""
