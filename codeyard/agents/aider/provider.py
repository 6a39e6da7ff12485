"""The ``aider`` provider: Aider has no protocol of its own, so Codeyard ships a bridge
(``bridge.py``) that drives aider's Python API and speaks ACP; this provider starts it with the
Python of aider's isolated venv and the ACP turn driver does the rest.

Options (``agent_options``): those of every ACP agent (``env``, ``permission_mode``,
``command``). The model is aider's (LiteLLM's) name, e.g. ``openai/gpt-4.1`` with
``OPENAI_API_BASE`` and ``OPENAI_API_KEY`` in ``env`` for any OpenAI-compatible endpoint, or
``anthropic/claude-sonnet-4-5`` with ``ANTHROPIC_API_KEY``. A model is required: aider's own
default depends on which keys it finds, which a run should not leave to chance.
"""

from __future__ import annotations

import functools
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

from codeyard.agents import version_cache
from codeyard.agents.acp.launch import Launch
from codeyard.agents.acp.provider import AcpProvider
from codeyard.agents.base import AgentFailure, Capabilities, TurnContext

__all__ = ["AIDER_PYTHON", "BRIDGE", "AiderProvider"]

#: The venv ``make aider`` creates from ``clis/py/aider-requirements.txt`` (absent in a wheel).
AIDER_PYTHON = Path(__file__).resolve().parents[3] / "clis" / "py" / "aider" / "bin" / "python"
BRIDGE = Path(__file__).resolve().with_name("bridge.py")
_FIX = "run `make aider` (a venv of its own in clis/py/aider, from exact pins)"


@functools.lru_cache(maxsize=4)
def _aider_version(python: str) -> tuple[str | None, str | None]:
    """(aider's version, None) from the venv's Python, or (None, why it cannot run); a version
    found is remembered while the venv's packages are unchanged (its ``site-packages`` folder
    changes when one is installed or removed)."""
    venv = Path(python).parent.parent
    packages = next(iter(sorted(venv.glob("lib/python3*/site-packages"))), Path(python))
    return version_cache.remembered("aider", packages, lambda: _ask_aider(python))


def _ask_aider(python: str) -> tuple[str | None, str | None]:
    try:
        done = subprocess.run(
            [python, "-c", "import acp, aider; print(aider.__version__)"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except OSError as exc:
        return None, f"{python} cannot be run: {exc.strerror or exc}"
    except subprocess.TimeoutExpired:
        return None, f"{python} did not import aider within 60 s"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"aider or the ACP SDK is missing from {python}: {last}"
    return done.stdout.strip() or None, None


class AiderProvider(AcpProvider):
    name = "aider"
    label = "Aider"
    package = "aider-chat"
    #: Aider counts the tokens of each model call (from the stream); it reports no cost of its
    #: own that Codeyard would trust over its price map.
    capabilities = Capabilities(
        approvals=True, resume=True, interrupt=True, mid_turn_input=False, usage=True, cost=True
    )

    def __init__(self, python: Path = AIDER_PYTHON) -> None:
        super().__init__()
        self._python = python

    def command(self, options: dict[str, Any] | None = None) -> list[str] | None:
        configured = super().command(options)
        if configured is not None:
            return configured
        if not self._python.exists():
            return None
        return [str(self._python), str(BRIDGE)]

    def probe(self, executable: str) -> tuple[str | None, str | None]:
        return _aider_version(executable)

    def problem(self) -> str | None:
        command = self.command()
        if command is None:
            return f"Aider was not found: {_FIX}, or set provider_config.command."
        _, why = self.probe(command[0])
        if why is not None:
            return f"Aider cannot run here: {why}. Reinstall it: {_FIX}."
        return None

    def launch(self, ctx: TurnContext) -> Launch:
        if not ctx.model:
            raise AgentFailure(
                "Aider needs a model: set the run's model to aider's name for it, "
                "e.g. openai/gpt-4.1 (with OPENAI_API_BASE for a local server)."
            )
        base = super().launch(ctx)
        env = {"AIDER_ANALYTICS": "false", "AIDER_CHECK_UPDATE": "false", **base.env}
        return replace(base, argv=[*base.argv, "--model", ctx.model], env=env)
