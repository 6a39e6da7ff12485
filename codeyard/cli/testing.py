"""Run the CLI in-process, for tests.

Unit tests pass an ``httpx.MockTransport`` as ``transport``; integration tests pass the URL and
token of a real server (``server=``, ``token=``) and no transport.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import httpx
from typer.testing import CliRunner, Result

from codeyard.cli.app import app
from codeyard.cli.sse import DEFAULT_RETRIES
from codeyard.cli.state import CliState


def invoke(
    args: Sequence[str],
    *,
    server: str | None = None,
    token: str | None = None,
    transport: httpx.BaseTransport | None = None,
    env: Mapping[str, str | None] | None = None,
    retries: int = DEFAULT_RETRIES,
    sleep: Callable[[float], None] = lambda _seconds: None,
    catch_exceptions: bool = False,
    input: str | None = None,
) -> Result:
    """``codeyard *args``; the result has ``exit_code``, ``stdout`` and ``stderr``.

    Output is 200 columns wide and uncoloured; reconnect back-off does not sleep by default.
    Unexpected exceptions propagate (``catch_exceptions=False``) so a traceback fails the test.
    ``input`` is what the command reads from stdin (prompts included).
    """
    state = CliState(server=server, token=token, transport=transport, retries=retries, sleep=sleep)
    environment: dict[str, str | None] = {"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    environment.update(env or {})
    return CliRunner().invoke(
        app,
        list(args),
        obj=state,
        env=environment,
        catch_exceptions=catch_exceptions,
        input=input,
    )
