"""Finding the ``codex`` binary and asking its version.

The ``openai-codex`` SDK pins its runtime in the ``openai-codex-cli-bin`` wheel; that binary is
preferred, then ``codex`` on PATH (the npm package). The app-server is started by the turn as
the leader of a new session, so the process group of :class:`ProcessGroup` reaches it and every
command it runs.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from codeyard.agents.binary import CliBinary
from codeyard.agents.process import ProcessGroup

__all__ = ["CODEX", "ProcessGroup", "bundled_cli", "bundled_path_dir", "cli_version", "find_cli"]


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


#: The Codex binary: configured, else pinned by the SDK's wheel, else ``codex`` on PATH.
CODEX = CliBinary(
    label="Codex",
    command="codex",
    bundled=bundled_cli,
    version_word=-1,  # "codex-cli 0.163.0"
    install_fix="Install the SDK that pins it (pip install openai-codex), or install Codex "
    "(npm install -g @openai/codex) and put it on PATH.",
    repair_fix="Reinstall openai-codex for this platform (pip install --force-reinstall "
    "openai-codex), or set provider_config.cli_path to a working codex binary.",
)
find_cli = CODEX.find
cli_version = CODEX.version
