"""The exact ``agent_options`` that point each agent CLI at a running fake model server.

``codeyard fake-llm`` prints these, the README shows them, and a test runs every provider with
them as printed, so the offline recipe for each CLI is one tested source. ``prepare`` makes the
private state directories the CLIs need (Codex refuses a ``CODEX_HOME`` that does not exist), so
nothing of the user's own CLI configuration or login is read or changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["RECIPES", "Recipe", "options_for", "prepare"]


@dataclass(frozen=True, slots=True)
class Recipe:
    provider: str
    #: A model name the CLI accepts with this set-up (``--model`` / ``model``).
    model: str
    #: The CLI's shell tool and its command argument, for writing reply scripts.
    shell_tool: str
    shell_arg: str
    #: Which API of the fake server the CLI calls.
    api: str


RECIPES: tuple[Recipe, ...] = (
    Recipe("claude-code", "claude-sonnet-4-5", "Bash", "command", "Anthropic Messages"),
    Recipe("codex", "gpt-5-codex", "exec_command", "cmd", "OpenAI Responses"),
    Recipe("gemini", "gemini-2.5-pro", "run_shell_command", "command", "Gemini generateContent"),
    Recipe("copilot", "gpt-4.1", "bash", "command", "OpenAI Chat Completions"),
    Recipe("opencode", "fake/fake-model", "bash", "command", "OpenAI Chat Completions"),
    Recipe("qwen", "qwen3-coder-plus", "run_shell_command", "command", "OpenAI Chat Completions"),
    Recipe("codex-acp", "gpt-5.4", "exec_command", "cmd", "OpenAI Responses"),
    Recipe("claude-acp", "claude-sonnet-4-5", "Bash", "command", "Anthropic Messages"),
    Recipe("kilo", "fake/fake-model", "bash", "command", "OpenAI Chat Completions"),
    # Aider has no tool calls: its model writes edit blocks and fenced ```bash blocks.
    Recipe("aider", "openai/gpt-4.1", "", "", "OpenAI Chat Completions"),
)

_OPENCODE_OFF = (
    "MODELS_FETCH",
    "DEFAULT_PLUGINS",
    "LSP_DOWNLOAD",
    "AUTOUPDATE",
    "SHARE",
    "CLAUDE_CODE",
    "EXTERNAL_SKILLS",
)


def prepare(home: Path) -> Path:
    """Create the per-CLI state directories under ``home``; returns ``home`` resolved."""
    home = home.expanduser().resolve()
    for sub in (
        *("claude", "codex", "gemini", "copilot", "opencode", "qwen", "codex-acp"),
        *("kilo", "aider"),
    ):
        (home / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
    return home


def _codex_config(url: str) -> dict[str, Any]:
    # OPENAI_BASE_URL alone left Codex reconnecting to the network (issue 14): it takes a
    # model provider of its own, selected by name, with the key read from `env_key`.
    return {
        "model_provider": "fake",
        "model_providers.fake": {
            "name": "Fake",
            "base_url": f"{url}/v1",
            "env_key": "FAKE_API_KEY",
            "wire_api": "responses",
            "request_max_retries": 0,
            "stream_max_retries": 0,
        },
    }


def options_for(provider: str, url: str, home: Path) -> dict[str, Any]:
    """``agent_options`` for ``provider`` against the fake server at ``url``.

    Every CLI keeps its state under ``home/<provider>`` (``HOME`` or the CLI's own variable),
    and retries are off, so a script's HTTP error fails the turn at once.
    """
    url = url.rstrip("/")
    if provider in ("claude-code", "claude-acp"):
        return {
            "env": {
                "ANTHROPIC_BASE_URL": url,
                "ANTHROPIC_API_KEY": "fake",
                "HOME": str(home / "claude"),
                "CLAUDE_CODE_MAX_RETRIES": "0",
                "DISABLE_AUTOUPDATER": "1",
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            }
        }
    if provider == "codex":
        return {
            "env": {"CODEX_HOME": str(home / "codex"), "FAKE_API_KEY": "fake"},
            "config": _codex_config(url),
        }
    if provider == "codex-acp":
        # Codex's own home, apart from the app-server's: the two keep different session files.
        return {
            "env": {"CODEX_HOME": str(home / "codex-acp"), "FAKE_API_KEY": "fake"},
            "config": _codex_config(url),
        }
    if provider == "qwen":
        # Qwen Code retries a server error seven times with back-off; nothing turns it off.
        return {
            "env": {
                "OPENAI_BASE_URL": f"{url}/v1",
                "OPENAI_API_KEY": "fake",
                "HOME": str(home / "qwen"),
            }
        }
    if provider == "aider":
        # LiteLLM's OpenAI provider, pointed at the fake server (its names: ``openai/<model>``).
        return {
            "env": {
                "OPENAI_API_BASE": f"{url}/v1",
                "OPENAI_API_KEY": "fake",
                "HOME": str(home / "aider"),
            }
        }
    if provider == "gemini":
        return {
            "env": {
                "GOOGLE_GEMINI_BASE_URL": url,
                "GEMINI_API_KEY": "fake",
                "HOME": str(home / "gemini"),
            }
        }
    if provider == "copilot":
        return {
            "env": {
                "COPILOT_PROVIDER_BASE_URL": f"{url}/v1",
                "COPILOT_PROVIDER_API_KEY": "fake",
                "COPILOT_OFFLINE": "true",
                "COPILOT_HOME": str(home / "copilot"),
                "HOME": str(home / "copilot"),
            }
        }
    if provider in ("opencode", "kilo"):
        # Kilo CLI is OpenCode's fork: the same configuration, its own KILO_DISABLE_* switches.
        base = home / provider
        prefix = "OPENCODE" if provider == "opencode" else "KILO"
        env = {"HOME": str(base), **{f"{prefix}_DISABLE_{f}": "1" for f in _OPENCODE_OFF}}
        for name, sub in (
            ("XDG_CONFIG_HOME", ".config"),
            ("XDG_DATA_HOME", ".local/share"),
            ("XDG_CACHE_HOME", ".cache"),
            ("XDG_STATE_HOME", ".local/state"),
        ):
            env[name] = str(base / sub)
        config = {
            "provider": {
                "fake": {
                    "npm": "@ai-sdk/openai-compatible",
                    "name": "Fake local",
                    "options": {"baseURL": f"{url}/v1", "apiKey": "fake"},
                    "models": {"fake-model": {"name": "Fake model"}},
                }
            },
            "autoupdate": False,
            "share": "disabled",
        }
        return {"env": env, "config": config}
    raise ValueError(f"no fake-llm recipe for provider {provider!r}")
