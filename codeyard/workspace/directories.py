"""Listing directories of the server's machine, to pick a repository (``/api/settings/browse``).

Only directories are listed, never file contents; each says whether it is a git work tree.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from codeyard.domain.errors import BadRequest, NotFound

__all__ = ["MAX_DIRECTORIES", "list_directories"]

MAX_DIRECTORIES = 2000


def _is_git_repo(path: Path) -> bool:
    try:
        return (path / ".git").exists()
    except OSError:
        return False


def list_directories(user_path: str | None, show_hidden: bool = False) -> dict[str, Any]:
    """``{path, parent, entries:[{name, path, is_git_repo}], truncated}`` for a directory.

    ``user_path`` must be absolute (``~`` expands); it defaults to the home directory.
    """
    if user_path is not None and "\0" in user_path:
        raise BadRequest("The path contains a NUL byte.", path=user_path)
    raw = Path(user_path or "~").expanduser()
    if not raw.is_absolute():
        raise BadRequest(
            f"Path '{user_path}' is relative; give an absolute path (or ~ for the home directory).",
            path=user_path,
        )
    where = Path(os.path.realpath(raw))
    try:
        if not where.exists():
            raise NotFound(f"There is no directory '{raw}' on the server.", path=str(raw))
        if not where.is_dir():
            raise BadRequest(
                f"'{raw}' is a file, not a directory; browse its parent '{where.parent}'.",
                path=str(raw),
            )
        entries: list[dict[str, Any]] = []
        truncated = False
        with os.scandir(where) as it:
            for entry in sorted(it, key=lambda e: e.name):
                if entry.name.startswith(".") and not show_hidden:
                    continue
                try:
                    if not entry.is_dir():  # follows symlinks: a link to a directory counts
                        continue
                except OSError:
                    continue
                if len(entries) >= MAX_DIRECTORIES:
                    truncated = True
                    break
                path = where / entry.name
                entries.append(
                    {"name": entry.name, "path": str(path), "is_git_repo": _is_git_repo(path)}
                )
    except PermissionError:
        raise BadRequest(
            f"The server may not read '{raw}' (permission denied); pick another directory.",
            path=str(raw),
        ) from None
    except OSError as exc:
        raise BadRequest(f"'{raw}' cannot be listed: {exc.strerror}.", path=str(raw)) from None
    parent = str(where.parent) if where.parent != where else None
    return {
        "path": str(where),
        "parent": parent,
        "is_git_repo": _is_git_repo(where),
        "entries": entries,
        "truncated": truncated,
    }
