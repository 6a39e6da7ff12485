"""The commit HEAD names in a work tree git has already found, read from the repository's files.

Why: ``POST /api/runs`` with a ``repo_path`` asked git (``git.work_tree_commit``, one process)
for the work tree's top and HEAD's commit at every run, before the run exists and its agent can
start. What git found about the place — this path is the top of a work tree whose repository is
a plain ``.git`` directory git accepts (owner, configuration) — stays true while that directory
and its configuration stay the same, so it is remembered (:func:`remember`); the commit is read
again at each request (:func:`head_commit`), as git reads it: HEAD names a branch (``ref:
refs/heads/main``) whose file holds the commit, or, once the branch is packed, its line in
``packed-refs`` (loose first, as git does), or HEAD holds a commit id itself (detached). A
commit made up to the request is seen: git writes a ref by renaming a complete file over it, so
a read finds the old commit or the new one, never a partial one, and never one from before the
last rename.

Anything else is git's to answer (None here): a path git has not found yet, or not at its top;
a ``.git`` file (a linked worktree, a submodule); a work tree or ``.git`` directory replaced
since or given another owner (inode, owner: a repository re-made at the path, an owner
``safe.directory`` would refuse); a configuration whose content changed (``core.worktree`` or
``core.bare`` set, a branch's upstream) or over :data:`CONFIG_LIMIT`; HEAD or the branch
holding anything but a full commit id or a branch name (a symbolic branch, a reftable
repository's ``refs/heads/.invalid``, an unborn branch); a ``packed-refs`` file over
:data:`PACKED_LIMIT`; a commit id whose object is not found here (:func:`_has_object`: its
loose file, or its name in a pack's index). The last keeps a corrupt repository (a branch
naming a commit that is not there) git's: ``POST /api/runs`` answers its 400 rather than
making a run that fails in preparation. Reading takes a few system calls on the event loop
(files the page cache holds), not a process and a thread trip.
"""

from __future__ import annotations

import mmap
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CONFIG_LIMIT", "PACKED_LIMIT", "forget", "head_commit", "remember"]

#: A ``packed-refs`` file larger than this is not scanned here (git looks lines up in it).
PACKED_LIMIT = 256 * 1024
#: A configuration larger than this is not compared here (git is asked every time).
CONFIG_LIMIT = 64 * 1024
_COMMIT_ID = re.compile(rb"[0-9a-f]{40}(?:[0-9a-f]{24})?")
_SYMREF = b"ref: refs/heads/"


@dataclass(frozen=True, slots=True)
class _Found:
    """A work tree's top as git found it, and what must stay the same for it to hold."""

    top: Path
    stamp: tuple[tuple[int, ...], bytes]


_found: dict[str, _Found] = {}


def _stamp(top: str) -> tuple[tuple[int, ...], bytes] | None:
    """The work tree's and the ``.git`` directory's identity and owner, and the configuration
    file's content; None when ``.git`` is no directory. The content, not the file's inode or
    time: ``git branch -d`` writes the file anew at each branch it deletes (a discarded run),
    most often with the same content."""
    try:
        tree = os.stat(top)
        gitdir = os.stat(os.path.join(top, ".git"), follow_symlinks=False)
    except OSError:
        return None
    config = _read(os.path.join(top, ".git", "config"))
    if not stat.S_ISDIR(gitdir.st_mode) or config is None or len(config) > CONFIG_LIMIT:
        return None  # .git is a file (worktree, submodule) or a link; no or a large config
    ids = (tree.st_dev, tree.st_ino, tree.st_uid, gitdir.st_dev, gitdir.st_ino, gitdir.st_uid)
    return ids, config


def remember(path: Path, top: Path) -> None:
    """Git found ``top`` as the work tree of ``path``: kept when ``path`` is that top and its
    repository a ``.git`` directory (see the module docstring)."""
    where = os.path.realpath(path)
    if where != os.path.realpath(top):
        return
    stamp = _stamp(where)
    if stamp is not None:
        _found[where] = _Found(top, stamp)


