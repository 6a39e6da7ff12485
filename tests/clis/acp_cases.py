"""The ACP providers as the contract suite (``test_acp_contract.py``) drives them: one
:class:`AgentCase` per CLI — its wire names, how it is pointed at the fake model server, how it
tells the model about a rejection, and its quirks. Adding an ACP provider is adding a case.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codeyard.agents.acp import (
    ClaudeAcpProvider,
    CodexAcpProvider,
    CopilotProvider,
    GeminiProvider,
    OpenCodeProvider,
    QwenProvider,
)
from codeyard.agents.base import Provider
from codeyard.testing.fake_llm import FakeLLM, ToolCall


def gemini_options(fake: FakeLLM, home: Path, **extra: Any) -> dict[str, Any]:
    settings = {
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "privacy": {"usageStatisticsEnabled": False},
        "telemetry": {"enabled": False},
        "general": {"maxAttempts": 1},  # a model error fails at once, without backoff
    }
    (home / ".gemini").mkdir(parents=True, exist_ok=True)
    (home / ".gemini" / "settings.json").write_text(json.dumps(settings))
    env = {"GEMINI_API_KEY": "dummy", "GOOGLE_GEMINI_BASE_URL": fake.url, "HOME": str(home)}
    return {"env": env, **extra}


def copilot_options(fake: FakeLLM, home: Path, **extra: Any) -> dict[str, Any]:
    env = {
        "COPILOT_PROVIDER_BASE_URL": f"{fake.url}/v1",
        "COPILOT_PROVIDER_API_KEY": "dummy",
        "COPILOT_OFFLINE": "true",  # no GitHub login, telemetry or update checks
        "COPILOT_HOME": str(home / ".copilot"),
        "HOME": str(home),
    }
    return {"env": env, **extra}


def opencode_options(fake: FakeLLM, home: Path, **extra: Any) -> dict[str, Any]:
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
    # Offline and lean: no models.dev fetch, plugin installs, LSP downloads, update checks,
    # nor skills looked for in other tools' folders.
    for flag in (
        "MODELS_FETCH",
        "DEFAULT_PLUGINS",
        "LSP_DOWNLOAD",
        "AUTOUPDATE",
        "SHARE",
        "CLAUDE_CODE",
        "EXTERNAL_SKILLS",
    ):
        env[f"OPENCODE_DISABLE_{flag}"] = "1"
    for name, sub in (
        ("XDG_CONFIG_HOME", ".config"),
        ("XDG_DATA_HOME", ".local/share"),
        ("XDG_CACHE_HOME", ".cache"),
        ("XDG_STATE_HOME", ".local/state"),
    ):
        env[name] = str(home / sub)
    return {"env": env, "config": config, **extra}


def qwen_options(fake: FakeLLM, home: Path, **extra: Any) -> dict[str, Any]:
    settings = {
        "privacy": {"usageStatisticsEnabled": False},
        "telemetry": {"enabled": False},
        "general": {"disableAutoUpdate": True},
    }
    (home / ".qwen").mkdir(parents=True, exist_ok=True)
    (home / ".qwen" / "settings.json").write_text(json.dumps(settings))
    env = {"OPENAI_API_KEY": "dummy", "OPENAI_BASE_URL": f"{fake.url}/v1", "HOME": str(home)}
    return {"env": env, **extra}


def codex_acp_options(fake: FakeLLM, home: Path, **extra: Any) -> dict[str, Any]:
    """Codex's own configuration (as the ``codex`` tests give it), through ``config``."""
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
    return {"env": env, "config": config, **extra}


