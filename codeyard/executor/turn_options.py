"""What a turn's agent is given: its options' ``env`` layers and its sandbox.

Read from the store when a turn starts (for a new run, beside its preparation's git work) and
handed to the adapter; never stored, so env set secrets stay in the adapter's copy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine

from codeyard.crypto import SecretBox
from codeyard.domain import git_identity
from codeyard.preview import leases
from codeyard.sandbox import Sandbox
from codeyard.sandbox import setting as sandbox_setting
from codeyard.store import env_sets, projects, users
from codeyard.store.writer import Writer

if TYPE_CHECKING:  # the policy engine loads with the executor's turn driver (issue 15)
    from codeyard.executor.approvals import ApprovalGate

#: Adds to the options an adapter gets for one turn, from the run row (e.g. the offer of
#: Codeyard's own MCP server with a run token): never stored, so secrets stay out of the row.
OptionHook = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class OptionParts:
    """What a turn's options are made of, read from the store: the ``env`` layers (highest
    first: the run's own, its env sets, the owner's git identity, the leased ports) and the
    server's sandbox setting, not yet narrowed to the run's worktrees."""

    env: dict[str, str]
    sandbox: Sandbox


async def _all(*parts: Awaitable[Any]) -> list[Any]:
    """Every part's result; the first failure is raised once all of them have ended (none is
    left running behind the turn's failure)."""
    done = await asyncio.gather(*parts, return_exceptions=True)
    for result in done:
        if isinstance(result, BaseException):
            raise result
    return done


class TurnOptions:
    """Builds each turn's options and sandbox for one executor's runs."""

    def __init__(
        self, engine: AsyncEngine, writer: Writer, gate: ApprovalGate, secrets: SecretBox
    ) -> None:
        self._engine = engine
        self._writer = writer
        self._gate = gate
        self._secrets = secrets
        self.hooks: list[OptionHook] = []
        #: The server's sandbox (``contain_with``); on/off is read from the settings per turn.
        self.sandbox = Sandbox()

    def contain_with(self, sandbox: Sandbox) -> None:
        """Run every process of every run in ``sandbox``; tool calls may not read its private
        places either (the policy engine's read gate), whether the sandbox is on or off."""
        self.sandbox = sandbox
        self._gate.private = tuple(str(p) for p in sandbox.private)

    async def sandbox_setting(self) -> Sandbox:
        """The server's sandbox with the stored mode (on/off) applied."""
        return await sandbox_setting.effective(self._engine, self.sandbox)

    async def sandbox_for(self, run: dict[str, Any]) -> Sandbox:
        """The sandbox for ``run`` now: the stored mode, its worktrees, its ``network``."""
        worktrees = [Path(p) for p in (run["worktrees"] or {}).values()]
        network = (run["agent_options"] or {}).get("network")
        return (await self.sandbox_setting()).for_run(worktrees, network)

    async def parts(
        self, run: dict[str, Any], leasing: asyncio.Future[leases.Lease] | None
    ) -> OptionParts:
        """The parts of a turn's options, read at once rather than one after another (the
        agent's spawn waits for them; for a new run they are read beside its preparation)."""
        options = run["agent_options"]
        sets, who, ports, setting = await _all(
            self._env_sets_env(options),
            self._git_identity_env(run),
            self._ports_env(run["id"], leasing),
            self.sandbox_setting(),
        )
        return OptionParts({**ports, **who, **sets, **(options.get("env") or {})}, setting)

    def for_turn(self, run: dict[str, Any], parts: OptionParts) -> tuple[dict[str, Any], Sandbox]:
        """The options the adapter gets (the option hooks see the prepared run) and the
        turn's sandbox, narrowed to the run's worktrees and its ``network``."""
        options = {**run["agent_options"], "env": parts.env}
        for hook in self.hooks:
            options = hook(run, options)
        worktrees = [Path(p) for p in (run["worktrees"] or {}).values()]
        network = (run["agent_options"] or {}).get("network")
        return options, parts.sandbox.for_run(worktrees, network)

    async def _ports_env(
        self, run_id: str, leasing: asyncio.Future[leases.Lease] | None
    ) -> dict[str, str]:
        """The run's leased ports as ``PORT``/``CODEYARD_PORT_<i>`` (under the run's own
        ``env``, which may pick another ``PORT``); ``leasing``: the lease already being taken."""
        lease = await (leasing if leasing is not None else leases.ensure(self._writer, run_id))
        return lease.env()

    async def _git_identity_env(self, run: dict[str, Any]) -> dict[str, str]:
        """The run's owner's git identity as ``GIT_AUTHOR_*``/``GIT_COMMITTER_*``, under the
        run's own ``env``: the agent's commits are the user's, whatever ``~/.gitconfig`` says."""
        async with self._engine.connect() as conn:
            who = await users.git_identity(conn, run["created_by"])
        return git_identity.env(who)

    async def _env_sets_env(self, options: dict[str, Any]) -> dict[str, str]:
        """The run's env set variables, decrypted (under the run's own ``env``). Only the
        adapter's copy of the options holds the values; nothing stores or logs them."""
        ids = options.get("env_set_ids") or []
        profile = options.get(projects.AGENT_ENV)
        if not ids and not profile:
            return {}
        async with self._engine.connect() as conn:
            env = await projects.profile_env_of(conn, self._secrets, profile) if profile else {}
            env.update(await env_sets.environment_for(conn, self._secrets, list(ids)))
        return env
