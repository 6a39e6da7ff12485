"""Finding an ACP agent's command and asking its version.

Order: ``provider_config.command`` (a string, split like a shell would, or a list), then the
CLIs pinned in Codeyard's ``clis/`` folder (``make clis`` runs ``npm ci`` there), then PATH.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

from codeyard.agents import version_cache

__all__ = ["CLIS_BIN", "command_from_option", "find_binary", "package_version", "tool_version"]

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
    """(version, None) from ``<executable> --version``, or (None, why it cannot run). Cached,
    and a version found is remembered across starts (``version_cache``)."""
    return version_cache.remembered("version", Path(executable), lambda: _ask(executable))


def _ask(executable: str) -> tuple[str | None, str | None]:
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


def package_version(executable: str, package: str) -> tuple[str | None, str | None]:
    """(version, None) of an npm ``package`` whose program has no ``--version`` (the Zed ACP
    adapters start ACP on any argument), read from its ``package.json`` next to the
    ``node_modules/.bin`` entry it was found by; or (None, why it cannot run)."""
    path = Path(executable)
    if not path.exists():
        return None, f"{executable} does not exist"
    if not os.access(path, os.X_OK):
        return None, f"{executable} cannot be run: it is not executable"
    manifest = path.parent.parent / package / "package.json"
    try:
        version = json.loads(manifest.read_text(encoding="utf-8")).get("version")
    except (OSError, ValueError):
        return None, None  # on PATH, outside an npm tree: it runs, its version is unknown
    return (version if isinstance(version, str) else None), None
