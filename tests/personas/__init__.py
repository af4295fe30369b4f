"""Personas: fault-proxy rules or tiny servers that answer as a provider's documentation says.

One module per provider. Each rule cites its source (the docs page) beside it. A persona
imitates the outside world where the real server under test (an emulator) differs from
the cloud; it never stubs aiobucket's own code.
"""
