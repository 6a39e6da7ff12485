"""The ``codeyard`` command line: Typer + Rich, talking to the server over HTTP only.

The Typer app is ``codeyard.cli.app.app``; this package only holds the console script."""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> None:
    """The ``codeyard`` console script. ``codeyard serve …`` skips the client commands' imports
    (``codeyard.cli.serve.main``, issue 15); everything else is the whole Typer app."""
    if sys.argv[1:2] == ["serve"]:
        from codeyard.cli.serve import main as serve_main

        serve_main(sys.argv[2:])
        return
    from codeyard.cli.app import main as app_main

    app_main()
