"""Per-invocation state (global options, consoles, the client) and the one place errors print.

Tests pass a ``CliState`` as ``obj`` to ``CliRunner.invoke`` to inject an ``httpx`` transport
and an instant ``sleep``; ``codeyard.cli.testing.invoke`` does that for them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.console import Console
from typer.core import TyperGroup

from codeyard.cli.client import ApiClient, Target, discover
from codeyard.cli.errors import CliError
from codeyard.cli.errors import load_settings as load_settings  # re-exported (worker)
from codeyard.cli.sse import DEFAULT_RETRIES
from codeyard.cli.views import error_lines
from codeyard.config import Settings


@dataclass
class CliState:
    server: str | None = None
    token: str | None = None
    data_dir: Path | None = None
    transport: httpx.BaseTransport | None = None
    retries: int = DEFAULT_RETRIES
    sleep: Callable[[float], None] = field(default=time.sleep)

    @cached_property
    def out(self) -> Console:
        return Console(highlight=False)

    @cached_property
    def err(self) -> Console:
        # Errors and hints stay whole lines (commands in them must survive copy and paste).
        return Console(stderr=True, highlight=False, soft_wrap=True)

    @cached_property
    def settings(self) -> Settings:
        if self.data_dir is not None:
            return load_settings(data_dir=self.data_dir.expanduser())
        return load_settings()

    @property
    def data_dir_given(self) -> bool:
        """Whether the user named a data dir (flag or environment), rather than the default."""
        named = ("CODEYARD_DATA_DIR", "CODEYARD_HOME")
        return self.data_dir is not None or any(os.environ.get(n) for n in named)

    @cached_property
    def target(self) -> Target:
        found = discover(
            self.settings,
            server=self.server,
            token=self.token,
            data_dir_given=self.data_dir_given,
        )
        if found.notice:
            self.err.print(found.notice, style="dim")
        return found

    def client(self) -> ApiClient:
        return ApiClient(self.target, transport=self.transport)


def get_state(ctx: typer.Context) -> CliState:
    return ctx.ensure_object(CliState)


class CodeyardGroup(TyperGroup):
    """Prints a :class:`CliError` as ``Error: …`` (red, stderr) and exits 1: no traceback."""

    # ``ctx`` is typer's vendored click ``Context``, which has no public name to annotate with.
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except CliError as exc:
            state = ctx.find_object(CliState) or CliState()
            state.err.print(error_lines(exc))
            raise typer.Exit(1) from None
