"""Personas: rules in the test proxy (tests/faultproxy.py) that make a real server answer as
another provider's documentation, or its issue tracker, says that provider does.

A persona imitates the outside world; it never stubs aiobucket's own code. Each rule
names its source in a comment beside it.
"""
