"""``codeyard fake-llm``: a scripted model server, to try an agent set-up offline and for free.

It serves Anthropic Messages, OpenAI Responses and Chat Completions, and Gemini on one port,
answering model calls from a reply script (see ``codeyard.testing.fake_llm.script``). At start it
prints, for every agent CLI it can serve, the ``codeyard run`` command with the exact
``agent_options`` that point that CLI at it (``codeyard.testing.fake_llm.recipes``).
"""

from __future__ import annotations

import json
import logging
import shlex
from pathlib import Path

import typer


def recipe_lines(url: str, home: Path) -> list[str]:
    """What ``fake-llm`` prints about each CLI: model, API, shell tool, and the run command."""
    from codeyard.testing.fake_llm.recipes import RECIPES, options_for

    lines: list[str] = []
    for recipe in RECIPES:
        options = json.dumps(options_for(recipe.provider, url, home), separators=(",", ":"))
        shell = (
            f'its shell tool is {recipe.shell_tool} {{"{recipe.shell_arg}": …}}'
            if recipe.shell_tool
            else "no tool calls: replies ask for commands in fenced bash blocks"
        )
        lines.append(f"# {recipe.provider}: {recipe.api}; {shell}")
        lines.append(
            f'codeyard run "Say hello" --provider {recipe.provider} --model {recipe.model} '
            f"--options-json {shlex.quote(options)}"
        )
    return lines


def fake_llm(
    script: Path | None = typer.Option(
        None,
        "--script",
        exists=True,
        dir_okay=False,
        help="Reply script (JSON). Without one, every call gets the default answer.",
        show_default=False,
    ),
    port: int = typer.Option(8765, "--port", min=1, max=65535, help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    home: Path = typer.Option(
        Path("~/.cache/codeyard-fake-llm"),
        "--home",
        file_okay=False,
        help="Where the agent CLIs keep their state while they talk to this server (one "
        "folder per CLI, created here), away from your own CLI logins. Not inside a Codeyard "
        "data dir: the sandbox hides those from agents.",
    ),
) -> None:
    """Serve a scripted fake model API (Anthropic, OpenAI, Gemini) for testing agents offline.

    Prints, for each agent CLI (claude-code, codex, gemini, copilot, opencode, qwen, codex-acp,
    claude-acp, kilo, aider), the exact
    `codeyard run … --options-json '…'` that runs it against this server.
    """
    # Imported here: the server stack is only needed by this command, not by every CLI call.
    import uvicorn

    from codeyard.testing.fake_llm import FakeState, ScriptError, build_app, load_script
    from codeyard.testing.fake_llm.recipes import prepare

    try:
        replies, default = load_script(script) if script else ([], None)
    except ScriptError as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(2) from None
    state = FakeState(replies, default)
    url = f"http://{host}:{port}"
    home = prepare(home)
    typer.echo(f"Fake model server on {url} with {len(replies)} scripted replies.")
    typer.echo("Run an agent against it (in another terminal, with `codeyard serve` running):")
    for line in recipe_lines(url, home):
        typer.echo(f"  {line}")
    typer.echo("Requests are logged below; Ctrl-C stops the server.", err=False)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    uvicorn.run(build_app(state), host=host, port=port, log_level="warning", access_log=False)
