"""Finding an agent CLI and telling whether it runs: one description per binary.

Claude Code and Codex are found the same way — a configured path, else the binary their Python
SDK's wheel bundles, else the command on PATH — and checked the same way (``--version``, cached),
with a fix to show when either step fails. A provider describes its binary with a
:class:`CliBinary` and answers ``path``/``version``/``problem`` (``GET /api/providers``) from it.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from codeyard.agents import version_cache

__all__ = ["CliBinary", "run_version"]


@functools.lru_cache(maxsize=16)
def run_version(cli: Path) -> tuple[list[str], str | None]:
    """The words ``<cli> --version`` prints, or ``([], why it cannot run)``. Cached per path,
    and remembered across starts while the program is unchanged (``version_cache``)."""
    printed, why = version_cache.remembered("words", cli, lambda: _ask(cli))
    return (printed or "").split(), why


def _ask(cli: Path) -> tuple[str | None, str | None]:
    """What ``<cli> --version`` prints (one line of words), or ``(None, why it cannot run)``."""
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
    return " ".join(done.stdout.split()), None


@dataclass(frozen=True, slots=True)
class CliBinary:
    """How to find one agent CLI, read its version, and explain what to do when it is missing."""

    #: The product's name in messages ("Claude Code").
    label: str
    #: The command looked up on PATH when nothing is configured or bundled.
    command: str
    #: The binary the provider's SDK wheel ships, if installed.
    bundled: Callable[[], Path | None]
    #: Which word of the ``--version`` output is the version (``claude``: first, ``codex``: last).
    version_word: int
    #: What to do when no binary is found.
    install_fix: str
    #: What to do when the binary found cannot run.
    repair_fix: str

    def find(self, configured: str | None = None) -> Path | None:
        """``configured`` (an option), else the SDK's bundled binary, else the command on PATH."""
        if configured:
            return Path(configured)
        found = self.bundled()
        if found is not None:
            return found
        on_path = shutil.which(self.command)
        return Path(on_path) if on_path else None

    def version(self, cli: Path) -> tuple[str | None, str | None]:
        """``(version, None)``, or ``(None, why it cannot run)``."""
        words, why = run_version(cli)
        if why is not None:
            return None, why
        return (words[self.version_word] if words else None), None

    def version_of(self, configured: str | None = None) -> str | None:
        cli = self.find(configured)
        return self.version(cli)[0] if cli is not None else None

    def path(self, configured: str | None = None) -> str | None:
        cli = self.find(configured)
        return None if cli is None else str(cli)

    def problem(self, configured: str | None = None) -> str | None:
        """Why the provider cannot run here and the fix, or None when it can."""
        cli = self.find(configured)
        if cli is None:
            return f"{self.label} was not found. {self.install_fix}"
        _, why = self.version(cli)
        if why is not None:
            return f"{self.label} cannot run here: {why}. {self.repair_fix}"
        return None
