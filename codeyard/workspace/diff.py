"""Diffs of a worktree's full state against a commit, and between any two commits or trees.

The worktree state (committed, staged, unstaged and untracked files, ``.gitignore`` respected) is
written to a tree through a throw-away index (``GIT_INDEX_FILE``), so the run branch, HEAD and
the worktree's own index are never touched. Trees are then compared with plumbing
``git diff-tree``, which ignores porcelain settings (``diff.noprefix``, external diff tools,
colour, textconv) that would change the output this parser and the UI rely on.
"""

from __future__ import annotations

import asyncio
import posixpath
import re
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NotRequired, TypedDict, overload

from codeyard.workspace.git import git

__all__ = [
    "DiffFile",
    "DiffHunk",
    "DiffLine",
    "diff_between",
    "diff_files",
    "diff_stats",
    "snapshot_index",
    "snapshot_tree",
    "unified_diff",
]

DiffStatus = Literal["added", "modified", "deleted", "renamed", "copied", "type_changed"]
DiffFormat = Literal["text", "json", "stats"]


class DiffLine(TypedDict):
    """One line of a hunk; ``old_line``/``new_line`` are 1-based and present where they apply."""

    type: Literal["context", "add", "del"]
    text: str
    old_line: NotRequired[int]
    new_line: NotRequired[int]
    no_newline: NotRequired[bool]  # git's "\ No newline at end of file" follows this line


class DiffHunk(TypedDict):
    """``header`` is the whole ``@@ -a,b +c,d @@ context`` line."""

    old_start: int
    old_lines: int
    new_start: int
    new_lines: int
    header: str
    lines: list[DiffLine]


class DiffFile(TypedDict):
    path: str
    old_path: str | None
    status: DiffStatus
    additions: int
    deletions: int
    binary: bool
    hunks: list[DiffHunk]


_STATUS: dict[str, DiffStatus] = {
    "A": "added",
    "M": "modified",
    "D": "deleted",
    "R": "renamed",
    "C": "copied",
    "T": "type_changed",
}
# -r: files, not subtrees; -M: renames, as `git diff` shows them by default. The config keeps
# the patch parseable (a blank context line keeps its space, so counts and trailing lines hold)
# and non-ASCII names readable in the text form (control characters are still quoted).
_DIFF = (
    *("-c", "diff.suppressBlankEmpty=false", "-c", "core.quotePath=false"),
    *("diff-tree", "-r", "-M", "--no-color", "--no-ext-diff", "--no-textconv"),
)
# Config for commands on a throw-away index, passed in the environment so that callers of
# snapshot_index get it too: write the index whole, never a split index whose shared part would
# be left behind in the repository's git dir.
_TMP_INDEX_CONFIG = {
    "GIT_CONFIG_COUNT": "1",
    "GIT_CONFIG_KEY_0": "core.splitIndex",
    "GIT_CONFIG_VALUE_0": "false",
}
_HUNK = re.compile(r"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_SHORTSTAT = re.compile(
    r"(\d+) files? changed(?:, (\d+) insertions?\(\+\))?(?:, (\d+) deletions?\(-\))?"
)
_OBJECT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
#: How many whole-diff stats :func:`_whole_stats` keeps: a turn asks again within seconds, and
#: 60 runs at once each hold one or two pairs that matter.
_STATS_KEPT = 512
_stats_kept: OrderedDict[tuple[str, str, str], dict[str, int]] = OrderedDict()


# --- snapshots -----------------------------------------------------------------------------


@asynccontextmanager
async def snapshot_index(worktree: Path) -> AsyncIterator[dict[str, str]]:
    """Yield a git ``env`` whose throw-away index holds the worktree's full current state.

    The index starts as a copy of the worktree's own (mtime kept, so git's racy-entry check stays
    right), which lets ``add -A`` reuse its stat data and hash only what changed; a fresh
    ``read-tree HEAD`` would rehash every file. Skip-worktree entries of a sparse checkout are
    kept too, so files outside the sparse cone do not count as deleted.
    """
    # Its directory made, filled and removed in a thread: under load those file system calls
    # held the event loop ms each, for every snapshot of every run (2 % of the loop's samples
    # while 300 runs prepared). One trip there to make and fill it, not three (each trip is a
    # wake-up of the loop and of a worker thread; a turn takes three snapshots).
    making = asyncio.get_running_loop().run_in_executor(None, _index_copy, worktree)
    try:
        tmp, copied = await asyncio.shield(making)
    except asyncio.CancelledError:  # the thread still makes it: removed once it has
        making.add_done_callback(_remove_made)
        raise
    try:
        index = Path(tmp) / "index"
        env = {**_TMP_INDEX_CONFIG, "GIT_INDEX_FILE": str(index)}
        if copied is None:  # its ``.git`` did not say where the index is: git does
            own = worktree / (await git("rev-parse", "--git-path", "index", cwd=worktree)).stdout
            copied = await asyncio.to_thread(_copy_index, own, index)
        if not copied:  # a worktree checked out with --no-checkout has no index yet
            await git("read-tree", "HEAD", cwd=worktree, env=env)
        await git("add", "-A", cwd=worktree, env=env)
        yield env
    finally:
        await asyncio.shield(asyncio.to_thread(shutil.rmtree, tmp, True))


