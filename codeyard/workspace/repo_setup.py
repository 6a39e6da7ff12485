"""What a repository's settings do to a new worktree: copy files in, run its scripts.

``copy_matching`` copies the files matching ``copy_files`` globs from the main checkout: regular
files only, relative paths kept, never following a symlink out of the checkout and never writing
through one out of the worktree; ``exclude_from_git`` keeps the copies out of commits.
``run_script`` runs a setup or cleanup script with ``bash -c`` in its own process group, killed
whole when it outlives its timeout.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from codeyard.agents.process import spawn
from codeyard.domain.events import ToolResult, tool_result
from codeyard.sandbox import Sandbox, contain
from codeyard.workspace.git import GitError, git

__all__ = ["OUTPUT_TAIL", "ScriptResult", "copy_matching", "exclude_from_git", "run_script"]

log = logging.getLogger(__name__)

#: Characters of a script's output kept in its ``tool.result`` event.
OUTPUT_TAIL = 8000
_MAGIC = frozenset("*?[")


@dataclass(frozen=True, slots=True)
class ScriptResult:
    exit_code: int | None
    output: str
    timed_out: bool
    timeout: float
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def as_event(self, call_id: str) -> ToolResult:
        """The script's ``tool.result``."""
        if self.timed_out:
            error: str | None = f"timed out after {self.timeout:g}s"
        else:
            error = None if self.exit_code == 0 else f"exit code {self.exit_code}"
        return tool_result(
            call_id,
            ok=self.ok,
            output=self.output,
            error=error,
            exit_code=self.exit_code,
            duration_ms=self.duration_ms,
        )


