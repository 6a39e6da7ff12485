"""Which parts of a home directory a contained process may not see, and which it may write.

Why a list per provider: each agent CLI keeps state it must write (Claude Code's session store,
``CODEX_HOME``, npm's cache), and it may need its own login, but never another CLI's
credentials or the server's (``~/.ssh``, ``~/.config/gh``…). The server's home is otherwise
read-only inside the sandbox.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path

__all__ = ["SECRET_ENTRIES", "STATE_ENTRIES", "secret_paths", "state_paths"]

#: Credentials in a home, relative to it: hidden from every contained process.
SECRET_ENTRIES = (
    ".ssh",
    ".gnupg",
    ".aws",
    ".azure",
    ".kube",
    ".docker",
    ".netrc",
    ".git-credentials",
    ".pypirc",
    ".npmrc",
    ".config/gh",
    ".config/hub",
    ".config/gcloud",
    ".config/git/credentials",
    ".codeyard",
)
#: What each provider's CLI writes (relative to the home), or the variable naming it instead.
#: Another provider's entries count as secrets: they hold that CLI's login.
STATE_ENTRIES: dict[str, tuple[tuple[str | None, str], ...]] = {
    "claude-code": (("CLAUDE_CONFIG_DIR", ".claude"), (None, ".claude.json")),
    "codex": (("CODEX_HOME", ".codex"),),
    "gemini": (("GEMINI_CLI_HOME", ".gemini"), (None, ".npm")),
    "copilot": ((None, ".copilot"), (None, ".config/github-copilot"), (None, ".npm")),
    "opencode": (
        (None, ".local/share/opencode"),
        (None, ".config/opencode"),
        (None, ".cache/opencode"),
        (None, ".local/state/opencode"),
        (None, ".npm"),
    ),
    "qwen": (("QWEN_HOME", ".qwen"), (None, ".npm")),
    "kilo": (
        (None, ".local/share/kilo"),
        (None, ".config/kilo"),
        (None, ".cache/kilo"),
        (None, ".local/state/kilo"),
        (None, ".local/state/kilo-sandbox-policy"),
        (None, ".npm"),
    ),
    "aider": ((None, ".aider"),),
    "codex-acp": (("CODEX_HOME", ".codex"),),
    "claude-acp": (("CLAUDE_CONFIG_DIR", ".claude"), (None, ".claude.json")),
}


def _entry(home: Path, env: Mapping[str, str], variable: str | None, rel: str) -> Path:
    named = env.get(variable) if variable else None
    return Path(named).expanduser() if named else home / rel


def state_paths(provider: str, home: Path, env: Mapping[str, str]) -> list[Path]:
    """Where ``provider`` writes its state, given its home and environment."""
    return [_entry(home, env, var, rel) for var, rel in STATE_ENTRIES.get(provider, ())]


def secret_paths(provider: str, home: Path) -> list[Path]:
    """Entries of ``home`` hidden from ``provider``: credentials and every other CLI's state."""
    return list(_secret_paths(provider, home))


@functools.lru_cache(maxsize=64)
def _secret_paths(provider: str, home: Path) -> tuple[Path, ...]:
    """Fixed per server (the list and its home): built once, not at every spawn."""
    own = {home / rel for var, rel in STATE_ENTRIES.get(provider, ())}
    others = [
        home / rel
        for name, entries in STATE_ENTRIES.items()
        if name != provider
        for _, rel in entries
    ]
    paths = [home / rel for rel in SECRET_ENTRIES] + others
    return tuple(dict.fromkeys(p for p in paths if p not in own))
