"""The agent CLIs ``bench/overhead.py`` compares, as data: how each is run directly (its
environment, its command line, the line that ends its turn) and through Codeyard (the run's
options), against the same scripted replies of the fake model (one tool call, then text)."""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codeyard.agents.claude.process import find_cli as find_claude
from codeyard.agents.claude.provider import ClaudeCodeProvider
from codeyard.testing.fake_llm import Reply, ToolCall

PROMPT = "Run echo hi and tell me what it printed."


def replies(tool: ToolCall) -> list[Reply]:
    return [Reply(tool_calls=(tool,)), Reply(text="It printed hi.")]


@dataclass(frozen=True)
class Variant:
    """One agent CLI, measured both ways."""

    provider: str
    model: str
    #: The model's tool call, in the CLI's own tool vocabulary.
    tool: ToolCall
    #: Why it cannot run here, or None.
    problem: Callable[[], str | None]
    #: The CLI's environment for a fake-model URL and a throw-away home.
    env: Callable[[str, Path], dict[str, str]]
    #: ``agent_options`` of the Codeyard run besides ``env``.
    options: Callable[[str, Path], dict[str, Any]]
    #: The direct command line for a fake-model URL (executed in the checkout).
    argv: Callable[[str], list[str]]
    #: True for the stdout line (JSON) that ends the turn.
    final: Callable[[dict[str, Any]], bool]


def _claude_env(url: str, home: Path) -> dict[str, str]:
    return {
        "ANTHROPIC_BASE_URL": url,
        "ANTHROPIC_API_KEY": "bench",
        "HOME": str(home),
        "CLAUDE_CODE_MAX_RETRIES": "0",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }


def _claude_argv(model: str) -> list[str]:
    cli = find_claude()
    assert cli is not None
    # The tool is allowed up front: a person scripting the CLI has no one to ask, and
    # Codeyard's own decision (policy engine, permission mode auto) allows it too.
    return [
        str(cli),
        "-p",
        PROMPT,
        "--output-format",
        "stream-json",
        "--verbose",
        "--model",
        model,
        "--allowedTools",
        "Bash",
    ]


def _codex_problem() -> str | None:
    try:
        from codeyard.agents.codex import CodexProvider
    except ImportError as exc:
        return f"the codex provider is not available: {exc}"
    return CodexProvider().problem()


def _codex_config(url: str) -> dict[str, Any]:
    provider = {
        "name": "Fake",
        "base_url": f"{url}/v1",
        "env_key": "FAKE_API_KEY",
        "wire_api": "responses",
        "request_max_retries": 0,
        "stream_max_retries": 0,
    }
    return {"model_provider": "fake", "model_providers.fake": provider}


def _codex_env(_url: str, home: Path) -> dict[str, str]:
    (home / ".codex").mkdir(parents=True, exist_ok=True)
    return {"CODEX_HOME": str(home / ".codex"), "HOME": str(home), "FAKE_API_KEY": "bench"}


def _codex_argv(model: str, url: str) -> list[str]:
    from codeyard.agents.codex.process import find_cli as find_codex
    from codeyard.agents.codex.turn import toml_value

    cli = find_codex()
    assert cli is not None
    args = [str(cli), "exec", "--json", "-s", "workspace-write", "-m", model]
    for key, value in _codex_config(url).items():
        args += ["-c", f"{key}={toml_value(value)}"]
    return [*args, PROMPT]


def with_codex_config(v: Variant, overrides: list[str]) -> Variant:
    """The codex variant whose direct ``codex exec`` also gets ``-c key=value`` for each of
    ``overrides``: e.g. ``features.plugins=false``, Codeyard's default for its app-server
    (``agents/codex/provider.py``), to compare like with like beside a user's defaults."""
    extra = [arg for kv in overrides for arg in ("-c", kv)]

    def argv(url: str) -> list[str]:
        args = v.argv(url)
        return [*args[:-1], *extra, args[-1]]  # the prompt stays last

    return dataclasses.replace(v, argv=argv)


def _gemini_problem() -> str | None:
    from codeyard.agents.acp.provider import GeminiProvider

    return GeminiProvider().problem()


def _gemini_env(url: str, home: Path) -> dict[str, str]:
    """Gemini CLI against the fake model's Gemini API, an API key, no telemetry or retries."""
    settings = {
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "privacy": {"usageStatisticsEnabled": False},
        "telemetry": {"enabled": False},
        "general": {"maxAttempts": 1},
    }
    (home / ".gemini").mkdir(parents=True, exist_ok=True)
    (home / ".gemini" / "settings.json").write_text(json.dumps(settings))
    return {
        "GEMINI_API_KEY": "bench",
        "GOOGLE_GEMINI_BASE_URL": url,
        "HOME": str(home),
        "GEMINI_CLI_TRUST_WORKSPACE": "true",
    }


def _gemini_argv(model: str) -> list[str]:
    from codeyard.agents.acp.binaries import find_binary

    cli = find_binary("gemini")
    assert cli is not None
    # --yolo: the tool runs without asking, as Codeyard's decision (mode auto) allows it.
    return [str(cli), "-p", PROMPT, "-m", model, "--output-format", "stream-json", "--yolo"]


VARIANTS: dict[str, Variant] = {
    "claude-code": Variant(
        provider="claude-code",
        model="claude-sonnet-4-5",
        tool=ToolCall("Bash", {"command": "echo hi", "description": "Say hi"}),
        problem=lambda: ClaudeCodeProvider().problem(),
        env=_claude_env,
        options=lambda _url, _home: {"permission_mode": "auto"},
        argv=lambda _url: _claude_argv("claude-sonnet-4-5"),
        final=lambda line: line.get("type") == "result",
    ),
    # Codex: ``codex exec --json`` directly; through Codeyard its app-server with the default
    # approval policy (every command goes to Codeyard's decision, which allows it).
    "codex": Variant(
        provider="codex",
        model="gpt-5-codex",
        tool=ToolCall("exec_command", {"cmd": "echo hi"}),
        problem=_codex_problem,
        env=_codex_env,
        options=lambda url, _home: {"config": _codex_config(url)},
        argv=functools.partial(_codex_argv, "gpt-5-codex"),
        final=lambda line: line.get("type") == "turn.completed",
    ),
    # An ACP provider: Gemini CLI's ``-p`` directly; through Codeyard its ``--acp`` server.
    "gemini": Variant(
        provider="gemini",
        model="gemini-2.5-pro",
        tool=ToolCall("run_shell_command", {"command": "echo hi", "description": "Say hi"}),
        problem=_gemini_problem,
        env=_gemini_env,
        options=lambda _url, _home: {"permission_mode": "auto"},
        argv=lambda _url: _gemini_argv("gemini-2.5-pro"),
        final=lambda line: line.get("type") == "result",
    ),
}
