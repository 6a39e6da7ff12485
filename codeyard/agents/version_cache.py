"""Agent CLI versions remembered across server starts.

Asking a Node CLI for ``--version`` starts Node and loads the whole CLI: 0.5 to 1 s of CPU each
(Qwen Code, Gemini CLI, Aider's venv), one after another when ``GET /api/providers`` describes
every provider, so the first listing after each start waited seconds. A version found is kept
in ``$XDG_CACHE_HOME/codeyard/cli-versions.json`` (``~/.cache`` by default; the folder can be
set with ``CODEYARD_CACHE_DIR``) under what it was read from: the program's real path with its
size and modification time. Upgrading or replacing the program changes that key, so the next
listing asks again. Failures are never kept: a fix (``make clis``) shows at the next listing.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["cache_file", "remembered"]

log = logging.getLogger(__name__)

Probe = Callable[[], tuple[str | None, str | None]]


def cache_file() -> Path:
    """``$CODEYARD_CACHE_DIR/cli-versions.json``, else under ``$XDG_CACHE_HOME/codeyard``."""
    folder = os.environ.get("CODEYARD_CACHE_DIR")
    if not folder:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        folder = str(Path(base) / "codeyard")
    return Path(folder) / "cli-versions.json"


def _key(kind: str, program: Path) -> str | None:
    """``kind``, the program's real path, its size and mtime; None if it cannot be read."""
    try:
        real = program.resolve()
        stat = real.stat()
    except OSError:
        return None
    return f"{kind}:{real}:{stat.st_size}:{stat.st_mtime_ns}"


def _load(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}


def _store(path: Path, key: str, version: str) -> None:
    """Add one entry; written to a temporary file and renamed (a reader never sees half)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = _load(path)
        data[key] = version
        fd, tmp = tempfile.mkstemp(prefix=".cli-versions-", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=0, sort_keys=True)
        os.replace(tmp, path)
    except OSError as exc:  # a read-only home: the next start asks again
        log.info("could not remember a CLI version in %s: %s", path, exc)


def remembered(kind: str, program: Path, probe: Probe) -> tuple[str | None, str | None]:
    """``probe()``'s ``(version, None)`` for ``program`` as last found, else asked now and
    kept; ``(None, why)`` is returned as it is and not kept. ``kind`` tells apart probes of one
    program that answer different things (a venv's Python asked for Aider's version)."""
    key = _key(kind, program)
    if key is None:
        return probe()
    path = cache_file()
    known = _load(path).get(key)
    if known is not None:
        return known, None
    version, why = probe()
    if why is None and version is not None:
        _store(path, key, version)
    return version, why
