"""Every ``--help`` page says what its source says.

The CLI renders help as Markdown (``rich_markup_mode="markdown"``), where ``<data dir>`` is an
HTML tag and vanishes: ``--token`` read "Default: CODEYARD_ADMIN_TOKEN, else /admin.token."
(issue 14, a newcomer's first hour). Walks every command and group.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import typer
from typer.testing import CliRunner

from codeyard.cli.app import app

PLACEHOLDER = re.compile(r"<[^<>\n]+>")
#: A table cell ending in Rich's ellipsis: the text did not fit.
CUT = re.compile(r"\S…\s*│")


def commands(cmd: Any, path: list[str]) -> Iterator[tuple[list[str], Any]]:
    """Typer's commands (Typer vendors its own click: ``typer._click``, not ``click``)."""
    yield path, cmd
    if hasattr(cmd, "list_commands"):
        ctx = cmd.context_class(cmd)
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is not None:
                yield from commands(sub, [*path, name])


def test_placeholders_in_help_texts_survive_rendering() -> None:
    runner = CliRunner()
    lost = []
    walked = 0
    for path, cmd in commands(typer.main.get_command(app), []):
        result = runner.invoke(app, [*path, "--help"], terminal_width=250)
        assert result.exit_code == 0, (path, result.output)
        shown = " ".join(result.output.split())
        texts = [cmd.help or "", *(getattr(p, "help", None) or "" for p in cmd.params)]
        lost += [
            (path, ph) for text in texts for ph in PLACEHOLDER.findall(text) if ph not in shown
        ]
        walked += 1
    assert walked > 30  # every command and group, not only the top
    assert lost == []


def test_no_help_text_is_cut_off_in_an_80_column_terminal() -> None:
    """Rich cuts a word longer than its column with "…" (an example the reader then misses).

    Not ``serve``: its option and metavar columns leave 24 characters for the help at 80
    columns, fewer than the ``CODEYARD_*`` variable names it mentions; it must fit at 100.
    """
    runner = CliRunner()
    cut = []
    for path, _cmd in commands(typer.main.get_command(app), []):
        for width in (80, 100) if path != ["serve"] else (100,):
            result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": str(width)})
            lines = result.output.splitlines()
            assert max(map(len, lines)) <= width
            cut += [(path, width, line.strip()) for line in lines if CUT.search(line)]
    assert cut == []
