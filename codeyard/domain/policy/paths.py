"""Where a tool call's paths really point, relative to the run's worktree.

Why: a rule about ``src/**`` or the "writes outside the worktree" gate must judge the file that
will be touched, not the spelling: ``link/../../etc/passwd`` or a symlink inside the worktree that
points elsewhere resolve outside. Resolution uses ``os.path.realpath`` (it reads symlinks that
exist, nothing else): the one piece of I/O the otherwise pure engine does, accepted because a
path's meaning depends on it.

Which input keys carry paths is decided here, once, for every provider: see ``PATH_KEYS``.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "COMMAND_KEYS",
    "CWD_KEYS",
    "PATH_KEYS",
    "Place",
    "Resolver",
    "Root",
    "command_line",
    "input_paths",
    "resolve",
    "start_dir",
]

#: Keys whose value is one path (Claude ``file_path``/``notebook_path``, Gemini ``absolute_path``,
#: OpenCode ``filePath``, Codex ``path``/``move_path``, the script provider's ``path``).
PATH_KEYS = (
    "path",
    "file_path",
    "filePath",
    "notebook_path",
    "absolute_path",
    "target_file",
    "move_path",
    "new_path",
    "destination",
)
#: Keys whose value is a list of paths.
PATH_LIST_KEYS = ("paths", "file_paths")
#: Keys whose value lists entries carrying paths (Codex ``changes``, ACP ``locations``,
#: ``edits``): a list of objects with a path key, or an object keyed by path.
ENTRY_KEYS = ("changes", "locations", "edits")
#: Keys whose value is a shell command: a string, or an argument vector (Codex sends a list).
COMMAND_KEYS = ("command", "cmd")
#: Keys naming the directory a tool runs in; relative paths are resolved against it.
CWD_KEYS = ("cwd", "workdir", "working_directory")


@dataclass(frozen=True, slots=True)
class Root:
    """The worktree: ``real`` with symlinks followed, ``lexical`` as given (both absolute)."""

    real: str
    lexical: str

    @classmethod
    def of(cls, worktree: str | os.PathLike[str]) -> Root:
        lexical = os.path.normpath(os.path.abspath(worktree))
        return cls(os.path.realpath(lexical), lexical)


@dataclass(frozen=True, slots=True)
class Place:
    """One path from a tool call. ``real`` is None when it cannot be known statically
    (``$HOME/x``, ``~/x``, a relative path after ``cd "$dir"``)."""

    raw: str
    real: str | None
    lexical: str | None
    root: Root

    @property
    def inside(self) -> bool:
        """Inside the worktree (or the worktree itself), after following symlinks."""
        return self.real is not None and _within(self.real, self.root.real)

    @property
    def rel(self) -> str | None:
        """Path relative to the worktree after following symlinks; None when outside."""
        return _relative(self.real, self.root.real)

    @property
    def lexical_rel(self) -> str | None:
        """Path relative to the worktree as spelled (symlinks not followed)."""
        return _relative(self.lexical, self.root.lexical)


def resolve(raw: str, base: str | None, root: Root, *, known: bool = True) -> Place:
    """Resolve ``raw`` against ``base`` (an absolute directory; None when unknown)."""
    if not known or "\x00" in raw or raw.startswith("~"):
        return Place(raw, None, None, root)
    if raw.startswith("/"):
        joined = raw
    elif base is None:
        return Place(raw, None, None, root)
    else:
        joined = f"{base}/{raw}" if base != "/" else f"/{raw}"
    lexical = joined if _PLAIN_PATH.fullmatch(joined) else os.path.normpath(joined)
    return Place(raw, _realpath(joined, root), lexical, root)


#: An absolute path normpath would leave alone (no `.`/`..` parts, no doubled or trailing `/`).
_PLAIN_PATH = re.compile(r"(/(?!\.\.?(/|$))[^/]+)+|/")


class Resolver:
    """``resolve`` with a memo for one decision: gates and rules look at the same words."""

    __slots__ = ("_memo", "root")

    def __init__(self, root: Root) -> None:
        self.root = root
        self._memo: dict[tuple[str, str | None, bool], Place] = {}

    def __call__(self, raw: str, base: str | None, *, known: bool = True) -> Place:
        key = (raw, base, known)
        place = self._memo.get(key)
        if place is None:
            place = self._memo[key] = resolve(raw, base, self.root, known=known)
        return place


def _realpath(path: str, root: Root) -> str:
    """``os.path.realpath`` (non-strict), cheaper: the worktree is already resolved, so only
    the components below it are looked at; ``..`` steps up from a resolved directory. At the
    first symlink the full ``os.path.realpath`` takes over."""
    current, rest = "", path
    for prefix in (root.lexical, root.real):
        if path == prefix:
            return root.real
        if prefix != "/" and path.startswith(prefix + "/"):
            current, rest = root.real, path[len(prefix) + 1 :]
            break
    for part in rest.split("/"):
        if not part or part == ".":
            continue
        if part == "..":
            current = current.rsplit("/", 1)[0]  # "" stands for "/"
            continue
        step = f"{current}/{part}"
        try:
            mode = os.lstat(step).st_mode
        except (OSError, ValueError):
            current = step  # missing (or not a directory): kept as spelled, like realpath
            continue
        if stat.S_ISLNK(mode):
            return os.path.realpath(path)
        current = step
    return current or "/"


def start_dir(tool_input: Mapping[str, Any], root: Root) -> str | None:
    """The directory a tool runs in: its ``cwd`` input (None if unreadable), else the root."""
    for key in CWD_KEYS:
        if key in tool_input:
            value = tool_input[key]
            if not isinstance(value, str) or not value:
                return None
            place = resolve(value, root.lexical, root)
            return place.real
    return root.lexical


def input_paths(tool_input: Mapping[str, Any], root: Root) -> list[Place]:
    """Every path a (non-shell) tool call names. A value of the wrong type is an unknown path."""
    base = start_dir(tool_input, root)
    return [resolve(raw, base, root, known=known) for raw, known in _raw_paths(tool_input)]


def command_line(tool_input: Mapping[str, Any]) -> str | None:
    """The shell command of a tool call; ``""`` when present but unreadable, None when absent."""
    for key in COMMAND_KEYS:
        if key not in tool_input:
            continue
        value = tool_input[key]
        if isinstance(value, str):
            return value
        if isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
            return shlex.join(value)
        return ""
    return None


def _raw_paths(tool_input: Mapping[str, Any]) -> Iterator[tuple[str, bool]]:
    for key in PATH_KEYS:
        if key in tool_input:
            yield from _values([tool_input[key]])
    for key in PATH_LIST_KEYS:
        if key in tool_input:
            value = tool_input[key]
            yield from _values(value if isinstance(value, list) else [value])
    for key in ENTRY_KEYS:
        value = tool_input.get(key)
        if isinstance(value, Mapping):
            yield from _values(list(value))
        elif isinstance(value, list):
            for entry in value:
                if isinstance(entry, Mapping):
                    yield from _raw_paths({k: v for k, v in entry.items() if k in PATH_KEYS})
                else:
                    yield from _values([entry])


def _values(values: list[Any]) -> Iterator[tuple[str, bool]]:
    for value in values:
        if isinstance(value, str) and value:
            yield value, True
        else:
            yield repr(value), False


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root if root.endswith("/") else root + "/")


def _relative(path: str | None, root: str) -> str | None:
    if path is None or not _within(path, root):
        return None
    if path == root:
        return "."
    return path[len(root) :].lstrip("/")
