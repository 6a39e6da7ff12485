"""Every provider's agent, asked by the model to read a file in Codeyard's data directory and to
print a secret from the server's environment, gets neither: the sandbox hides the data
directory and the environment is an allowlist. The path is handed to the shell base64-encoded
(through a pipe: Gemini CLI refuses command substitution), so the policy engine's read gate
cannot see it and only the sandbox stands in the way.

Real parts: the real CLIs against ``codeyard fake-llm``, the app over httpx, SQLite, real git,
real bubblewrap (the default ``sandbox: on``).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from codeyard.agents.acp import CopilotProvider, GeminiProvider, KiloProvider, OpenCodeProvider
from codeyard.agents.aider import AiderProvider
from codeyard.agents.base import Provider
from codeyard.agents.claude import ClaudeCodeProvider
from codeyard.agents.codex import CodexProvider
from codeyard.agents.script import ScriptProvider
from codeyard.sandbox import probe
from codeyard.testing.fake_llm import FakeLLM, Reply, ToolCall
from tests.clis import acp_cases, test_aider
from tests.clis.support import WAIT, events
from tests.conftest import Api

pytestmark = pytest.mark.anyio

PLANTED = "planted-data-dir-secret-7d1f"
SERVER_SECRET = "server-env-secret-93ab"


def _claude(fake: FakeLLM, home: Path) -> dict[str, Any]:
    env = {
        "ANTHROPIC_BASE_URL": fake.url,
        "ANTHROPIC_API_KEY": "test",
        "HOME": str(home),
        "CLAUDE_CODE_MAX_RETRIES": "0",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    return {"env": env}


def _codex(fake: FakeLLM, home: Path) -> dict[str, Any]:
    (home / ".codex").mkdir(parents=True, exist_ok=True)
    provider = {
        "name": "Fake",
        "base_url": f"{fake.url}/v1",
        "env_key": "FAKE_API_KEY",
        "wire_api": "responses",
        "request_max_retries": 0,
        "stream_max_retries": 0,
    }
    env = {"CODEX_HOME": str(home / ".codex"), "HOME": str(home), "FAKE_API_KEY": "test"}
    config = {"model_provider": "fake", "model_providers.fake": provider}
    return {"env": env, "config": config}


def _gemini(fake: FakeLLM, home: Path) -> dict[str, Any]:
    settings = {
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "privacy": {"usageStatisticsEnabled": False},
        "telemetry": {"enabled": False},
        "general": {"maxAttempts": 1},
    }
    (home / ".gemini").mkdir(parents=True, exist_ok=True)
    (home / ".gemini" / "settings.json").write_text(json.dumps(settings))
    env = {"GEMINI_API_KEY": "dummy", "GOOGLE_GEMINI_BASE_URL": fake.url, "HOME": str(home)}
    return {"env": env}


def _copilot(fake: FakeLLM, home: Path) -> dict[str, Any]:
    env = {
        "COPILOT_PROVIDER_BASE_URL": f"{fake.url}/v1",
        "COPILOT_PROVIDER_API_KEY": "dummy",
        "COPILOT_OFFLINE": "true",
        "COPILOT_HOME": str(home / ".copilot"),
        "HOME": str(home),
    }
    return {"env": env}


def _opencode(fake: FakeLLM, home: Path) -> dict[str, Any]:
    config = {
        "provider": {
            "fake": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "Fake local",
                "options": {"baseURL": f"{fake.url}/v1", "apiKey": "dummy"},
                "models": {"fake-model": {"name": "Fake model"}},
            }
        },
        "autoupdate": False,
        "share": "disabled",
    }
    env = {"HOME": str(home)}
    for flag in ("MODELS_FETCH", "DEFAULT_PLUGINS", "LSP_DOWNLOAD", "AUTOUPDATE", "SHARE"):
        env[f"OPENCODE_DISABLE_{flag}"] = "1"
    for name, sub in (
        ("XDG_CONFIG_HOME", ".config"),
        ("XDG_DATA_HOME", ".local/share"),
        ("XDG_CACHE_HOME", ".cache"),
        ("XDG_STATE_HOME", ".local/state"),
    ):
        env[name] = str(home / sub)
    return {"env": env, "config": config}


def _kilo(fake: FakeLLM, home: Path) -> dict[str, Any]:
    """OpenCode's set-up (Kilo CLI is its fork) with Kilo's own switches."""
    options = _opencode(fake, home)
    env = {k: v for k, v in options["env"].items() if not k.startswith("OPENCODE_")}
    for flag in ("MODELS_FETCH", "DEFAULT_PLUGINS", "LSP_DOWNLOAD", "AUTOUPDATE", "SHARE"):
        env[f"KILO_DISABLE_{flag}"] = "1"
    return {**options, "env": env}


@dataclass(frozen=True)
class Case:
    provider: Provider
    model: str | None
    options: Callable[[FakeLLM, Path], dict[str, Any]] | None
    #: The model's shell tool call for a command.
    shell: Callable[[str], ToolCall] | None
    #: Or, for an agent without tool calls (aider), the reply text asking to run it.
    shell_text: Callable[[str], str] | None = None


CASES = {
    "script": Case(ScriptProvider(), None, None, None),
    "claude-code": Case(
        ClaudeCodeProvider(),
        "claude-sonnet-4-5",
        _claude,
        lambda c: ToolCall("Bash", {"command": c, "description": "Look"}),
    ),
    "codex": Case(
        CodexProvider(), "gpt-5-codex", _codex, lambda c: ToolCall("exec_command", {"cmd": c})
    ),
    "gemini": Case(
        GeminiProvider(),
        "gemini-2.5-pro",
        _gemini,
        lambda c: ToolCall("run_shell_command", {"command": c}),
    ),
    "copilot": Case(
        CopilotProvider(),
        "gpt-4.1",
        _copilot,
        lambda c: ToolCall("bash", {"command": c, "description": "Look"}),
    ),
    "opencode": Case(
        OpenCodeProvider(),
        "fake/fake-model",
        _opencode,
        lambda c: ToolCall("bash", {"command": c, "description": "Look"}),
    ),
    # The agents of issue 23, set up as their contract cases are.
    **{
        c.name: Case(c.provider(), c.model, c.options, c.call)
        for c in (acp_cases.QWEN, acp_cases.CODEX_ACP, acp_cases.CLAUDE_ACP)
    },
    "kilo": Case(
        KiloProvider(),
        "fake/fake-model",
        _kilo,
        lambda c: ToolCall("bash", {"command": c, "description": "Look"}),
    ),
    "aider": Case(AiderProvider(), test_aider.MODEL, test_aider.options, None, test_aider.shell),
}


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


@pytest.fixture(autouse=True)
def _server_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Secrets in the server's own environment, as CODEYARD_GITHUB_TOKEN would be."""
    monkeypatch.setenv("CODEYARD_ESCAPE_SECRET", SERVER_SECRET)
    monkeypatch.setenv("GITHUB_TOKEN", SERVER_SECRET + "-gh")


