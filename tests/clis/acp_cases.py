"""The ACP providers as the contract suite (``test_agent_contract.py``) drives them: one
:class:`~tests.clis.agent_cases.AgentCase` per CLI — its wire names, how it is pointed at the fake
model server, how it tells the model about a rejection, and its quirks. Adding an ACP provider is
adding a case here (Claude Code's and Codex's are in ``agent_cases.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from codeyard.agents.acp import (
    ClaudeAcpProvider,
    CodexAcpProvider,
    CopilotProvider,
    GeminiProvider,
    KiloProvider,
    OpenCodeProvider,
    QwenProvider,
)
from codeyard.testing.fake_llm import FakeLLM
from tests.clis.agent_cases import (
    AgentCase,
    anthropic_rejection,
    chat_rejection,
    claude_options,
    codex_options,
    gemini_rejection,
    responses_rejection,
)


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


def kilo_options(fake: FakeLLM, home: Path, **extra: Any) -> dict[str, Any]:
    """OpenCode's configuration (Kilo CLI is its fork), its ``KILO_*`` switches and folders."""
    options = opencode_options(fake, home, **extra)
    env = {k: v for k, v in options["env"].items() if not k.startswith("OPENCODE_")}
    for flag in ("MODELS_FETCH", "DEFAULT_PLUGINS", "LSP_DOWNLOAD", "AUTOUPDATE", "SHARE"):
        env[f"KILO_DISABLE_{flag}"] = "1"
    for flag in ("CLAUDE_CODE", "EXTERNAL_SKILLS", "SESSION_INGEST"):
        env[f"KILO_DISABLE_{flag}"] = "1"
    return {**options, "env": env}


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
    """Codex under Zed's adapter, pointed at the fake server like bare Codex, with Codex's own
    command sandbox off: Codeyard's bwrap contains the adapter and everything it runs (what
    these cases and the sandbox-escape test check). The adapter's Codex nests a second bwrap
    that fails now and then on a loaded machine ("bwrap: setting up uid map: Operation not
    permitted" as the first command's result; twice in two full-suite runs) — a Codex issue
    named in the session note, not Codeyard behaviour under test here."""
    options = codex_options(fake, home, **extra)
    options["config"] = {**options["config"], "sandbox_mode": "danger-full-access"}
    return options


#: Zed's Claude adapter starts the same CLI, pointed at the fake server the same way.
claude_acp_options = claude_options


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

KILO = AgentCase(
    name="kilo",
    provider=KiloProvider,
    cli_version="7.7.7",
    model="fake/fake-model",
    shell="bash",
    api="openai-chat",
    options=kilo_options,
    label="Kilo CLI",
    rejection_phrase="rejected permission",
    rejection_told=chat_rejection,
    rejection_ends_turn=True,
    error_body={"error": {"message": "Backend exploded XYZ", "type": "server_error", "code": 500}},
    error_headers={"retry-after-ms": "0"},
    error_replies=12,
    reports_exit_code=True,
    usage_of_last_call_only=True,
    streams_thinking=False,
    drops_interrupted_turn=False,
    turn_config_file="kilo.json",
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

CASES = [GEMINI, COPILOT, OPENCODE, QWEN, CODEX_ACP, CLAUDE_ACP, KILO]
