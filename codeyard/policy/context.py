"""Everything the policy engine needs for one run, read from storage.

Rules come from the policy sets assigned to the run, its agent profile and its project (in that
order, so ties in priority go to the most specific), plus rules an operator remembered for the
run. The engine then orders them by priority.

What :func:`build` reads besides the run (its agent profile and policy rows: two statements or
more per tool call that reaches a decision) is kept in memory while this process hears every
write of them (``store.wakeups``: each write of a policy, policy set, project or agent profile
announces ``POLICIES``, here and to other servers through PostgreSQL); every announcement drops
all of it (issue 15). The agent profile and the sets' policies are kept by the run's sets,
agent and project (runs alike share them); run-scoped policies by run, and not read at all
while no policy is scoped to any run.
"""

from __future__ import annotations

import json
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from codeyard.domain.errors import NotFound
from codeyard.domain.policy import (
    CompiledPolicies,
    GateSettings,
    PermissionMode,
    Policy,
    PolicyContext,
    compile_policies,
    parse_rules,
)
from codeyard.store import policies, projects, wakeups
from codeyard.store import settings as settings_store

MODES = ("default", "plan", "auto")


async def assigned_set_ids(conn: AsyncConnection, run: dict[str, Any]) -> list[str]:
    ids: list[str] = list(run.get("policy_set_ids") or [])
    if run.get("agent_id"):
        try:
            agent = await projects.get_agent(conn, run["agent_id"])
            ids += list(agent["policy_set_ids"] or [])
        except NotFound:  # a deleted profile contributes no sets
            pass
    project = await projects.get_project(conn, run["project_id"])
    ids += list(project.get("policy_set_ids") or [])
    return list(dict.fromkeys(ids))


async def set_rows(conn: AsyncConnection, run: dict[str, Any]) -> list[dict[str, Any]]:
    """The policies of the sets assigned to the run, its agent profile and its project, in
    that order (a policy in two sets once)."""
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for policy_set in await policies.sets_by_ids(conn, await assigned_set_ids(conn, run)):
        for row in await policies.policies_by_ids(conn, list(policy_set["policy_ids"])):
            if row["id"] not in seen:
                rows.append(row)
                seen.add(row["id"])
    return rows


