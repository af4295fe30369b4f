"""Personas: faultproxy rules or small servers that answer as a provider's documentation says.

Each rule cites the documentation page it imitates. A persona imitates the outside world;
it never stubs aiobucket's own code.
"""
