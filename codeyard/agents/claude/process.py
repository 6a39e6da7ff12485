"""Finding the Claude Code binary, and starting and stopping it as its own process group.

The SDK spawns the CLI itself and has no option for a new process group, so Codeyard hands it a
tiny launcher as ``cli_path``: it records its pid and ``exec``s the real CLI as the leader of a
new session (``os.setsid``). The pid, process group and session stay the same through both
``exec``s, so one ``killpg`` reaches the CLI and every tool process it started. Descendants that
left the group (daemons that call ``setsid`` themselves) are found through ``/proc`` and killed
too, so no process of a cancelled turn survives it.
"""

from __future__ import annotations

import functools
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from codeyard.agents.process import (  # shared by every provider; re-exported
    ProcessGroup,
    pdeathsig_prefix,
)

__all__ = ["ProcessGroup", "bundled_cli", "cli_version", "find_cli", "launcher"]

PID_FILE_ENV = "CODEYARD_PID_FILE"
CLI_ENV = "CODEYARD_CLAUDE_CLI"


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
    # util-linux/BusyBox ``setsid`` where there is one: a Python start-up costs ~15 ms per
    # turn (more under load). It forks instead of exec'ing when its caller leads a process
    # group (the pid recorded above would then be wrong), so only when /proc says it does not.
    # ``setpriv --pdeathsig KILL`` (same pid, kept through the exec): the CLI dies with the
    # server even on ``kill -9`` (issue 12).
    tied = " ".join(shlex.quote(a) for a in pdeathsig_prefix())
    fast = ""
    if (found := shutil.which("setsid")) is not None:
        fast = (
            'read -r _ _ _ _ pgrp _ 2>/dev/null < /proc/$$/stat && [ "$pgrp" != $$ ] && '
            f'exec {shlex.quote(found)} -- {tied} "${CLI_ENV}" "$@"\n'
        )
    script.write_text(
        "#!/bin/sh\n"
        "# Written by Codeyard: run Claude Code as the leader of its own process group.\n"
        f'[ -n "${PID_FILE_ENV}" ] && echo $$ > "${PID_FILE_ENV}"\n'
        f"{fast}"
        f"exec {shlex.quote(sys.executable)} -I -S -c {shlex.quote(setsid)} "
        f'{tied} "${CLI_ENV}" "$@"\n'
    )
    script.chmod(0o700)
    _launcher = script
    return script
