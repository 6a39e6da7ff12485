"""Finding an ACP agent's command and asking its version.

Order: ``provider_config.command`` (a string, split like a shell would, or a list), then the
CLIs pinned in Codeyard's ``clis/`` folder (``make clis`` runs ``npm ci`` there), then PATH.
"""

from __future__ import annotations

import functools
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["CLIS_BIN", "command_from_option", "find_binary", "tool_version"]

#: ``clis/node_modules/.bin`` of this source tree (absent in a wheel install).
CLIS_BIN = Path(__file__).resolve().parents[3] / "clis" / "node_modules" / ".bin"
_VERSION = re.compile(r"\d+\.\d+\.\d+(?:[-+.][0-9A-Za-z.-]+)?")


def command_from_option(value: Any) -> list[str] | None:
    """A command from an option value: a non-empty string (shell-split) or list of strings."""
    if isinstance(value, str) and value.strip():
        try:
            words = shlex.split(value)
        except ValueError:
            return None
        return words or None
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return list(value)
    return None


def find_binary(name: str, clis_bin: Path = CLIS_BIN) -> Path | None:
    """``name`` from Codeyard's pinned CLIs, else from PATH."""
    local = clis_bin / name
    if local.is_file():
        return local
    on_path = shutil.which(name)
    return Path(on_path) if on_path else None


@functools.lru_cache(maxsize=16)
def tool_version(executable: str) -> tuple[str | None, str | None]:
    """(version, None) from ``<executable> --version``, or (None, why it cannot run). Cached."""
    try:
        done = subprocess.run(
            [executable, "--version"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except OSError as exc:
        return None, f"{executable} cannot be run: {exc.strerror or exc}"
    except subprocess.TimeoutExpired:
        return None, f"{executable} --version did not answer within 30 s"
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return None, f"{executable} --version failed (exit {done.returncode}): {detail[0]}"
    match = _VERSION.search(done.stdout)
    return (match.group(0) if match else done.stdout.strip() or None), None