async def run_script(
    command: str, cwd: Path, env: dict[str, str], timeout: float, sandbox: Sandbox | None = None
) -> ScriptResult:
    """Run ``command`` with ``bash -c`` in ``cwd``; stdout and stderr together, tail kept.

    It runs in ``sandbox`` (on when not given; ``cwd`` writable when the sandbox names no
    worktrees) with the allowlisted environment plus ``env``: ``SandboxUnavailable`` when the
    sandbox is on and cannot run.

    Output goes to an anonymous file rather than a pipe, so a background process the script
    leaves running cannot hold the call open. On timeout or cancellation the process group is
    killed.
    """
    sandbox = sandbox or Sandbox()
    if not sandbox.worktrees:
        sandbox = sandbox.for_run([cwd], sandbox.network)
    jail = contain(
        sandbox, "repo-script", ["/bin/bash", "-c", command], env, cwd=cwd, own_session=True
    )
    started = time.monotonic()
    with tempfile.TemporaryFile() as out:
        # A supervised group: tied to the server's life and recorded on the run (issue 12).
        proc, group = await spawn(
            jail.bare,
            lead=jail.lead,
            niceness=jail.niceness,
            kind="repo-script",
            cwd=cwd,
            env=jail.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
        timed_out = False
        try:
            async with asyncio.timeout(timeout):
                await proc.wait()
        except TimeoutError:
            timed_out = True
        finally:
            if proc.returncode is None:  # timed out or cancelled
                group.kill()
                await proc.wait()
            await group.untrack()
        output = await asyncio.to_thread(_tail, out, OUTPUT_TAIL * 4)
    return ScriptResult(
        None if timed_out else proc.returncode,
        output,
        timed_out,
        timeout,
        int((time.monotonic() - started) * 1000),
    )


def _tail(fh: Any, limit: int) -> str:
    size = fh.seek(0, os.SEEK_END)
    fh.seek(max(0, size - limit))
    return str(fh.read().decode("utf-8", errors="replace"))


def _pattern_parts(pattern: str) -> list[str] | None:
    """A glob split into components; None for one that could leave the checkout."""
    text = pattern.strip().replace("\\", "/")
    if not text or text.startswith("/") or "\0" in text:
        return None
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if not parts or ".." in parts or parts[0] == ".git":
        return None
    if parts[-1] == "**":
        parts.append("*")
    return parts


def _entries(directory: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as it:
            return [e for e in it if e.name != ".git"]
    except OSError:
        return []


def _match(root: Path, base: tuple[str, ...], parts: list[str]) -> Iterator[tuple[str, ...]]:
    """Relative paths under ``root`` matching ``parts``; symlinked directories are not entered."""
    head, rest = parts[0], parts[1:]
    here = root.joinpath(*base)
    if head == "**":
        yield from _match(root, base, rest)
        for entry in _entries(here):
            if entry.is_dir(follow_symlinks=False):
                yield from _match(root, (*base, entry.name), parts)
        return
    if _MAGIC.isdisjoint(head):
        names = [head] if head != ".git" else []
    else:
        names = [e.name for e in _entries(here) if fnmatchcase(e.name, head)]
    for name in names:
        if rest:
            if (here / name).is_dir() and not (here / name).is_symlink():
                yield from _match(root, (*base, name), rest)
        else:
            yield (*base, name)


def _source_file(root: Path, rel: tuple[str, ...]) -> Path | None:
    """The regular file ``rel`` names, following a symlink only while it stays inside ``root``."""
    real = Path(os.path.realpath(root.joinpath(*rel)))
    if real != root and root not in real.parents:
        log.warning("copy_files: %s points outside the repository; not copied", "/".join(rel))
        return None
    try:
        return real if stat.S_ISREG(real.stat().st_mode) else None
    except OSError:
        return None


def _safe_target(dest: Path, rel: tuple[str, ...]) -> Path | None:
    """Where ``rel`` goes in ``dest``; None if it exists or a directory on the way is a link."""
    current = dest
    for part in rel[:-1]:
        current = current / part
        if current.is_symlink() or (current.exists() and not current.is_dir()):
            return None
    target = current / rel[-1]
    return None if target.exists() or target.is_symlink() else target


def copy_matching(source: Path, dest: Path, patterns: list[str]) -> list[str]:
    """Copy files of the checkout ``source`` matching ``patterns`` into ``dest``.

    Files already in ``dest`` (tracked ones) are left alone: the branch's version wins.
    Returns the copied paths, relative and ``/``-separated.
    """
    root = Path(os.path.realpath(source))
    copied: list[str] = []
    for pattern in patterns:
        parts = _pattern_parts(pattern)
        if parts is None:
            log.warning("copy_files: pattern %r is not inside the repository; ignored", pattern)
            continue
        for rel in _match(root, (), parts):
            relpath = "/".join(rel)
            if relpath in copied:
                continue
            file = _source_file(root, rel)
            target = _safe_target(dest, rel) if file is not None else None
            if file is None or target is None:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, target)
            copied.append(relpath)
    return copied


async def exclude_from_git(worktree: Path, paths: list[str]) -> None:
    """Add ``paths`` that git would not ignore to the repository's ``info/exclude``.

    Copied files are often secrets (``.env``): an agent's ``git add -A`` must not commit them.
    The exclude file is shared by the main checkout and its worktrees.
    """
    result = await git("check-ignore", "--", *paths, cwd=worktree, check=False)
    if result.returncode not in (0, 1):
        raise GitError(
            f"`git check-ignore` in {worktree} failed: {result.stderr}",
            command=("check-ignore",),
            returncode=result.returncode,
            stderr=result.stderr,
        )
    ignored = set(result.stdout.splitlines())
    wanted = [p for p in paths if p not in ignored]
    if not wanted:
        return
    where = await git("rev-parse", "--git-path", "info/exclude", cwd=worktree)
    exclude = worktree / where.stdout  # relative to the worktree unless absolute
    lines = ["/" + re.sub(r"([*?\[\]\\!#])", r"\\\1", p) for p in wanted]

    def append() -> None:
        exclude.parent.mkdir(parents=True, exist_ok=True)
        existing = exclude.read_text().splitlines() if exclude.exists() else []
        new = [line for line in lines if line not in existing]
        if new:
            with exclude.open("a") as fh:
                if existing and existing[-1] != "":
                    fh.write("\n")
                fh.write("# copied into Codeyard worktrees (copy_files)\n")
                fh.write("\n".join(new) + "\n")

    await asyncio.to_thread(append)
