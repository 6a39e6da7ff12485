"""Finding the Claude Code binary, and starting and stopping it as its own process group.

The SDK spawns the CLI itself and has no option for a new process group, so Codeyard hands it a
tiny launcher as ``cli_path``: it records its pid and ``exec``s the real CLI as the leader of a
new session (``os.setsid``). The pid, process group and session stay the same through both
``exec``s, so one ``killpg`` reaches the CLI and every tool process it started. Descendants that
left the group (daemons that call ``setsid`` themselves) are found through ``/proc`` and killed
too, so no process of a cancelled turn survives it.
"""

from __future__ import annotations

import importlib.util
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

from codeyard.agents.binary import CliBinary
from codeyard.agents.process import (  # shared by every provider; re-exported
    ProcessGroup,
    tied_prefix,
)

__all__ = ["CLAUDE", "ProcessGroup", "bundled_cli", "cli_version", "find_cli", "launcher"]

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
    # server even on ``kill -9`` (issue 12); then the CLI starts only if its parent is still
    # the server (``CODEYARD_GATE_PARENT``): one that died before the signal was set never
    # sends it.
    tied = " ".join(shlex.quote(a) for a in tied_prefix())
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
