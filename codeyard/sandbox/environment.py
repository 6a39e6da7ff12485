"""The environment of a contained process: an allowlist, never the server's environment.

Why: the server's environment holds its own secrets (``CODEYARD_*``, ``GITHUB_TOKEN``, the
admin token) and anything an agent can read it can print into a run everyone may view. So a
process gets: a few neutral variables (``PATH``, ``HOME``, locale, terminal), the variables its
provider reads from the server's environment (its model endpoint and key), then what the run
set explicitly (env sets, ``agent_options.env``). Variables that change what a binary loads
(``LD_PRELOAD``, ``PYTHONPATH``, ``GIT_*``…) or where programs are found (``PATH``) are
refused from non-admins when the run or profile is created (:func:`refused`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

__all__ = ["INFO_VARIABLES", "NEVER", "build", "inherited_names", "refused"]

#: Neutral variables taken from the server's environment for every process.
_BASE = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "LANG",
        "LANGUAGE",
        "TERM",
        "COLORTERM",
        "NO_COLOR",
        "TZ",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "NODE_EXTRA_CA_CERTS",
    }
)
_BASE_PREFIXES = ("LC_",)
#: What each provider reads from the server's environment (its endpoint, key and knobs).
PROVIDER_PREFIXES: dict[str, tuple[str, ...]] = {
    "claude-code": ("ANTHROPIC_", "CLAUDE_", "DISABLE_", "MCP_"),
    "codex": ("OPENAI_", "CODEX_"),
    "gemini": ("GEMINI_", "GOOGLE_"),
    "copilot": ("COPILOT_",),
    "opencode": ("OPENCODE_", "ANTHROPIC_", "OPENAI_", "GEMINI_", "GOOGLE_"),
    "qwen": ("QWEN_", "OPENAI_", "DASHSCOPE_"),
    "kilo": ("KILO_", "ANTHROPIC_", "OPENAI_", "GEMINI_", "GOOGLE_"),
    "aider": ("AIDER_", "OPENAI_", "ANTHROPIC_", "GEMINI_", "OPENROUTER_", "LITELLM_"),
    "codex-acp": ("OPENAI_", "CODEX_"),
    "claude-acp": ("ANTHROPIC_", "CLAUDE_", "DISABLE_", "MCP_"),
    "acp": (),
    "script": (),
    "repo-script": (),
}
#: Never taken from the server's environment, whatever allows them: its variables, tokens.
NEVER = re.compile(r"^(CODEYARD_.*|(GH|GITHUB)(_ENTERPRISE)?_TOKEN)$")
#: Never passed even when set explicitly (a run's own ``GITHUB_TOKEN`` in an env set is its
#: owner's choice; Codeyard's variables are not).
_OWN = re.compile(r"^CODEYARD_")
#: Codeyard's own informational variables for repository scripts (not secrets; set explicitly).
INFO_VARIABLES = frozenset(
    {"CODEYARD_RUN_ID", "CODEYARD_WORKTREE", "CODEYARD_REPO_PATH", "CODEYARD_BRANCH"}
    # The run's leased ports (issue 18, ``codeyard.preview.leases``).
    | {"CODEYARD_RUN_NUMBER", *(f"CODEYARD_PORT_{i}" for i in range(10))}
)
#: Explicit variables only an admin may set: they change what gets loaded or executed.
_REFUSED = frozenset(
    {
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "LD_AUDIT",
        "PYTHONPATH",
        "PYTHONSTARTUP",
        "PYTHONHOME",
        "NODE_OPTIONS",
        "NODE_PATH",
        "PATH",
        "BASH_ENV",
        "ENV",
        "PERL5OPT",
        "RUBYOPT",
    }
)
_REFUSED_PREFIXES = ("GIT_", "LD_", "DYLD_")


def _inherited(name: str, provider: str) -> bool:
    if NEVER.match(name):
        return False
    if name in _BASE or name.startswith(_BASE_PREFIXES):
        return True
    return name.startswith(PROVIDER_PREFIXES.get(provider, ()))


def inherited_names(provider: str, server: Mapping[str, str] | None = None) -> list[str]:
    """The names of the server's variables a process of ``provider`` keeps."""
    env = os.environ if server is None else server
    return [name for name in env if _inherited(name, provider)]


def build(
    provider: str,
    explicit: Mapping[str, str] | None = None,
    server: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The allowlisted server variables for ``provider``, then ``explicit`` over them.

    ``explicit`` is what Codeyard and the run set (provider needs, env sets,
    ``agent_options.env``); Codeyard's own variables are dropped even from there, except
    the informational ``CODEYARD_RUN_ID``-style ones repository scripts get.
    """
    env = os.environ if server is None else server
    result = {k: v for k, v in env.items() if _inherited(k, provider)}
    for key, value in (explicit or {}).items():
        if _OWN.match(key) and key not in INFO_VARIABLES:
            continue
        result[str(key)] = str(value)
    return result


def refused(names: Iterable[str]) -> list[str]:
    """The names among ``names`` a non-admin may not set (sorted), for a 403 naming them."""
    return sorted(
        {n for n in names if n in _REFUSED or n.upper().startswith(_REFUSED_PREFIXES)}
        | {n for n in names if _OWN.match(n)}
    )