def claude_acp_options(fake: FakeLLM, home: Path, **extra: Any) -> dict[str, Any]:
    """As the ``claude-code`` tests point Claude Code at the fake server."""
    env = {
        "ANTHROPIC_BASE_URL": fake.url,
        "ANTHROPIC_API_KEY": "test",
        "HOME": str(home),  # sessions and settings stay in the test's directory
        "CLAUDE_CODE_MAX_RETRIES": "0",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    return {"env": env, **extra}


def anthropic_rejection(fake: FakeLLM) -> str:
    """The last ``tool_result`` Claude Code sent in model call 2 (Messages API)."""
    body = fake.model_calls("anthropic")[2].body
    blocks = [
        b
        for m in body["messages"]
        if isinstance(m.get("content"), list)
        for b in m["content"]
        if b.get("type") == "tool_result"
    ]
    content = blocks[-1]["content"]
    return content if isinstance(content, str) else json.dumps(content)


def gemini_rejection(fake: FakeLLM) -> str:
    """The error of the last ``functionResponse`` Gemini CLI sent in model call 2."""
    body = fake.model_calls("gemini")[2].body
    parts = [p for c in body["contents"] for p in c.get("parts", [])]
    told = [p["functionResponse"] for p in parts if "functionResponse" in p][-1]
    assert told["name"] == "run_shell_command"
    return str(told["response"]["error"])


def responses_rejection(fake: FakeLLM) -> str:
    """The output of the last ``function_call_output`` in model call 2 (Responses API)."""
    body = fake.model_calls("openai-responses")[2].body
    outputs = [i for i in body["input"] if i.get("type") == "function_call_output"]
    return str(outputs[-1]["output"])


def chat_rejection(fake: FakeLLM) -> str:
    """What the CLI told the model about the last tool result in model call 2 (chat API)."""
    body = fake.model_calls("openai-chat")[2].body
    return [str(m.get("content")) for m in body["messages"] if m.get("role") == "tool"][-1]


@dataclass(frozen=True)
class AgentCase:
    """One ACP provider as the contract suite drives it."""

    #: The wire name (``provider`` of a run, of ``agent.session``).
    name: str
    provider: Callable[[], Provider]
    cli_version: str
    model: str
    #: The CLI's shell tool, as the model calls it.
    shell: str
    #: The fake server's API the CLI speaks (``gemini``, ``openai-chat``).
    api: str
    options: Callable[..., dict[str, Any]]
    #: How the turn's failure is worded (``<label> failed the turn``).
    label: str
    #: What the model is told about a rejected call, and how to read it from the fake server.
    rejection_phrase: str
    rejection_told: Callable[[FakeLLM], str]
    #: The CLI ends the turn at a rejection: the model learns of it with the next message.
    rejection_ends_turn: bool
    #: The failing model reply's body and headers (retries, if any, at once).
    error_body: dict[str, Any]
    error_headers: dict[str, str] | None
    #: How many failing replies to script (enough for the CLI's own retries).
    error_replies: int
    #: Reports the exit code and output of a shell call in its ``tool.result``.
    reports_exit_code: bool
    #: Its ACP usage counts only the turn's last model call (OpenCode, research §7.3).
    usage_of_last_call_only: bool
    #: Streams thinking and text the fake server sends (checked event by event).
    streams_thinking: bool
    #: Drops an interrupted turn from its session (Gemini CLI): the resumed turn repeats it.
    drops_interrupted_turn: bool
    #: Writes its configuration for the turn (OpenCode's ``opencode.json``), never in the tree.
    turn_config_file: str | None = None
    #: A HOME kept for the module (OpenCode's first start in a fresh one is slow).
    shared_home: bool = False
    #: The failing reply's HTTP status: a client error where the CLI's own retries of server
    #: errors cannot be shortened (Qwen Code backs off seven times from 1.5 s).
    error_status: int = 500
    #: A loaded session always holds the agent's own earlier replies. Qwen Code 0.15.10 in ACP
    #: mode may not: its session file sometimes lacks a reply when the turn's process is
    #: stopped right after the answer (observed both ways), so only the prompts are certain.
    session_keeps_replies: bool = True
    #: Reports the tokens a turn spent (its capabilities say ``usage``).
    reports_usage: bool = True
    #: The shell tool's argument holding the command (Codex: ``cmd``).
    shell_arg: str = "command"

    def call(self, command: str) -> ToolCall:
        if self.shell_arg != "command":
            return ToolCall(self.shell, {self.shell_arg: command})
        return ToolCall(self.shell, {"command": command, "description": "Run it"})


GEMINI = AgentCase(
    name="gemini",
    provider=GeminiProvider,
    cli_version="0.61.0",
    model="gemini-2.5-pro",  # a fixed model: no router side calls
    shell="run_shell_command",
    api="gemini",
    options=gemini_options,
    label="Gemini CLI",
    rejection_phrase="canceled by the user",
    rejection_told=gemini_rejection,
    rejection_ends_turn=False,
    error_body={"error": {"code": 500, "message": "Backend exploded XYZ", "status": "INTERNAL"}},
    error_headers=None,
    error_replies=3,
    reports_exit_code=False,
    usage_of_last_call_only=False,
    streams_thinking=True,
    drops_interrupted_turn=True,
)
COPILOT = AgentCase(
    name="copilot",
    provider=CopilotProvider,
    cli_version="1.0.102",
    model="gpt-4.1",
    shell="bash",
    api="openai-chat",
    options=copilot_options,
    label="Copilot CLI",
    rejection_phrase="rejected this tool call",
    rejection_told=chat_rejection,
    rejection_ends_turn=True,
    error_body={"error": {"message": "Backend exploded XYZ", "type": "server_error", "code": 500}},
    error_headers={"retry-after-ms": "0", "retry-after": "0"},
    error_replies=12,
    reports_exit_code=True,
    usage_of_last_call_only=False,
    streams_thinking=False,
    drops_interrupted_turn=False,
)
OPENCODE = AgentCase(
    name="opencode",
    provider=OpenCodeProvider,
    cli_version="1.18.33",
    model="fake/fake-model",
    shell="bash",
    api="openai-chat",
    options=opencode_options,
    label="OpenCode",
    rejection_phrase="rejected permission",
    rejection_told=chat_rejection,
    rejection_ends_turn=True,
    error_body={"error": {"message": "Backend exploded XYZ", "type": "server_error", "code": 500}},
    error_headers={"retry-after-ms": "0"},  # OpenCode retries server errors: at once
    error_replies=12,
    reports_exit_code=True,
    usage_of_last_call_only=True,
    streams_thinking=False,
    drops_interrupted_turn=False,
    turn_config_file="opencode.json",
    shared_home=True,
)

QWEN = AgentCase(
    name="qwen",
    provider=QwenProvider,
    cli_version="0.15.10",
    model="qwen3-coder-plus",
    shell="run_shell_command",
    api="openai-chat",
    options=qwen_options,
    label="Qwen Code",
    rejection_phrase="canceled by the user",
    rejection_told=chat_rejection,
    rejection_ends_turn=False,
    error_body={"error": {"message": "Backend exploded XYZ", "type": "server_error", "code": 500}},
    error_headers={"retry-after-ms": "0", "retry-after": "0"},
    error_replies=12,
    reports_exit_code=False,
    usage_of_last_call_only=False,
    streams_thinking=True,
    drops_interrupted_turn=True,
    error_status=400,
    session_keeps_replies=False,
)

CODEX_ACP = AgentCase(
    name="codex-acp",
    provider=CodexAcpProvider,
    cli_version="0.16.0",
    model="gpt-5.4",  # a model Codex has metadata for (else it warns in the reply)
    shell="exec_command",
    shell_arg="cmd",
    api="openai-responses",
    options=codex_acp_options,
    label="Codex (ACP)",
    # The adapter offers approve or abort (no decline): a rejection aborts the turn, and the
    # model learns only that the user aborted the call, not Codeyard's reason.
    rejection_phrase="aborted by user",
    rejection_told=responses_rejection,
    rejection_ends_turn=True,
    error_body={"error": {"message": "Backend exploded XYZ", "type": "server_error", "code": 500}},
    error_headers=None,
    error_replies=1,
    reports_exit_code=True,
    usage_of_last_call_only=False,
    streams_thinking=True,
    drops_interrupted_turn=False,
    reports_usage=False,
    error_status=400,  # Codex words every 5xx as "high demand", dropping the API's message
)

CLAUDE_ACP = AgentCase(
    name="claude-acp",
    provider=ClaudeAcpProvider,
    cli_version="0.23.1",
    model="claude-sonnet-4-5",
    shell="Bash",
    api="anthropic",
    options=claude_acp_options,
    label="Claude Code (ACP)",
    rejection_phrase="User refused permission",
    rejection_told=anthropic_rejection,
    rejection_ends_turn=False,
    error_body={"type": "error", "error": {"type": "api_error", "message": "Backend exploded XYZ"}},
    error_headers=None,
    error_replies=1,
    reports_exit_code=False,
    usage_of_last_call_only=False,
    streams_thinking=True,
    drops_interrupted_turn=False,
)

CASES = [GEMINI, COPILOT, OPENCODE, QWEN, CODEX_ACP, CLAUDE_ACP]