def _index_copy(worktree: Path) -> tuple[str, bool | None]:
    """In a thread: a private directory, and the worktree's own index copied into it as
    ``index``; ``(directory, copied)``, copied None when the index's place is for git to say
    (:func:`_own_index`), False when there is no index there yet."""
    tmp = tempfile.mkdtemp(prefix="codeyard-index-")
    try:
        own = _own_index(worktree)
        return tmp, None if own is None else _copy_index(own, Path(tmp) / "index")
    except BaseException:
        shutil.rmtree(tmp, True)
        raise


def _remove_made(making: asyncio.Future[tuple[str, bool | None]]) -> None:
    """A snapshot cancelled while its directory was being made: remove it in a thread."""
    if not making.cancelled() and making.exception() is None:
        tmp = making.result()[0]
        asyncio.get_running_loop().run_in_executor(None, shutil.rmtree, tmp, True)


def _copy_index(own: Path, index: Path) -> bool:
    """Copy ``own`` to ``index`` (mtime kept); False when there is no ``own``."""
    try:
        shutil.copy2(own, index)
    except FileNotFoundError:
        return False
    return True


def _own_index(worktree: Path) -> Path | None:
    """The worktree's index where git would find it (``$GIT_DIR/index``), read from its ``.git``
    directory or ``gitdir:`` file; None to ask ``git rev-parse --git-path index`` instead.

    Saves a git process per snapshot (~15 ms each on a quiet 2-core machine, several times
    that under load; bench/overhead.py takes three snapshots per turn).
    """
    dot_git = worktree / ".git"
    if dot_git.is_dir():
        return dot_git / "index"
    try:
        text = dot_git.read_text("utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if not text.startswith("gitdir: "):
        return None
    return worktree / text[len("gitdir: ") :].strip() / "index"  # relative to the worktree


async def snapshot_tree(worktree: Path) -> str:
    """The tree id of everything in ``worktree`` now; writes objects, changes no ref or index."""
    async with snapshot_index(worktree) as env:
        return (await git("write-tree", cwd=worktree, env=env)).stdout


# --- public diff API ---------------------------------------------------------------------------


async def unified_diff(worktree: Path, base: str, paths: list[str] | None = None) -> str:
    """The patch text from ``base`` to the worktree's current state (``git apply``-able)."""
    return await diff_between(worktree, base, await snapshot_tree(worktree), "text", paths)


async def diff_files(worktree: Path, base: str, paths: list[str] | None = None) -> list[DiffFile]:
    """Per-file diff, hunks included, from ``base`` to the worktree's current state."""
    return await diff_between(worktree, base, await snapshot_tree(worktree), "json", paths)


async def diff_stats(worktree: Path, base_commit: str) -> dict[str, int]:
    """``{files, insertions, deletions}`` of everything in ``worktree`` against ``base_commit``."""
    return await diff_between(worktree, base_commit, await snapshot_tree(worktree), "stats")


@overload
async def diff_between(
    repo: Path, a: str, b: str, fmt: Literal["text"] = ..., paths: list[str] | None = ...
) -> str: ...
@overload
async def diff_between(
    repo: Path, a: str, b: str, fmt: Literal["json"], paths: list[str] | None = ...
) -> list[DiffFile]: ...
@overload
async def diff_between(
    repo: Path, a: str, b: str, fmt: Literal["stats"], paths: list[str] | None = ...
) -> dict[str, int]: ...
async def diff_between(
    repo: Path, a: str, b: str, fmt: DiffFormat = "text", paths: list[str] | None = None
) -> str | list[DiffFile] | dict[str, int]:
    """Diff commit or tree ``a`` against ``b`` as patch text, per-file JSON or stats.

    ``paths`` keeps files (or whole directories) by repository-relative path, matched literally.
    A rename counts as kept when either side is, and is still shown as a rename: the other side
    is added to what git compares.
    """
    for rev in (a, b):
        if not rev or rev.startswith("-"):
            raise ValueError(f"{rev!r} is not a usable commit or tree")
    wanted = _normalize(paths)
    if fmt == "stats" and wanted is None:
        return await _whole_stats(repo, a, b)
    spec: list[str] = []
    if wanted is not None:
        spec = await _pathspec(repo, a, b, wanted)
        if not spec:
            return "" if fmt == "text" else [] if fmt == "json" else _stats([])
    tail = ("--", *spec) if spec else ()
    literal = ("--literal-pathspecs",) if spec else ()

    if fmt == "text":
        out = (await git(*literal, *_DIFF, "-p", a, b, *tail, cwd=repo)).stdout
        return out + "\n" if out else ""
    out = (await git(*literal, *_DIFF, "-z", "--raw", "-p", a, b, *tail, cwd=repo)).stdout
    files = _parse(out)
    if wanted is not None:
        files = [f for f in files if _kept(f["path"], f["old_path"], wanted)]
    return files if fmt == "json" else _stats(files)


async def _whole_stats(repo: Path, a: str, b: str) -> dict[str, int]:
    """The stats of everything from ``a`` to ``b``, kept by ``(repo, a, b)`` when both are full
    object ids.

    Why: a turn asks twice for the same pair. A tool call that writes gets the stats of the
    base commit against its snapshot (``ChangeTracker.after_tool``), and the turn-end checkpoint
    asks again against its own snapshot, which is the same tree when nothing changed after the
    last tool call (bench/agents_scale.py: 2 ``diff-tree --shortstat`` per run with identical
    arguments). Objects named by full ids (what ``write-tree`` and ``rev-parse`` print) never
    change, being content addressed, so neither does their diff: the answer given once is
    git's answer again, without a process. Names (``HEAD``, a branch, a short id) can move and
    are always asked; git takes a full id as the object even where a ref has that name.

    What git reads besides the two objects is not part of the key: the repository's
    configuration (``diff.renameLimit``) and the attributes of the work tree at ``repo``
    (``.gitattributes``: ``binary``/``-diff`` files count no lines). The work tree's own
    attributes are in ``b`` when ``b`` is a snapshot of it, so a change to them is a new
    ``b``; the configuration changed between two asks for one pair (seconds apart in a turn;
    at most :data:`_STATS_KEPT` pairs are kept) is not seen, as it would not have been by an
    ask a moment earlier.
    """
    key = (str(repo), a, b)
    exact = _OBJECT_ID.fullmatch(a) is not None and _OBJECT_ID.fullmatch(b) is not None
    if exact and (kept := _stats_kept.get(key)) is not None:
        _stats_kept.move_to_end(key)
        return dict(kept)
    stats = _shortstat((await git(*_DIFF, "--shortstat", a, b, cwd=repo)).stdout)
    if exact:
        _stats_kept[key] = dict(stats)
        while len(_stats_kept) > _STATS_KEPT:
            _stats_kept.popitem(last=False)
    return stats


# --- paths ---------------------------------------------------------------------------------------


def _normalize(paths: list[str] | None) -> list[str] | None:
    """Paths in normal form; None (everything) if one of them names the root."""
    if paths is None:
        return None
    wanted = [posixpath.normpath(p).lstrip("/") for p in paths]  # "./a//b/" -> "a/b"
    return None if any(w in ("", ".") for w in wanted) else wanted


def _under(path: str, wanted: list[str]) -> bool:
    return any(path == w or path.startswith(w + "/") for w in wanted)


def _kept(path: str, old_path: str | None, wanted: list[str]) -> bool:
    return _under(path, wanted) or (old_path is not None and _under(old_path, wanted))


async def _pathspec(repo: Path, a: str, b: str, wanted: list[str]) -> list[str]:
    """``wanted`` plus the far side of every rename or copy that one of them touches.

    Git only pairs a rename when both sides pass the pathspec, so a name-only pass over the whole
    diff finds the partners first; the patch is then computed for the kept files only.
    """
    out = (await git(*_DIFF, "-z", "--raw", a, b, cwd=repo)).stdout
    entries, _ = _parse_raw(out)
    spec = {w for w in wanted if any(_kept(e.path, e.old_path, [w]) for e in entries)}
    for e in entries:
        if e.old_path is not None and _kept(e.path, e.old_path, wanted):
            spec.update((e.path, e.old_path))
    return sorted(spec)


# --- parsing -----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Entry:
    status: str
    path: str
    old_path: str | None


@dataclass(slots=True)
class _Section:
    binary: bool = False
    additions: int = 0
    deletions: int = 0
    hunks: list[DiffHunk] = field(default_factory=list)


def _parse_raw(out: str, pos: int = 0) -> tuple[list[_Entry], int]:
    """``--raw -z`` records from ``pos``: ``:modes oids status\\0path\\0[new path\\0]``."""
    entries: list[_Entry] = []
    while out.startswith(":", pos):
        end = out.index("\0", pos)
        status = out[pos:end].rsplit(" ", 1)[1][:1]
        pos = end + 1
        end = out.index("\0", pos)
        first = out[pos:end]
        pos = end + 1
        if status in "RC":
            end = out.index("\0", pos)
            entries.append(_Entry(status, out[pos:end], first))
            pos = end + 1
        else:
            entries.append(_Entry(status, first, None))
    return entries, pos


def _parse(out: str) -> list[DiffFile]:
    """Pair ``--raw -z`` records with the patch sections that follow them, in the same order.

    Each record has one ``diff --git`` section, except a type change (file <-> symlink or
    submodule), which git prints as a deletion followed by an addition.
    """
    entries, pos = _parse_raw(out)
    if entries and not out.startswith("\0", pos):  # -z puts a NUL between records and patch
        raise ValueError(f"unexpected git diff output after file records: {out[pos : pos + 200]!r}")
    sections = _parse_patch(out[pos + 1 :].split("\n")) if entries else []
    files: list[DiffFile] = []
    k = 0
    for e in entries:
        n = 2 if e.status == "T" else 1
        parts = sections[k : k + n]
        k += n
        files.append(
            {
                "path": e.path,
                "old_path": e.old_path,
                "status": _STATUS.get(e.status, "modified"),
                "additions": sum(s.additions for s in parts),
                "deletions": sum(s.deletions for s in parts),
                "binary": any(s.binary for s in parts),
                "hunks": [h for s in parts for h in s.hunks],
            }
        )
    if k != len(sections):
        raise ValueError(f"git printed {len(sections)} patch sections for {len(entries)} files")
    return files


def _parse_patch(lines: list[str]) -> list[_Section]:
    sections: list[_Section] = []
    i, n = 0, len(lines)
    while i < n:
        if not lines[i].startswith("diff --git "):
            if lines[i] == "" and i == n - 1:
                break
            raise ValueError(f"unexpected line in git diff output: {lines[i][:200]!r}")
        section = _Section()
        sections.append(section)
        i += 1
        while i < n and not lines[i].startswith(("@@ ", "diff --git ")):
            if lines[i].startswith("Binary files ") and lines[i].endswith(" differ"):
                section.binary = True
            i += 1
        while i < n and lines[i].startswith("@@ "):
            i = _parse_hunk(lines, i, section)
    return sections


def _parse_hunk(lines: list[str], i: int, section: _Section) -> int:
    """Read the hunk at ``lines[i]`` by its line counts (content may look like anything)."""
    match = _HUNK.match(lines[i])
    if match is None:
        raise ValueError(f"bad hunk header in git diff output: {lines[i][:200]!r}")
    old_start, new_start = int(match[1]), int(match[3])
    old_left = int(match[2]) if match[2] is not None else 1
    new_left = int(match[4]) if match[4] is not None else 1
    hunk: DiffHunk = {
        "old_start": old_start,
        "old_lines": old_left,
        "new_start": new_start,
        "new_lines": new_left,
        "header": lines[i],
        "lines": [],
    }
    out = hunk["lines"]
    old, new = old_start, new_start
    i += 1
    while old_left > 0 or new_left > 0 or (i < len(lines) and lines[i].startswith("\\")):
        if i >= len(lines):
            raise ValueError("git diff output ended inside a hunk")
        line = lines[i]
        tag = line[:1]
        if tag in (" ", ""):  # "" when diff.suppressBlankEmpty drops the space of empty lines
            out.append({"type": "context", "text": line[1:], "old_line": old, "new_line": new})
            old, new, old_left, new_left = old + 1, new + 1, old_left - 1, new_left - 1
        elif tag == "-":
            out.append({"type": "del", "text": line[1:], "old_line": old})
            old, old_left = old + 1, old_left - 1
            section.deletions += 1
        elif tag == "+":
            out.append({"type": "add", "text": line[1:], "new_line": new})
            new, new_left = new + 1, new_left - 1
            section.additions += 1
        elif tag == "\\" and out:
            out[-1]["no_newline"] = True
        else:
            raise ValueError(f"unexpected line in a git diff hunk: {line[:200]!r}")
        i += 1
    section.hunks.append(hunk)
    return i


def _shortstat(out: str) -> dict[str, int]:
    match = _SHORTSTAT.search(out)
    if match is None:
        return {"files": 0, "insertions": 0, "deletions": 0}
    files, ins, dels = (int(g) if g else 0 for g in match.groups())
    return {"files": files, "insertions": ins, "deletions": dels}


def _stats(files: list[DiffFile]) -> dict[str, int]:
    return {
        "files": len(files),
        "insertions": sum(f["additions"] for f in files),
        "deletions": sum(f["deletions"] for f in files),
    }
