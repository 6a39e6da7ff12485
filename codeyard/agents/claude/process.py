"""Finding the Claude Code binary, and starting and stopping it as its own process group.

The SDK spawns the CLI itself and has no option for a new process group, so Codeyard hands it a
tiny launcher as ``cli_path``: it records its pid and ``exec``s the real CLI as the leader of a
new session (``os.setsid``). The pid, process group and session stay the same through both
``exec``s, so one ``killpg`` reaches the CLI and every tool process it started. Descendants that
left the group (daemons that call ``setsid`` themselves) are found through ``/proc`` and killed
too, so no process of a cancelled turn survives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["ProcessGroup", "bundled_cli", "cli_version", "find_cli", "launcher"]

PID_FILE_ENV = "CODEYARD_PID_FILE"
CLI_ENV = "CODEYARD_CLAUDE_CLI"
_PROC = Path("/proc")


def bundled_cli() -> Path | None:
    """The Claude Code binary inside the ``claude-agent-sdk`` wheel, if installed."""
    try:
        import claude_agent_sdk
    except ImportError:
        return None
    name = "claude.exe" if sys.platform == "win32" else "claude"
    path = Path(claude_agent_sdk.__file__).parent / "_bundled" / name
    return path if path.is_file() else None


def find_cli(configured: str | None = None) -> Path | None:
    """``configured`` (an option), else the SDK's bundled binary, else ``claude`` on PATH."""
    if configured:
        return Path(configured)
    found = bundled_cli()
    if found is not None:
        return found
    on_path = shutil.which("claude")
    return Path(on_path) if on_path else None


@functools.lru_cache(maxsize=8)
def cli_version(cli: Path) -> tuple[str | None, str | None]:
    """(version, None) from ``claude --version``, or (None, why it cannot run). Cached."""
    try:
        done = subprocess.run(
            [str(cli), "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError as exc:
        return None, f"{cli} cannot be run: {exc.strerror or exc}"
    except subprocess.TimeoutExpired:
        return None, f"{cli} --version did not answer within 30 s"
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return None, f"{cli} --version failed (exit {done.returncode}): {detail[0]}"
    words = done.stdout.split()
    return (words[0] if words else None), None


_launcher: Path | None = None


def launcher() -> Path:
    """The launcher script, written once per process into a private temporary directory
    (and again should a temp-file cleaner have removed it)."""
    global _launcher
    if _launcher is not None and _launcher.exists():
        return _launcher
    folder = Path(tempfile.mkdtemp(prefix="codeyard-claude-"))
    script = folder / "claude-launcher"
    setsid = "import os,sys; os.setsid(); os.execv(sys.argv[1], sys.argv[1:])"
    script.write_text(
        "#!/bin/sh\n"
        "# Written by Codeyard: run Claude Code as the leader of its own process group.\n"
        f'[ -n "${PID_FILE_ENV}" ] && echo $$ > "${PID_FILE_ENV}"\n'
        f"exec {shlex.quote(sys.executable)} -I -S -c {shlex.quote(setsid)} "
        f'"${CLI_ENV}" "$@"\n'
    )
    script.chmod(0o700)
    _launcher = script
    return script


Stat = tuple[str, int, int, int]


def _stat(pid: int) -> Stat | None:
    """(state, ppid, pgid, start time) of a process from ``/proc``, or None."""
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[2]), int(fields[19])


def _alive(pid: int) -> bool:
    if _PROC.is_dir():
        stat = _stat(pid)
        return stat is not None and stat[0] not in ("Z", "X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _all_stats() -> dict[int, Stat]:
    stats: dict[int, Stat] = {}
    if not _PROC.is_dir():
        return stats
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None:
                stats[int(entry.name)] = stat
    return stats


class ProcessGroup:
    """The CLI's process group, led by ``pid``: stopped with escalating signals."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        #: Every member seen, with its start time (so a recycled pid is never signalled).
        self._known: dict[int, int] = {}

    def members(self) -> set[int]:
        """Live processes in the group or descending from it (Linux; elsewhere the leader).

        Descendants seen once stay members while they live, even after their parent died and
        they were re-parented outside the tree.
        """
        stats = _all_stats()
        if not stats:
            return {self.pid} if _alive(self.pid) else set()
        live = {p: s for p, s in stats.items() if s[0] not in ("Z", "X")}
        found = {p for p, s in live.items() if s[2] == self.pid}
        found |= {p for p, start in self._known.items() if p in live and live[p][3] == start}
        frontier = [self.pid, *found]
        while frontier:
            parent = frontier.pop()
            for pid, stat in live.items():
                if stat[1] == parent and pid not in found:
                    found.add(pid)
                    frontier.append(pid)
        self._known.update({p: live[p][3] for p in found})
        return found

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)
        for pid in self.members() - {self.pid}:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)

    async def _wait_gone(self, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if not self.members():
                return True
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.05)

    async def stop(self, grace: float = 2.0) -> None:
        """Wait ``grace`` for a clean exit, then SIGINT, SIGTERM, SIGKILL (``grace`` each)."""
        if await self._wait_gone(grace):
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._signal(sig)
            if await self._wait_gone(grace):
                return
        self.kill()

    def kill(self) -> None:
        """SIGKILL the group and every live member (synchronous: safe while being cancelled)."""
        self._signal(signal.SIGKILL)
