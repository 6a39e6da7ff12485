"""The CLI's error type and settings loader: what ``codeyard serve`` needs of the CLI.

Kept apart from the HTTP client (``cli.client``, httpx) and the Rich views so that the serve
command imports neither (issue 15: the serve path's start-up CPU).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from codeyard.config import Settings


class CliError(Exception):
    """An error the CLI reports as ``Error: <message>`` and exit code 1, never as a traceback."""

    def __init__(self, message: str, *, notes: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.notes = notes or []


def load_settings(**overrides: Any) -> Settings:
    """``Settings`` from ``CODEYARD_*`` and ``overrides``; a bad value is a :class:`CliError`."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        notes = [
            f"- CODEYARD_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        ]
        raise CliError("Invalid Codeyard settings.", notes=notes) from None
