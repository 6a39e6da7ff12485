"""The ``codeyard`` command line: Typer + Rich, talking to the server over HTTP only."""

from codeyard.cli.app import app, main

__all__ = ["app", "main"]
