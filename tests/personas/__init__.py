"""Personas: a cloud provider as its documentation says it answers, on 127.0.0.1."""
