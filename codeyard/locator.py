"""Which Codeyard servers run on this machine, so the CLI talks to the one that is there.

``codeyard serve`` records itself (url, data dir, pid) in ``$XDG_CONFIG_HOME/codeyard/servers.json``
next to the CLI's credentials, and removes itself when it stops. A server started with
``--data-dir`` is then found by a CLI that was not given that data dir. Entries whose process is
gone are ignored and pruned. Nothing secret is stored: tokens stay in each data dir.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class ServerEntry:
    url: str
    data_dir: Path
    pid: int
    started_at: float


def registry_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or "~/.config"
    return Path(base).expanduser() / "codeyard" / "servers.json"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def _load(path: Path) -> list[ServerEntry]:
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    entries: list[ServerEntry] = []
    for item in raw if isinstance(raw, list) else []:
        try:
            entries.append(
                ServerEntry(
                    str(item["url"]),
                    Path(item["data_dir"]),
                    int(item["pid"]),
                    float(item["started_at"]),
                )
            )
        except (KeyError, TypeError, ValueError):
            continue
    return entries


def _save(path: Path, entries: list[ServerEntry]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    rows: list[dict[str, Any]] = [
        {"url": e.url, "data_dir": str(e.data_dir), "pid": e.pid, "started_at": e.started_at}
        for e in entries
    ]
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(rows, indent=2))
    tmp.replace(path)


def running() -> list[ServerEntry]:
    """Live servers, most recently started first."""
    entries = [e for e in _load(registry_path()) if pid_alive(e.pid)]
    return sorted(entries, key=lambda e: e.started_at, reverse=True)


def register(url: str, data_dir: Path) -> None:
    """Record this process as the server at ``url`` (and forget dead or replaced entries)."""
    path = registry_path()
    me = ServerEntry(url, data_dir.resolve(), os.getpid(), time.time())
    keep = [e for e in running() if e.pid != me.pid and e.data_dir != me.data_dir]
    # A read-only home only costs the CLI its guess; server.json still works.
    with contextlib.suppress(OSError):
        _save(path, [me, *keep])


def unregister() -> None:
    """Remove this process's entry (at shutdown)."""
    path = registry_path()
    with contextlib.suppress(OSError):
        _save(path, [e for e in running() if e.pid != os.getpid()])
