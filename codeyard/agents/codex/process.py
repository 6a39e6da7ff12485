"""Finding the ``codex`` binary and asking its version.

The ``openai-codex`` SDK pins its runtime in the ``openai-codex-cli-bin`` wheel; that binary is
preferred, then ``codex`` on PATH (the npm package). The app-server is started by the turn as
the leader of a new session, so the process group of :class:`ProcessGroup` reaches it and every
command it runs.
"""

from __future__ import annotations

import functools
import importlib
import shutil
import subprocess
from pathlib import Path

from codeyard.agents.process import ProcessGroup

__all__ = ["ProcessGroup", "bundled_cli", "bundled_path_dir", "cli_version", "find_cli"]


def _bin_package(attribute: str) -> Path | None:
    """A path the ``openai-codex-cli-bin`` wheel reports (``codex_cli_bin``, untyped)."""
    try:
        package = importlib.import_module("codex_cli_bin")
        found = getattr(package, attribute)()
    except (ImportError, AttributeError, FileNotFoundError):
        return None
    return Path(str(found)) if found is not None else None


def bundled_cli() -> Path | None:
    """The Codex binary of the ``openai-codex-cli-bin`` wheel, if installed."""
    return _bin_package("bundled_codex_path")


def bundled_path_dir() -> Path | None:
    """The wheel's helper directory (``rg``) Codex expects on PATH, if any."""
    return _bin_package("bundled_path_dir")


def find_cli(configured: str | None = None) -> Path | None:
    """``configured`` (an option), else the SDK's bundled binary, else ``codex`` on PATH."""
    if configured:
        return Path(configured)
    found = bundled_cli()
    if found is not None:
        return found
    on_path = shutil.which("codex")
    return Path(on_path) if on_path else None


@functools.lru_cache(maxsize=8)
def cli_version(cli: Path) -> tuple[str | None, str | None]:
    """(version, None) from ``codex --version``, or (None, why it cannot run). Cached."""
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
    words = done.stdout.split()  # "codex-cli 0.163.0"
    return (words[-1] if words else None), None
