"""The one call each spawn site makes: (argv, environment, sandbox) → what to execute.

Every process Codeyard starts for a run goes through :func:`contain`, so its environment is
the allowlist (even with the sandbox off) and, with the sandbox on, it runs inside bubblewrap;
if bubblewrap cannot run, :class:`SandboxUnavailable` is raised and nothing starts.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from codeyard.sandbox import environment, homes, lifeline, priority
from codeyard.sandbox.bwrap import SandboxSpec, bwrap_options
from codeyard.sandbox.gitdirs import git_dirs
from codeyard.sandbox.policy import Sandbox

__all__ = ["Contained", "build_spec", "contain"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

#: Programs a provider's CLI runs at every start only to describe the host, where the file it
#: falls back to says the same: hidden from that provider (an empty file that cannot be run).
#: Codex (0.163) runs ``lsb_release -a`` twice while it answers ``initialize``, to build its
#: user agent (the ``os_info`` crate, which then reads ``/etc/os-release``): a shell script
#: starting ~8 processes each time (9-17 ms each here), before the thread can start. Hidden,
#: the contained app-server's start to its first model request is ~38 ms shorter (median of
#: 16 pairs under load) and ~20 ms of CPU less. The agent's own commands see it hidden too
#: (``lsb_release`` fails: permission denied; ``/etc/os-release`` is there); with the sandbox
#: off nothing is hidden.
HOST_PROBES: dict[str, tuple[str, ...]] = {"codex": ("lsb_release",)}


@dataclass(frozen=True, slots=True)
class Contained:
    """What to execute: ``argv`` (bwrap first when contained) with exactly ``env``."""

    argv: list[str]
    env: dict[str, str]
    #: The bubblewrap options (empty with the sandbox off), for an ``--args`` file.
    options: list[str] = field(default_factory=list)
    bwrap: str | None = None
    #: The shell ``argv`` first runs in its own ``/bin/sh`` (``priority.group_line``; empty
    #: when none): a starter that already runs a shell in the command's session (the spawn
    #: gate, :meth:`script`) runs it there and ``exec``s :attr:`command`, one start fewer.
    lead: str = ""
    #: What ``argv``'s ``nice`` adds to the niceness (0: ``argv`` has none).
    niceness: int = 0

    @property
    def contained(self) -> bool:
        return self.bwrap is not None

    @property
    def command(self) -> list[str]:
        """``argv`` without the shell that runs :attr:`lead`: for a starter that runs it."""
        return self.argv[len(priority.shell(self.lead)) :]

    @property
    def bare(self) -> list[str]:
        """:attr:`command` without its ``nice`` too: for a starter that also sets the
        niceness itself before the command runs (``agents.process.spawn``'s gate)."""
        return self.command[len(priority.task_prefix(self.niceness)) :]

    def script(
        self, inherited: Iterable[str], *, prelude: str = "", keep: Iterable[str] = ()
    ) -> str:
        """A ``/bin/sh`` script that runs ``argv`` (with the script's own arguments appended),
        for a caller that cannot choose the environment (an SDK that spawns the CLI with
        ``os.environ`` merged in): it exports the allowed values and unsets every other name
        in ``inherited`` (but ``keep``). Values stay in the script file (keep it private),
        never on a command line. ``prelude``: the caller's shell, run first (a check that the
        server still lives); ``keep``: names it sets for the command.

        One shell does it all and ``exec``s :attr:`command`: ``unset`` where ``env -u`` was a
        program start of its own, :attr:`lead` here rather than in a shell of its own. Only
        names a shell cannot unset (not an identifier, or the shell's own) still go through
        ``env -u`` (dash drops the first kind anyway, bash does not)."""
        lines = ["#!/bin/sh", "# Written by Codeyard: the agent's environment and sandbox."]
        if prelude:
            lines.append(prelude)
        for name, value in self.env.items():
            if _NAME.fullmatch(name):
                lines.append(f"export {name}={shlex.quote(value)}")
        unset = sorted(set(inherited) - set(self.env) - set(keep))
        plain = [n for n in unset if _NAME.fullmatch(n) and n not in _SHELL_OWN]
        if plain:
            lines.append("unset " + " ".join(plain))
        if self.lead:
            lines.append(self.lead.rstrip().rstrip(";"))
        odd = [n for n in unset if n not in plain]
        drop = ["/usr/bin/env", *(a for n in odd for a in ("-u", n))] if odd else []
        command = " ".join(shlex.quote(a) for a in [*drop, *self.command])
        lines.append(f'exec {command} "$@"')
        return "\n".join(lines) + "\n"


#: Names a shell keeps for itself (read-only in bash, set by dash): ``env -u`` drops them.
_SHELL_OWN = frozenset(
    {"PPID", "UID", "EUID", "BASHOPTS", "SHELLOPTS", "BASH_VERSINFO", "BASH_ARGV0", "IFS"}
)


def _inside(path: Path, root: Path) -> bool:
    """``path`` is ``root`` or under it (by their parts: ``root in path.parents`` built
    every ancestor of ``path``, a third of a spawn's set-up)."""
    parts, under = path.parts, root.parts
    return len(under) <= len(parts) and parts[: len(under)] == under


@functools.lru_cache(maxsize=32)
def _resolved(paths: tuple[Path, ...]) -> list[Path]:
    """The server's private places, resolved once (they are fixed per server)."""
    return [p.resolve() for p in paths]


@functools.lru_cache(maxsize=32)
def _host_probes(provider: str, search: str) -> tuple[Path, ...]:
    """Each copy of ``provider``'s host probes on ``search`` (a ``PATH``), resolved: a lookup
    that finds one it cannot run goes on to the next directory."""
    found = [
        Path(os.path.realpath(path))
        for name in HOST_PROBES.get(provider, ())
        for folder in search.split(os.pathsep)
        if folder and os.path.isfile(path := os.path.join(folder, name))
    ]
    return tuple(dict.fromkeys(found))


def _kind(path: Path) -> bool | None:
    """A directory (True), something else (False, a dangling symlink too), or nothing (None):
    one ``stat`` where ``exists``, ``is_symlink`` and ``is_dir`` took up to three."""
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False if os.path.islink(path) else None


def _safe_state(path: Path, real_home: Path, private: Sequence[Path]) -> bool:
    """A state path may be mounted writable unless it would reveal the server's home or a
    private place (``HOME=/`` or ``CODEX_HOME=<data dir>`` from a profile)."""
    if path == Path("/") or _inside(real_home, path):
        return False
    return not any(_inside(path, p) or _inside(p, path) for p in private)


def build_spec(
    sandbox: Sandbox,
    provider: str,
    env: Mapping[str, str],
    *,
    writable: Sequence[Path] = (),
    cwd: Path | None = None,
    real_home: Path | None = None,
    new_session: bool = True,
) -> SandboxSpec:
    """The spec for one process of ``provider`` in ``sandbox`` (reads the worktrees' ``.git``
    files and creates missing state directories, so the mounts have sources)."""
    real_home = real_home or Path.home()
    home = Path(env.get("HOME") or real_home)
    private = _resolved(sandbox.private)
    state = homes.state_paths(provider, home, env)
    if home != real_home:
        state.insert(0, home)  # the profile's own home for the CLI
    state = [p for p in dict.fromkeys(state) if _safe_state(p.resolve(), real_home, private)]
    for path in state:
        if not path.exists() and path.suffix != ".json":
            path.mkdir(parents=True, exist_ok=True)
    secrets = homes.secret_paths(provider, real_home)
    probes = _host_probes(provider, env.get("PATH") or os.defpath)
    hidden = [*private, *secrets, *probes]
    readable: list[Path] = []
    rw: list[Path] = []
    for worktree in sandbox.worktrees:
        dirs = git_dirs(worktree)
        hidden += dirs.hidden
        readable += dirs.readable
        rw += [worktree, *dirs.writable]
    rw += list(writable)
    kinds = {p: _kind(p) for p in hidden}  # in order, once each
    return SandboxSpec(
        writable=tuple(p for p in dict.fromkeys(rw) if p.exists()),
        readable=tuple(p for p in dict.fromkeys(readable) if p.exists()),
        hidden_dirs=tuple(p for p, kind in kinds.items() if kind),
        hidden_files=tuple(p for p, kind in kinds.items() if kind is False),
        state=tuple(p for p in state if p.exists()),
        network=sandbox.network,
        chdir=cwd,
        new_session=new_session,
    )


def contain(
    sandbox: Sandbox,
    provider: str,
    argv: Sequence[str],
    explicit_env: Mapping[str, str] | None = None,
    *,
    writable: Sequence[Path] = (),
    cwd: Path | None = None,
    own_session: bool = False,
) -> Contained:
    """``argv`` to run for ``provider`` with the allowlisted environment, inside bubblewrap
    when the sandbox is on (``SandboxUnavailable`` when it is on and cannot run), niced by
    ``sandbox.niceness``.

    ``explicit_env``: what Codeyard and the run set (provider needs, env sets,
    ``agent_options.env``); ``writable``: more places the process must write (a turn's
    generated config); ``own_session``: the caller starts the result as the leader of a new
    session with no controlling terminal (``agents.process.spawn``, Claude Code's launcher),
    so bubblewrap keeps that session instead of making another inside.
    """
    env = environment.build(provider, explicit_env, os.environ)
    # Below the server's CPU priority, sandbox on or off (priority.py: why a nice alone is
    # not enough): the nice first in the chain, so bwrap and all under it inherit it; the
    # session's group lowered where the command's session is made. In the caller's own
    # session: before bwrap, with the server's privileges (as root the kernel never refuses
    # it, so the command starts lowered). In bwrap's ``--new-session``: inside, unprivileged.
    nice = priority.task_prefix(sandbox.niceness)
    niceness = sandbox.niceness if nice else 0
    if not sandbox.enabled:
        lead = priority.group_line(sandbox.niceness)
        return Contained([*priority.shell(lead), *nice, *argv], env, lead=lead, niceness=niceness)
    bwrap = sandbox.check()
    if not sandbox.worktrees and cwd is not None:  # no run named: the directory it works in
        sandbox = sandbox.for_run([cwd], sandbox.network)
    spec = build_spec(
        sandbox, provider, env, writable=writable, cwd=cwd, new_session=not own_session
    )
    options = bwrap_options(spec)
    # Inside, the command first checks that the server still lives (bwrap's own death signal
    # comes only after the sandbox is built: lifeline.py); the same shell lowers the group
    # of a session made inside.
    if own_session:
        lead = priority.group_line(sandbox.niceness)
        inside = lifeline.prefix()
    else:
        lead = ""
        inside = lifeline.prefix(priority.group_line(sandbox.niceness, privileged_write=False))
    argv = [*priority.shell(lead), *nice, bwrap, *options, "--", *inside, *argv]
    return Contained(argv, env, options, bwrap, lead, niceness)