def _merged(
    run_scoped: list[dict[str, Any]], from_sets: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    seen = {r["id"] for r in run_scoped}
    return [*run_scoped, *(r for r in from_sets if r["id"] not in seen)]


async def policy_rows(conn: AsyncConnection, run: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's policies, most specific first (run-remembered, run, agent, project sets)."""
    return _merged(await policies.run_scoped_policies(conn, run["id"]), await set_rows(conn, run))


def to_policy(row: dict[str, Any]) -> Policy:
    rules = parse_rules(row["rules"], policy=row["name"])
    return Policy(row["id"], row["name"], rules, bool(row["enabled"]), int(row["priority"]))


_compiled: OrderedDict[str, CompiledPolicies] = OrderedDict()
_CACHE_SIZE = 64


async def compiled_for(conn: AsyncConnection, run: dict[str, Any]) -> CompiledPolicies:
    """Compiled rules, cached by their content (compiling 1,000 rules takes ~0.1 s; deciding
    with them well under 1 ms)."""
    return _compiled_rows(await policy_rows(conn, run))


def _compiled_rows(rows: list[dict[str, Any]]) -> CompiledPolicies:
    key = json.dumps([[r["id"], r["enabled"], r["priority"], r["rules"]] for r in rows])
    if key in _compiled:
        _compiled.move_to_end(key)
        return _compiled[key]
    compiled = compile_policies(to_policy(r) for r in rows)
    _compiled[key] = compiled
    if len(_compiled) > _CACHE_SIZE:
        _compiled.popitem(last=False)
    return compiled


def permission_mode(
    run: dict[str, Any], agent: dict[str, Any] | None, default: str
) -> PermissionMode:
    mode = (agent or {}).get("permission_mode") if agent else None
    mode = run["agent_options"].get("permission_mode") or mode or default
    return cast(PermissionMode, mode if mode in MODES else "default")


@dataclass(frozen=True, slots=True)
class _Shared:
    """What runs with the same sets, agent profile and project read alike."""

    agent: dict[str, Any] | None
    rows: list[dict[str, Any]]


async def _shared(conn: AsyncConnection, run: dict[str, Any]) -> _Shared:
    agent = None
    if run.get("agent_id"):
        try:
            agent = await projects.get_agent(conn, run["agent_id"])
        except NotFound:  # a deleted profile: fall back to the defaults
            agent = None
    return _Shared(agent, await set_rows(conn, run))


@dataclass(slots=True)
class _Kept:
    """One engine's kept reads (the least recently used go first past :data:`_KEPT`)."""

    #: (the run's sets, agent, project) -> its agent profile and its sets' policies.
    shared: OrderedDict[tuple[Any, ...], _Shared] = field(default_factory=OrderedDict)
    #: Whether any policy is scoped to a run (an operator's "remember for this run").
    any_run_scoped: bool | None = None
    #: Run id -> its run-scoped policies (kept only while some exist).
    run_scoped: OrderedDict[str, list[dict[str, Any]]] = field(default_factory=OrderedDict)
    #: Moves on at every announcement: a read that saw it move while it ran keeps nothing.
    generation: int = 0

    def drop(self) -> None:
        self.generation += 1
        self.shared.clear()
        self.any_run_scoped = None
        self.run_scoped.clear()


_kept: weakref.WeakKeyDictionary[Engine, _Kept] = weakref.WeakKeyDictionary()
_KEPT = 4096


def _kept_of(engine: AsyncEngine) -> _Kept:
    kept = _kept.get(engine.sync_engine)
    if kept is None:
        kept = _kept[engine.sync_engine] = _Kept()
        wakeups.follow(engine, wakeups.POLICIES, kept.drop)
    return kept


def _keep(kept: OrderedDict[Any, Any], key: Any, value: Any) -> None:
    kept[key] = value
    if len(kept) > _KEPT:
        kept.popitem(last=False)


async def _reads(
    conn: AsyncConnection, run: dict[str, Any]
) -> tuple[_Shared, list[dict[str, Any]]]:
    """The run's agent profile, its sets' policies and its run-scoped policies: kept while
    every write of them is heard (see the module), else read. What is read to be kept is read
    on a connection of its own, so that it sees every commit so far (``conn``'s snapshot may
    be older than the last announcement)."""
    engine = conn.engine
    if not wakeups.hearing(engine):
        return await _shared(conn, run), await policies.run_scoped_policies(conn, run["id"])
    kept = _kept_of(engine)
    key = (tuple(run.get("policy_set_ids") or ()), run.get("agent_id"), run["project_id"])
    shared = kept.shared.get(key)
    run_scoped = kept.run_scoped.get(run["id"])
    if kept.any_run_scoped is False:
        run_scoped = []
    if shared is not None and run_scoped is not None:
        kept.shared.move_to_end(key)
        return shared, run_scoped
    generation = kept.generation
    async with engine.connect() as own:
        any_run_scoped = kept.any_run_scoped
        if any_run_scoped is None:
            any_run_scoped = await policies.any_run_scoped(own)
        if shared is None:
            shared = await _shared(own, run)
        if run_scoped is None:
            run_scoped = (
                await policies.run_scoped_policies(own, run["id"]) if any_run_scoped else []
            )
    if wakeups.hearing(engine) and kept.generation == generation:
        kept.any_run_scoped = any_run_scoped
        _keep(kept.shared, key, shared)
        if any_run_scoped:
            _keep(kept.run_scoped, run["id"], run_scoped)
    return shared, run_scoped


async def build(
    conn: AsyncConnection, run: dict[str, Any], default_mode: str, private: tuple[str, ...] = ()
) -> PolicyContext:
    """The run's policy context; ``private``: the data directory (the read gate's roots)."""
    shared, run_scoped = await _reads(conn, run)
    agent = shared.agent
    stored = await settings_store.load(conn)
    worktree = next(iter(run["worktrees"].values()), None) or str(Path.cwd())
    return PolicyContext(
        worktree=worktree,
        policies=_compiled_rows(_merged(run_scoped, shared.rows)),
        trusted=bool(run.get("trusted")),
        permission_mode=permission_mode(run, agent, default_mode),
        gates=GateSettings.from_mapping(stored.get("gates")),
        private=private,
        own=tuple(str(p) for p in (run["worktrees"] or {}).values()),
    )
