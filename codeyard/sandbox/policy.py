"""The sandbox setting of one server, narrowed to one run: on or off, bwrap, what is private.

Why one object: every process Codeyard starts for a run (agent CLIs, the script provider's
bash, setup and cleanup scripts) is contained through it, and the policy engine's read gate
denies the same private places, so the two cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from codeyard.domain.errors import Conflict
from codeyard.sandbox.bwrap import Network
from codeyard.sandbox.priority import DEFAULT_NICENESS
from codeyard.sandbox.probe import Probe, known, probe

__all__ = ["MODES", "NETWORKS", "Mode", "Sandbox", "SandboxUnavailable"]

Mode = Literal["on", "off"]
MODES: tuple[Mode, ...] = ("on", "off")
NETWORKS: tuple[Network, ...] = ("full", "none")


class SandboxUnavailable(Conflict):
    """The sandbox is on and bubblewrap cannot run: nothing starts unsandboxed instead."""

    title = "Sandbox unavailable"


@dataclass(frozen=True, slots=True)
class Sandbox:
    """``private``: the data directory and worktree root (hidden, and denied to reads);
    ``worktrees``: the run's own (writable); ``bwrap_path``: configured, else PATH;
    ``niceness``: what every process started through it is niced by (``agent_niceness``),
    sandbox on or off."""

    enabled: bool = True
    bwrap_path: str | None = None
    private: tuple[Path, ...] = ()
    worktrees: tuple[Path, ...] = ()
    network: Network = "full"
    niceness: int = DEFAULT_NICENESS

    def for_run(self, worktrees: list[Path] | tuple[Path, ...], network: str | None) -> Sandbox:
        """This sandbox for one run's worktrees and its profile's ``network``."""
        net: Network = "none" if network == "none" else "full"
        return replace(self, worktrees=tuple(Path(w) for w in worktrees), network=net)

    def probe(self) -> Probe:
        return probe(self.bwrap_path)

    def probed(self) -> Probe | None:
        """:meth:`probe`'s answer if it is known already (no bwrap run), else None."""
        return known(self.bwrap_path)

    def check(self, found: Probe | None = None) -> str:
        """The bwrap binary to use; ``SandboxUnavailable`` (409) with the fix when it cannot.
        ``found``: the probe's answer, when the caller has it (else probed here)."""
        found = found or self.probe()
        if not found.ok or found.path is None:
            raise SandboxUnavailable(
                f"The sandbox is on but cannot run: {found.problem} Runs do not start unsandboxed.",
                fix="install bubblewrap, or ask an admin to turn the sandbox off",
            )
        return found.path