def forget(path: Path) -> None:
    """Ask git again next time (tests; a repository removed from Codeyard need not call it)."""
    _found.pop(os.path.realpath(path), None)


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read(PACKED_LIMIT + 1)
    except OSError:
        return None


def _packed(gitdir: str, ref: bytes) -> bytes | None:
    """``ref``'s commit id in ``packed-refs``, or None (absent, too large, not there)."""
    data = _read(os.path.join(gitdir, "packed-refs"))
    if data is None or len(data) > PACKED_LIMIT:
        return None
    for line in data.splitlines():
        sha, _, name = line.partition(b" ")
        if name == ref:
            return sha if _COMMIT_ID.fullmatch(sha) else None
    return None


#: A version 2 pack index starts so; then 256 counts (names up to each first byte), then names.
_IDX_V2 = b"\377tOc\0\0\0\2"
_IDX_NAMES = len(_IDX_V2) + 256 * 4


def _has_object(gitdir: str, sha: str) -> bool:
    """Whether the object ``sha`` is in the repository's own object store: its loose file
    (one ``stat``), or else its name in a pack's index next to its pack. False only says "not
    found here": git is asked, which also looks in alternates and says what is wrong."""
    objects = os.path.join(gitdir, "objects")
    if os.path.isfile(os.path.join(objects, sha[:2], sha[2:])):
        return True
    packs = os.path.join(objects, "pack")
    try:
        names = os.listdir(packs)
    except OSError:
        return False
    name = bytes.fromhex(sha)
    return any(
        n.startswith("pack-")
        and n.endswith(".idx")
        and _in_index(os.path.join(packs, n), name)
        and os.path.isfile(os.path.join(packs, n[: -len(".idx")] + ".pack"))
        for n in names
    )


def _in_index(path: str, name: bytes) -> bool:
    """Whether a version 2 pack index lists ``name`` (a binary search over its sorted names,
    within the range its first byte's counts give); False for another version or a short file."""
    size = len(name)
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as idx:
            if idx[: len(_IDX_V2)] != _IDX_V2:
                return False

            def count(byte: int) -> int:  # names whose first byte is at most ``byte``
                at = len(_IDX_V2) + 4 * byte
                return int.from_bytes(idx[at : at + 4], "big")

            lo, hi = count(name[0] - 1) if name[0] else 0, count(name[0])
            if len(idx) < _IDX_NAMES + count(255) * size or not lo <= hi <= count(255):
                return False
            while lo < hi:
                mid = (lo + hi) // 2
                at = _IDX_NAMES + mid * size
                here = idx[at : at + size]
                if here == name:
                    return True
                lo, hi = (mid + 1, hi) if here < name else (lo, mid)
            return False
    except (OSError, ValueError):  # gone since listed; empty (mmap refuses it)
        return False


def head_commit(path: Path) -> tuple[Path, str] | None:
    """The work tree's top and HEAD's commit for a ``path`` git found before (:func:`remember`),
    read from the files; None: ask git (see the module docstring)."""
    where = os.path.realpath(path)
    found = _found.get(where)
    if found is None or _stamp(where) != found.stamp:
        return None
    gitdir = os.path.join(where, ".git")
    head = _read(os.path.join(gitdir, "HEAD"))
    if head is None:
        return None
    head = head.rstrip(b"\n")
    if _COMMIT_ID.fullmatch(head):  # detached
        return (found.top, head.decode()) if _has_object(gitdir, head.decode()) else None
    if not head.startswith(_SYMREF):
        return None
    ref = head[len(b"ref: ") :]
    name = ref.decode(errors="replace")
    if ".." in name or name.endswith((".lock", "/")) or "\\" in name:
        return None  # not a name git would store: git says what it means
    loose = _read(os.path.join(gitdir, name))
    sha = loose.rstrip(b"\n") if loose is not None else _packed(gitdir, ref)
    if sha is None or not _COMMIT_ID.fullmatch(sha) or not _has_object(gitdir, sha.decode()):
        return None
    return found.top, sha.decode()
