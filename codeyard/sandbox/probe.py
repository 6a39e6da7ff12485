"""Does bubblewrap work here? Found, its version, and a trial sandbox, or why not with the fix.

Why a trial run and not only ``--version``: bwrap may be installed where user or pid namespaces
are disabled (some containers, hardened kernels); then only running it tells.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["INSTALL_HINT", "Probe", "find_bwrap", "known", "probe"]

INSTALL_HINT = (
    "Install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install "
    "bubblewrap; or run scripts/ensure-bubblewrap.sh), or point CODEYARD_BWRAP_PATH at a "
    "working bwrap binary"
)
_TRIAL = (
    "--ro-bind",
    "/",
    "/",
    "--proc",
    "/proc",
    "--dev",
    "/dev",
    "--tmpfs",
    "/tmp",
    "--unshare-pid",
    "--die-with-parent",
    "--new-session",
    "--cap-drop",
    "ALL",
    "--",
    "/bin/sh",
    "-c",
    "exit 0",
)


@dataclass(frozen=True, slots=True)
class Probe:
    """The result: ``ok`` with ``path`` and ``version``, or ``problem`` (a sentence with a fix)."""

    ok: bool
    path: str | None
    version: str | None
    problem: str | None


def find_bwrap(configured: str | None) -> str | None:
    """``configured`` (the ``bwrap_path`` setting) as given, else ``bwrap`` on PATH."""
    if configured:
        return configured
    return shutil.which("bwrap")


#: Each configured path's answer, once probed: it does not change while we run.
_found: dict[str | None, Probe] = {}
#: How long bwrap may take to answer. A trial sandbox takes ~5 ms idle, but on a host busy with
#: agents the probe waits for a core like everyone else (a loaded test suite once took > 10 s).
PROBE_SECONDS = 30.0


def known(configured: str | None = None) -> Probe | None:
    """The answer for ``configured`` if it was probed already, without probing: a caller on
    the event loop answers from it and sends only the first probe (bwrap runs) to a thread
    (``POST /api/runs`` took a thread trip for a cached answer before)."""
    return _found.get(configured)


def probe(configured: str | None = None) -> Probe:
    """Probe once per configured path (cached: the answer does not change while we run).

    A probe that timed out is not an answer: it is not kept, so the next run asks again
    instead of every run being refused until a restart because the host was busy once."""
    found = _found.get(configured)
    if found is None:
        try:
            found = _found[configured] = _probe(configured)
        except subprocess.TimeoutExpired:
            return Probe(
                False,
                find_bwrap(configured),
                None,
                f"bubblewrap did not answer within {PROBE_SECONDS:g} s (the host is very busy): "
                "try again in a moment; the next run checks again.",
            )
    return found


def _probe(configured: str | None) -> Probe:
    path = find_bwrap(configured)
    if path is None:
        return Probe(False, None, None, f"bubblewrap (bwrap) is not installed. {INSTALL_HINT}.")
    if not Path(path).is_file():
        return Probe(False, path, None, f"bubblewrap was not found at {path}. {INSTALL_HINT}.")
    try:  # a timeout is raised: not an answer to keep (probe())
        done = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=PROBE_SECONDS, check=False
        )
        version = done.stdout.split()[-1] if done.returncode == 0 and done.stdout.split() else None
        trial = subprocess.run(
            [path, *_TRIAL], capture_output=True, text=True, timeout=PROBE_SECONDS, check=False
        )
    except OSError as exc:
        return Probe(False, path, None, f"{path} cannot be run ({exc}). {INSTALL_HINT}.")
    if trial.returncode != 0:
        why = (trial.stderr or trial.stdout).strip().splitlines()[-1:] or ["no output"]
        return Probe(
            False,
            path,
            version,
            f"bubblewrap at {path} cannot create a sandbox here: {why[0]}. Enable user and pid "
            "namespaces (sysctl kernel.unprivileged_userns_clone=1, or run the server where "
            "they are available), or — only if you accept agents reading the server's "
            "secrets — an admin may set the sandbox setting to 'off'.",
        )
    return Probe(True, path, version, None)
