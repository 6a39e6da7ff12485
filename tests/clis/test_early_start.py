"""A new run's agent starts as soon as its worktrees exist, while its preparation and its turn's
start are written (``executor.preparation``): the real CLIs against the fake model server — Codex's
app-server, an ACP agent (Gemini CLI) and Claude Code.

The start is held here (``Preparer.record_start``) until the CLI runs in the worktree, which
shows that it was started before the turn was recorded. Nothing of the turn is stored before the
turn's start; an agent whose turn is cancelled meanwhile, or whose start cannot be written, is
stopped with everything it started, and nothing of the run is lost or left behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from codeyard.executor.handle import RunHandle
from codeyard.executor.preparation import Preparer
from codeyard.store.fencing import StaleAttempt
from codeyard.testing.fake_llm import FakeLLM, Reply
from tests.clis import acp_cases, support
from tests.clis import acp_support as acp
from tests.clis.agent_cases import CLAUDE_CODE, CODEX, AgentCase
from tests.conftest import Api

pytestmark = pytest.mark.anyio

CASES = [CODEX, acp_cases.GEMINI, CLAUDE_CODE]
#: What each CLI's command line holds (the tree's own git processes run there too).
NEEDLES = {"codex": "app-server", "gemini": "gemini", "claude-code": "claude"}

Record = Callable[[Preparer, RunHandle, dict[str, Any]], Awaitable[None]]


@pytest.fixture(params=CASES, ids=[c.name for c in CASES])
def case(request: pytest.FixtureRequest) -> AgentCase:
    found: AgentCase = request.param
    acp.require(found.provider())
    return found


class _Held:
    """Holds the turn's start until the agent's CLI runs in the run's worktree, then until
    ``release`` (or fails it, with ``fail``)."""

    def __init__(self, case: AgentCase, fail: Callable[[str], BaseException] | None = None) -> None:
        self.real: Record = Preparer.record_start
        self.needle = NEEDLES[case.name]
        self.fail = fail
        self.tree: Path | None = None
        self.cli_runs = asyncio.Event()
        self.release = asyncio.Event()

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        async def record(preparer: Preparer, handle: RunHandle, run: dict[str, Any]) -> None:
            self.tree = Path(next(iter(run["worktrees"].values())))
            await support.wait_for_process(self.tree, self.needle)
            self.cli_runs.set()
            if self.fail is not None:
                raise self.fail(handle.run_id)
            await self.release.wait()
            await self.real(preparer, handle, run)

        monkeypatch.setattr(Preparer, "record_start", record)


async def _start(
    api: Api, case: AgentCase, repo: Path, fake: FakeLLM, home: Path, held: _Held
) -> dict[str, Any]:
    opts = case.options(fake, home, permission_mode="auto")
    run = await acp.create(api, repo, case.name, case.model, opts, "Say hi")
    with anyio.fail_after(support.WAIT):
        await held.cli_runs.wait()
    return run


async def test_the_cli_starts_before_the_turn_is_recorded_and_its_events_follow(
    case: AgentCase,
    sqlite_api: Api,
    git_repo: Path,
    fake: FakeLLM,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api = sqlite_api
    fake.script([Reply(text="Hi there.")])
    held = _Held(case)
    held.install(monkeypatch)
    run = await _start(api, case, git_repo, fake, tmp_path / "home", held)
    try:  # the CLI runs; its turn is not stored yet, and nothing of it is
        assert (await api.get(f"/api/runs/{run['id']}")).json()["status"] == "preparing"
        types = [e["type"] for e in await support.events(api, run["id"])]
        assert "turn.started" not in types and "agent.session" not in types, types
    finally:
        held.release.set()
    done = await api.wait_status(run["id"], "review", "failed", timeout=support.WAIT)
    assert done["status"] == "review", done
    assert done["worktrees"] and done["branch"] and done["turns"] == 1

    seen = await support.events(api, run["id"])
    types = [e["type"] for e in seen]
    started = types.index("turn.started")
    # The preparation and the turn's start, then everything the agent said.
    statuses = [e["data"]["to"] for e in seen[:started] if e["type"] == "run.status"]
    assert statuses[-2:] == ["preparing", "running"], types
    assert "agent.session" in types[started:] and "agent.session" not in types[:started]
    assert [e["data"]["text"] for e in seen if e["type"] == "agent.message"] == ["Hi there."]
    await api.services.executor.wait_stopped(run["id"])  # the CLI may exit after the end
    assert held.tree is not None and support.processes_in(held.tree) == []


async def test_a_run_cancelled_while_its_cli_starts_leaves_no_process(
    case: AgentCase,
    sqlite_api: Api,
    git_repo: Path,
    fake: FakeLLM,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api = sqlite_api
    fake.script([Reply(text="Never asked.")])
    held = _Held(case)
    held.install(monkeypatch)
    run = await _start(api, case, git_repo, fake, tmp_path / "home", held)
    assert held.tree is not None
    # The cancel returns once the run's task has ended, which waits for the turn's start.
    cancelling = asyncio.ensure_future(api.post(f"/api/runs/{run['id']}/cancel"))
    try:
        with anyio.fail_after(30):  # the CLI is stopped first, its turn not yet recorded
            while any(NEEDLES[case.name] in cmd for _, cmd in support.processes_in(held.tree)):
                await anyio.sleep(0.05)  # a process table to poll: nothing to wait on
    finally:
        held.release.set()  # the start is written, then the run lands where the cancel put it
    with anyio.fail_after(30):
        resp = await cancelling
        assert resp.status_code == 200, resp.text
        await api.wait_status(run["id"], "cancelled", timeout=30)
    assert support.processes_in(held.tree) == []
    # Codex and ACP agents get the prompt only after the turn is recorded (Claude Code at once).
    assert fake.model_calls() == [] or case.name == "claude-code"
    done = (await api.get(f"/api/runs/{run['id']}")).json()
    assert done["worktrees"] and Path(next(iter(done["worktrees"].values()))).is_dir()


async def test_a_cli_whose_turn_start_cannot_be_written_is_stopped(
    case: AgentCase,
    sqlite_api: Api,
    git_repo: Path,
    fake: FakeLLM,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another attempt took the run over (a failover's fence): this one's CLI goes, and the
    run is left as the preparation's intent says, for the attempt that owns it."""
    api = sqlite_api
    fake.script([Reply(text="Never asked.")])
    held = _Held(case, fail=lambda run_id: StaleAttempt(run_id, 1, 2))
    held.install(monkeypatch)
    run = await _start(api, case, git_repo, fake, tmp_path / "home", held)
    with anyio.fail_after(30):
        await api.services.executor.wait_stopped(run["id"])
    assert held.tree is not None and support.processes_in(held.tree) == []
    row = (await api.get(f"/api/runs/{run['id']}")).json()
    assert row["status"] == "preparing" and not row["worktrees"]
    types = [e["type"] for e in await support.events(api, run["id"])]
    assert "turn.started" not in types and "agent.session" not in types, types
