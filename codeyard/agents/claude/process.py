"""Finding the Claude Code binary, and starting and stopping it as its own process group.

The SDK spawns the CLI itself and has no option for a new process group, so Codeyard hands it a
tiny launcher as ``cli_path``, and has the SDK's spawn start it as a new session's leader
(``piped.new_session``; the launcher makes one itself when started otherwise): it records its
pid and ``exec``s the turn's contained script, which becomes the CLI. The pid, process group
and session stay the same through every ``exec``, so one ``killpg`` reaches the CLI and every
tool process it started. Descendants that
left the group (daemons that call ``setsid`` themselves) are found through ``/proc`` and killed
too, so no process of a cancelled turn survives it.
"""

from __future__ import annotations

import importlib.util
import shlex
import shutil
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from codeyard.agents.binary import CliBinary
from codeyard.agents.process import (  # shared by every provider; re-exported
    TIE_CHECK,
    TIE_KEEPS,
    ProcessGroup,
    pdeathsig_prefix,
)

if TYPE_CHECKING:
    from codeyard.sandbox import Contained

__all__ = [
    "CLAUDE",
    "ProcessGroup",
    "bundled_cli",
    "cli_script",
    "cli_version",
    "find_cli",
    "launcher",
]

PID_FILE_ENV = "CODEYARD_PID_FILE"
CLI_ENV = "CODEYARD_CLAUDE_CLI"


def sdk_dir() -> Path | None:
    """Where the ``claude-agent-sdk`` package is installed, found without importing it.

    Importing it imports ``mcp``, which takes ~0.3 s, and providers are described in a worker
    thread: an import of ``mcp`` there racing one in the server's loop thread (its MCP
    endpoint) could meet a partially initialized ``mcp.server`` and fail."""
    spec = importlib.util.find_spec("claude_agent_sdk")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def bundled_cli() -> Path | None:
    """The Claude Code binary inside the ``claude-agent-sdk`` wheel, if installed."""
    package = sdk_dir()
    if package is None:
        return None
    name = "claude.exe" if sys.platform == "win32" else "claude"
    path = package / "_bundled" / name
    return path if path.is_file() else None


#: The Claude Code binary: configured, else bundled with the SDK, else ``claude`` on PATH.
CLAUDE = CliBinary(
    label="Claude Code",
    command="claude",
    bundled=bundled_cli,
    version_word=0,  # "2.1.3 (Claude Code)"
    install_fix="Reinstall the SDK that bundles it (pip install --force-reinstall "
    "claude-agent-sdk), or install Claude Code (npm install -g @anthropic-ai/claude-code) and "
    "put it on PATH.",
    repair_fix="Reinstall claude-agent-sdk for this platform, or set provider_config.cli_path "
    "to a working claude binary.",
)
find_cli = CLAUDE.find
cli_version = CLAUDE.version


_launcher: Path | None = None


def cli_script(jail: Contained, inherited: Iterable[str]) -> str:
    """The script :func:`launcher` runs as ``CODEYARD_CLAUDE_CLI``: the check that the server
    still lives (``TIE_CHECK``, right after ``setpriv``), then ``jail`` with exactly its
    environment (whatever of ``inherited`` the SDK merged in is dropped), all in one shell."""
    return jail.script(inherited, prelude=TIE_CHECK, keep=TIE_KEEPS)


def launcher() -> Path:
    """The launcher script, written once per process into a private temporary directory
    (and again should a temp-file cleaner have removed it).

    It records its pid (``CODEYARD_PID_FILE``) and ``exec``s, through ``setpriv --pdeathsig
    KILL`` (same pid, kept through the exec: the CLI dies with the server even on ``kill -9``,
    issue 12), the script named by ``CODEYARD_CLAUDE_CLI``: the turn's contained script
    (``launch.Contained.script``), which first runs ``agents.process.TIE_CHECK`` (the CLI
    starts only if its parent is still the server: one that died before the signal was set
    never sends it) and then becomes the sandboxed CLI. The CLI leads its own session: the
    turn has the SDK's spawn start it so (``piped.new_session``); a launcher started any other
    way makes one first, with util-linux/BusyBox ``setsid`` (it forks instead of exec'ing when
    its caller leads a process group, so only when /proc says it does not: the recorded pid
    would be wrong), else with Python (~15 ms more)."""
    global _launcher
    if _launcher is not None and _launcher.exists():
        return _launcher
    folder = Path(tempfile.mkdtemp(prefix="codeyard-claude-"))
    script = folder / "claude-launcher"
    setsid = "import os,sys; os.setsid(); os.execv(sys.argv[1], sys.argv[1:])"
    tied = " ".join([*map(shlex.quote, pdeathsig_prefix()), f'"${CLI_ENV}"'])
    slow = ""
    if (found := shutil.which("setsid")) is not None:
        slow = f'[ "$pgrp" != $$ ] && exec {shlex.quote(found)} -- {tied} "$@"\n'
    script.write_text(
        "#!/bin/sh\n"
        "# Written by Codeyard: run Claude Code as the leader of its own session.\n"
        f'[ -n "${PID_FILE_ENV}" ] && echo $$ > "${PID_FILE_ENV}"\n'
        "read -r _ _ _ _ pgrp sid _ 2>/dev/null < /proc/$$/stat\n"
        f'[ "$sid" = $$ ] && exec {tied} "$@"\n'
        f"{slow}"
        f'exec {shlex.quote(sys.executable)} -I -S -c {shlex.quote(setsid)} {tied} "$@"\n'
    )
    script.chmod(0o700)
    _launcher = script
    return script
