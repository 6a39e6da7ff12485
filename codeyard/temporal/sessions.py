"""Agent session files that travel with the run's checkpoint from host to host (issue 16).

Claude Code and Codex keep a session's conversation outside the worktree: Claude Code in
``<config dir>/projects/<cwd slug>/<session id>.jsonl`` (the config dir is
``CLAUDE_CONFIG_DIR``, else ``$HOME/.claude``; the slug is the working directory with every
character but ASCII letters and digits made ``-``), Codex in
``$CODEX_HOME/sessions/YYYY/MM/DD/rollout-…-<thread id>.jsonl``. A checkpoint pushed to the
shared remote holds the worktree only, so a run continued on another host used to find no
session there: ``--resume`` failed and the agent started a new conversation.

At every checkpoint a worker host packs the run's session files (a gzip'd tar, names relative
to the provider's directory) into ``run_sessions``, fenced on the attempt that took it. The host
that takes the run over loads the archive and, right before the resumed turn starts (when the
turn's environment, and so the provider's directory, is known), unpacks it where the CLI will
look for this worktree: the same session id resumes. Providers not listed here keep the
"new turn told what happened" path.
"""

from __future__ import annotations

import io
import logging
import os
import re
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from codeyard.domain.events import utc_now
from codeyard.store import schema
from codeyard.store.upsert import upsert_replace
from codeyard.store.writer import Tx

__all__ = [
    "MAX_ARCHIVE",
    "PROVIDERS",
    "Saved",
    "claude_slug",
    "collect",
    "load",
    "pack",
    "restore",
    "save",
    "unpack",
]

log = logging.getLogger(__name__)

#: Providers whose session files are carried.
PROVIDERS = frozenset({"claude-code", "codex"})
#: Archives above this are not stored (the run then resumes as a new session, told so).
MAX_ARCHIVE = 32 * 1024 * 1024
_SLUG_MAX = 200
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,200}$")


@dataclass(frozen=True, slots=True)
class Saved:
    provider: str
    session_id: str
    #: The run's ``turns`` when the files were taken (they hold those turns, not a later one).
    turn: int
    archive: bytes


def _js_hash(text: str) -> int:
    """Java's ``String.hashCode`` over UTF-16 code units, as a signed 32-bit integer."""
    value = 0
    data = text.encode("utf-16-le")
    for i in range(0, len(data), 2):
        value = (value * 31 + int.from_bytes(data[i : i + 2], "little")) & 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if number == 0:
            return out


def claude_slug(cwd: str) -> str:
    """The directory name Claude Code keeps a working directory's sessions under."""
    slug = re.sub(r"[^a-zA-Z0-9]", "-", cwd)
    if len(slug) <= _SLUG_MAX:
        return slug
    return f"{slug[:_SLUG_MAX]}-{_base36(abs(_js_hash(cwd)))}"


def _home(env: Mapping[str, str]) -> Path:
    return Path(env.get("HOME") or os.path.expanduser("~"))


def _claude_dir(env: Mapping[str, str]) -> Path:
    named = env.get("CLAUDE_CONFIG_DIR")
    return Path(named).expanduser() if named else _home(env) / ".claude"


def _codex_dir(env: Mapping[str, str]) -> Path:
    named = env.get("CODEX_HOME")
    return Path(named).expanduser() if named else _home(env) / ".codex"


def _files_under(root: Path, paths: list[Path]) -> dict[str, Path]:
    """``paths`` (files, and every file under directories) by their name relative to root."""
    found: dict[str, Path] = {}
    for path in paths:
        if path.is_symlink():
            continue
        if path.is_file():
            found[path.relative_to(root).as_posix()] = path
        elif path.is_dir():
            for item in sorted(path.rglob("*")):
                if item.is_file() and not item.is_symlink():
                    found[item.relative_to(root).as_posix()] = item
    return found


def collect(provider: str, session_id: str, env: Mapping[str, str], cwd: Path) -> dict[str, Path]:
    """The files of ``session_id`` on this host, by name relative to the provider's directory
    (empty when the provider is not carried or the files are not there). Blocking I/O."""
    if provider not in PROVIDERS or not _SAFE_ID.match(session_id):
        return {}
    if provider == "claude-code":
        projects = _claude_dir(env) / "projects"
        own = projects / claude_slug(os.path.realpath(cwd))
        if not (own / f"{session_id}.jsonl").is_file():  # the CLI saw another path: find it
            own = next((p.parent for p in projects.glob(f"*/{session_id}.jsonl")), own)
        return _files_under(own, [own / f"{session_id}.jsonl", own / session_id])
    base = _codex_dir(env)
    rollouts = sorted((base / "sessions").glob(f"*/*/*/rollout-*-{session_id}.jsonl"))
    return _files_under(base, rollouts)


def restore(provider: str, archive: bytes, env: Mapping[str, str], cwd: Path) -> list[Path]:
    """Unpack a saved archive where the provider looks for the session of ``cwd``; returns
    the files written. Blocking I/O."""
    if provider == "claude-code":
        root = _claude_dir(env) / "projects" / claude_slug(os.path.realpath(cwd))
    elif provider == "codex":
        root = _codex_dir(env)
    else:
        return []
    return unpack(archive, root)


def pack(files: Mapping[str, Path]) -> bytes:
    """A gzip'd tar of ``files`` (name → path), names kept as given."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, path in sorted(files.items()):
            info = tarfile.TarInfo(name)
            data = path.read_bytes()
            info.size, info.mode = len(data), 0o600
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def unpack(archive: bytes, root: Path) -> list[Path]:
    """Write an archive's regular files under ``root``; a name that would leave it (absolute,
    ``..``) or anything but a regular file is skipped: archives come from another host."""
    written: list[Path] = []
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        for member in tar.getmembers():
            name = PurePosixPath(member.name)
            if not member.isreg() or name.is_absolute() or ".." in name.parts:
                log.warning("session archive: skipped %r", member.name)
                continue
            source = tar.extractfile(member)
            if source is None:
                continue
            dest = root.joinpath(*name.parts)
            dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if dest.is_symlink():  # never write through a link someone left there
                dest.unlink()
            dest.write_bytes(source.read())
            dest.chmod(0o600)
            written.append(dest)
    return written


async def save(tx: Tx, run_id: str, saved: Saved) -> None:
    """Store (replace) the run's session archive, in the caller's fenced transaction."""
    await tx.check_fence(run_id)
    row: dict[str, Any] = {
        "run_id": run_id,
        "provider": saved.provider,
        "session_id": saved.session_id,
        "turn": saved.turn,
        "archive": saved.archive,
        "updated_at": utc_now(),
    }
    await upsert_replace(tx.conn, schema.run_sessions, row, ["run_id"])


async def load(conn: AsyncConnection, run_id: str) -> Saved | None:
    t = schema.run_sessions
    row = (await conn.execute(select(t).where(t.c.run_id == run_id))).first()
    if row is None:
        return None
    return Saved(row.provider, row.session_id, int(row.turn), bytes(row.archive))
