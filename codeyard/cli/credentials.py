"""Tokens stored by ``codeyard login``, one per server URL, in a private file.

``$XDG_CONFIG_HOME/codeyard/credentials.json`` (default ``~/.config/codeyard``), mode 0600 in a
0700 directory. The CLI uses the stored token for a server unless ``--token`` is given.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def credentials_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or "~/.config"
    return Path(base).expanduser() / "codeyard" / "credentials.json"


def _load(path: Path) -> dict[str, str]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}


def stored_token(url: str) -> str | None:
    return _load(credentials_path()).get(url.rstrip("/"))


def _write(path: Path, tokens: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(tokens, fh, indent=2)
    tmp.replace(path)


def store_token(url: str, token: str) -> Path:
    """Remember ``token`` for ``url``; returns the file it is in."""
    path = credentials_path()
    tokens = _load(path)
    tokens[url.rstrip("/")] = token
    _write(path, tokens)
    return path


def forget_token(url: str) -> bool:
    path = credentials_path()
    tokens = _load(path)
    if tokens.pop(url.rstrip("/"), None) is None:
        return False
    _write(path, tokens)
    return True
