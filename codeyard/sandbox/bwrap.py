"""A :class:`SandboxSpec` as bubblewrap arguments (pure: no I/O, so it is tested as data).

Mount order matters, later mounts cover earlier ones: the host read-only, fresh ``/dev``,
``/proc`` (of the new pid namespace: the server's processes and their environments are not
visible) and a private ``/tmp``; then the provider's state (writable); then everything hidden
(tmpfs over directories, ``/dev/null`` over files); then git's common directories read-only;
last the run's worktrees and the git metadata they write.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = ["Network", "SandboxSpec", "bwrap_argv", "bwrap_options"]

Network = Literal["full", "none"]


@dataclass(frozen=True, slots=True)
class SandboxSpec:
    """What one contained process sees. Paths are absolute; missing ones are left out."""

    #: The run's worktrees and the git metadata they write.
    writable: tuple[Path, ...] = ()
    #: Mounted read-only over hidden places (git's common directories).
    readable: tuple[Path, ...] = ()
    #: Not visible: directories become empty, files read as empty.
    hidden_dirs: tuple[Path, ...] = ()
    hidden_files: tuple[Path, ...] = ()
    #: The provider's state, writable (mounted before hiding, so hiding wins).
    state: tuple[Path, ...] = ()
    network: Network = "full"
    chdir: Path | None = None
    #: Start a new session inside (``--new-session``): for a caller whose own session may
    #: have a controlling terminal (a process in it could push input into that terminal).
    #: False keeps the caller's session, which must be one it started without a terminal.
    new_session: bool = True
    extra: tuple[str, ...] = field(default=())


def bwrap_options(spec: SandboxSpec) -> list[str]:
    """The options (no program, no ``--``), e.g. for an ``--args`` file."""
    args = [
        "--ro-bind", "/", "/",
        "--dev", "/dev",
        "--proc", "/proc",
        "--tmpfs", "/tmp",
        "--unshare-pid",  # (no ipc/uts namespaces: the server uses neither, each costs ms)
        "--die-with-parent",
        "--cap-drop", "ALL",
    ]  # fmt: skip
    if spec.new_session:
        args.append("--new-session")
    if spec.network == "none":
        args.append("--unshare-net")
    for path in spec.state:
        args += ["--bind", str(path), str(path)]
    for path in spec.hidden_dirs:
        args += ["--tmpfs", str(path)]
    for path in spec.hidden_files:
        args += ["--ro-bind", "/dev/null", str(path)]
    for path in spec.readable:
        args += ["--ro-bind", str(path), str(path)]
    for path in spec.writable:
        args += ["--bind", str(path), str(path)]
    if spec.chdir is not None:
        args += ["--chdir", str(spec.chdir)]
    return [*args, *spec.extra]


def bwrap_argv(bwrap: str, spec: SandboxSpec, argv: list[str]) -> list[str]:
    """``bwrap <options> -- <argv>``."""
    return [bwrap, *bwrap_options(spec), "--", *argv]
