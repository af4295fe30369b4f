"""Personas: small servers on 127.0.0.1, or rules in the test proxy (tests/faultproxy.py),
that answer as a provider's documentation (or its issue tracker) says.

Each rule cites the documentation page it follows. They stand in for services the tests
cannot reach (Google's metadata server and IAM, S3-compatible stores, ...); they are never
mocks of our own code.
"""