def _needs(provider: Provider) -> None:
    problem = provider.problem() or (None if probe(None).ok else probe(None).problem)
    if problem is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{provider.name} must run sandboxed in CI: {problem}")
    pytest.skip(f"{provider.name} cannot run sandboxed here: {problem}")


#: Kilo CLI's first start in a fresh HOME is the slowest of all (135 s on a machine at load 25,
#: where aider took 27 s): it runs with the slow tests.
_SLOW = {"kilo"}


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in _SLOW else n for n in CASES]
)
async def test_the_agent_cannot_read_the_data_dir_nor_print_server_secrets(
    name: str, sqlite_api: Api, git_repo: Path, fake: FakeLLM, tmp_path: Path
) -> None:
    case = CASES[name]
    _needs(case.provider)
    api = sqlite_api
    assert (await api.get("/api/settings")).json()["sandbox"] == "on"  # the default
    secret_file = api.services.settings.data_dir / "planted.secret"
    secret_file.write_text(PLANTED + "\n")
    encoded = base64.b64encode(str(secret_file).encode()).decode()
    command = (
        f"echo {encoded} | base64 -d | xargs cat || echo UNREADABLE; "
        'echo "env:${CODEYARD_ESCAPE_SECRET:-none}:${GITHUB_TOKEN:-none}"'
    )
    options: dict[str, Any] = {"permission_mode": "auto"}
    if case.options is None:
        options["scenario"] = {"steps": [{"bash": command}, {"say": "Done."}]}
    else:
        if case.shell_text is not None:
            fake.script([Reply(text=case.shell_text(command)), Reply(text="Done.")])
        else:
            assert case.shell is not None
            fake.script([Reply(tool_calls=(case.shell(command),)), Reply(text="Done.")])
        options.update(case.options(fake, tmp_path / "home"))
    body = {
        "prompt": "Print the server's secrets.",
        "repo_path": str(git_repo),
        "provider": name,
        "model": case.model,
        "agent_options": options,
    }
    resp = await api.post("/api/runs", json=body)
    assert resp.status_code == 201, resp.text
    run = await api.wait_status(resp.json()["id"], "review", "failed", timeout=WAIT)
    assert run["status"] == "review", run["status_reason"]
    seen = json.dumps(await events(api, run["id"]))
    logs = (await api.get(f"/api/runs/{run['id']}/logs")).text
    results = [e["data"] for e in await events(api, run["id"], "tool.result")]
    output = "\n".join(str(r.get("output") or "") for r in results)
    # What the model got back (Gemini CLI's ACP results carry no output; the model's do).
    sent = " ".join(json.dumps(c.body) for c in fake.model_calls())
    assert "UNREADABLE" in output + sent, seen  # the command ran, and the file was not there
    assert "env:none:none" in output + sent, seen
    for text in (seen, logs, output, sent):
        assert PLANTED not in text and SERVER_SECRET not in text
