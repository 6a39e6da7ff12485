"""The git metadata a worktree needs writable, read from its ``.git`` file (no git process).

A linked worktree's ``.git`` file names its private directory (``<common>/worktrees/<id>``:
HEAD, index); commits also write objects, the branch ref and its reflog in the repository's
common directory. Those are made writable; the rest of the common directory (``config``,
``hooks``) stays read-only, since a hook or an alias written there would run later outside the
sandbox, in the operator's own git commands. The main checkout's files are hidden.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["GitDirs", "git_dirs"]


@dataclass(slots=True)
class GitDirs:
    """``hidden`` first (the main checkout), then ``readable`` and ``writable`` over it."""

    hidden: list[Path] = field(default_factory=list)
    readable: list[Path] = field(default_factory=list)
    writable: list[Path] = field(default_factory=list)


def _gitdir_of(worktree: Path) -> Path | None:
    dot_git = worktree / ".git"
    if dot_git.is_dir():
        return dot_git
    try:
        text = dot_git.read_text().strip()
    except OSError:
        return None
    if not text.startswith("gitdir:"):
        return None
    path = Path(text.split(":", 1)[1].strip())
    return (path if path.is_absolute() else worktree / path).resolve()


def git_dirs(worktree: Path) -> GitDirs:
    """What the sandbox mounts so that git works in ``worktree`` (empty when it is no repo)."""
    dirs = GitDirs()
    gitdir = _gitdir_of(worktree)
    if gitdir is None:
        return dirs
    common = gitdir
    with contextlib.suppress(OSError):  # no commondir: a main checkout's own .git
        common = (gitdir / (gitdir / "commondir").read_text().strip()).resolve()
    if common != gitdir:
        dirs.writable.append(gitdir)
        if common.name == ".git" and common.parent != worktree:
            dirs.hidden.append(common.parent)  # the main checkout's files
        dirs.readable.append(common)
    for name in ("objects", "refs", "logs"):
        sub = common / name
        sub.mkdir(exist_ok=True)  # ``logs`` may not exist yet; a mount needs a source
        dirs.writable.append(sub)
    if common == gitdir:
        dirs.writable = [common]
    return dirs
