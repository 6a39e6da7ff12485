"""Helpers for tests: throw-away services such as a private PostgreSQL cluster."""
