"""How much disk a directory tree takes, measured the way ``du`` does, without following links.

Worktrees hold dependencies and build output, so sizes run to gigabytes: the walk is an
``os.scandir`` loop on ``stat`` results only, and callers run it in a thread.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["tree_size"]


def _allocated(st: os.stat_result) -> int:
    """Bytes the entry occupies on disk (blocks), falling back to its length."""
    blocks = getattr(st, "st_blocks", None)
    return int(blocks) * 512 if blocks is not None else st.st_size


def tree_size(path: Path) -> int:
    """Bytes used by ``path`` and everything below it; 0 when it does not exist.

    Symlinks count as themselves (their targets are not followed), hard links count once and
    entries that vanish or cannot be read during the walk are skipped.
    """
    try:
        top = os.lstat(path)
    except OSError:
        return 0
    total = _allocated(top)
    if not os.path.isdir(path) or os.path.islink(path):
        return total
    seen: set[tuple[int, int]] = set()
    stack = [os.fspath(path)]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as it:
                entries = list(it)
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if st.st_nlink > 1 and not entry.is_dir(follow_symlinks=False):
                key = (st.st_dev, st.st_ino)
                if key in seen:
                    continue
                seen.add(key)
            total += _allocated(st)
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
    return total
