"""``codeyard fake-llm``: a scripted model server, to try an agent set-up offline and for free.

It serves Anthropic Messages, OpenAI Responses and Chat Completions, and Gemini on one port,
answering model calls from a reply script (see ``codeyard.testing.fake_llm.script``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import typer


def fake_llm(
    script: Path | None = typer.Option(
        None,
        "--script",
        exists=True,
        dir_okay=False,
        help="Reply script (JSON). Without one, every call gets the default answer.",
        show_default=False,
    ),
    port: int = typer.Option(8765, "--port", min=0, max=65535, help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
) -> None:
    """Serve a scripted fake model API (Anthropic, OpenAI, Gemini) for testing agents offline."""
    # Imported here: the server stack is only needed by this command, not by every CLI call.
    import uvicorn

    from codeyard.testing.fake_llm import FakeState, ScriptError, build_app, load_script

    try:
        replies, default = load_script(script) if script else ([], None)
    except ScriptError as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(2) from None
    state = FakeState(replies, default)
    url = f"http://{host}:{port}"
    typer.echo(f"Fake model server on {url} with {len(replies)} scripted replies.")
    typer.echo(f"  Claude Code:  ANTHROPIC_BASE_URL={url} ANTHROPIC_API_KEY=fake claude -p '…'")
    typer.echo(f"  OpenAI APIs:  base URL {url}/v1 (Responses and Chat Completions)")
    typer.echo(f"  Gemini CLI:   GOOGLE_GEMINI_BASE_URL={url} GEMINI_API_KEY=fake")
    typer.echo("Requests are logged below; Ctrl-C stops the server.")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    uvicorn.run(build_app(state), host=host, port=port, log_level="warning", access_log=False)
