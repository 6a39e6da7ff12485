"""A turn's end: the checkpoint is taken while the agent's process exits, and recorded with
``turn.completed`` once it has exited (``executor.early_checkpoint.EarlyCheckpoint``), or, when
the agent says only its exit is left (``TurnEnd.exiting``), while it exits; the run's task, and
its next turn, still wait for the exit.

The agent here is a provider of the test's own, registered like a plug-in: its "process exit"
(what its adapter does after yielding ``TurnEnd``) is a wait the test controls, so the order is
checked exactly rather than by timing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from codeyard.agents.base import AdapterItem, AgentFailure, TurnContext, TurnEnd
from codeyard.workspace.git import git
from tests.conftest import Api
from tests.support.plugin_agent import PluginAgent, registered, write

pytestmark = pytest.mark.anyio

NAME = "test-turn-end"


class _Agent(PluginAgent):
    """Writes files in tool calls, ends its turn, then "exits": it waits (at most 30 s) for the
    turn-end checkpoint's ref, and what follows the end is up to ``after``."""

    name = NAME

    def __init__(self) -> None:
        self.after = "exit"
        self.saw_ref = False
        self.exited = False
        #: ``after == "exiting"``: the first turn ends when this is set (0: at once), and its
        #: exit waits for ``leave``.
        self.end = asyncio.Event()
        self.end.set()
        self.leave = asyncio.Event()
        #: Turns whose agent runs now, and the most that ever ran at once.
        self.live = 0
        self.most_live = 0
        #: What the tool call writes into ``last.txt`` (the same each turn: no change).
        self.text = "last.txt"

    async def run_turn(self, ctx: TurnContext) -> AsyncIterator[AdapterItem]:
        self.live += 1
        self.most_live = max(self.most_live, self.live)
        try:
            for item in write(ctx.worktree, "last.txt", "1", self.text):
                yield item
            if self.after == "exiting" and ctx.turn == 1:
                await self.end.wait()
                yield TurnEnd("end_turn", "done", exiting=True)  # its stop has begun
                await asyncio.wait_for(self.leave.wait(), 30)
                return
            yield TurnEnd("end_turn", "done")
            if self.after == "more":  # went on after its end (no agent should; still safe)
                for item in write(ctx.worktree, "later.txt", "2"):
                    yield item
                return
            ref = f"refs/codeyard/{ctx.run_id}/1"
            deadline = asyncio.get_running_loop().time() + 30
            while asyncio.get_running_loop().time() < deadline:
                found = await git("show-ref", "--verify", "-q", ref, cwd=ctx.worktree, check=False)
                if found.returncode == 0:
                    self.saw_ref = True
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)  # the rest of the exit
            if self.after == "fail":
                raise AgentFailure("the agent crashed on its way out")
        finally:
            self.live -= 1
            self.exited = True


@pytest.fixture
def agent() -> Iterator[_Agent]:
    with registered(_Agent()) as found:
        yield found


async def _run(api: Api, repo: Path) -> dict[str, Any]:
    body = {"prompt": "write", "repo_path": str(repo), "provider": NAME}
    resp = await api.post("/api/runs", json=body)
    assert resp.status_code == 201, resp.text
    created: dict[str, Any] = resp.json()
    return created


async def _checkpoint_files(api: Api, run_id: str, repo: Path) -> tuple[int, set[str]]:
    (point,) = (await api.get(f"/api/runs/{run_id}/checkpoints")).json()["data"]
    (commit,) = point["commits"].values()
    listed = await git("ls-tree", "-r", "--name-only", commit, cwd=repo)
    return point["turn"], set(listed.stdout.splitlines())


async def _types(api: Api, run_id: str) -> list[str]:
    resp = await api.get(f"/api/runs/{run_id}/events")
    return [e["type"] for e in resp.json()["data"]]


async def test_checkpoint_is_taken_while_the_agent_exits_and_recorded_after(
    sqlite_api: Api, git_repo: Path, agent: _Agent
) -> None:
    run = await _run(sqlite_api, git_repo)
    done = await sqlite_api.wait_status(run["id"], "review", "failed", timeout=60)
    assert done["status"] == "review", done
    # The checkpoint's git work overlapped the exit (its ref existed before the agent was
    # gone), and the run rests only after the agent has exited.
    assert agent.saw_ref and agent.exited
    turn, files = await _checkpoint_files(sqlite_api, run["id"], git_repo)
    assert turn == 1 and "last.txt" in files  # what the last tool call wrote
    assert done["diff_stats"]["files"] == 1
    types = await _types(sqlite_api, run["id"])
    assert types.index("checkpoint.created") < types.index("turn.completed")
    assert types.count("checkpoint.created") == 1


async def test_an_agent_going_on_after_its_end_is_checkpointed_at_its_exit(
    sqlite_api: Api, git_repo: Path, agent: _Agent
) -> None:
    agent.after = "more"
    run = await _run(sqlite_api, git_repo)
    done = await sqlite_api.wait_status(run["id"], "review", "failed", timeout=60)
    assert done["status"] == "review", done
    _, files = await _checkpoint_files(sqlite_api, run["id"], git_repo)
    assert {"last.txt", "later.txt"} <= files
    assert done["diff_stats"]["files"] == 2


async def test_a_failure_after_the_end_fails_the_turn_with_one_checkpoint(
    sqlite_api: Api, git_repo: Path, agent: _Agent
) -> None:
    agent.after = "fail"
    run = await _run(sqlite_api, git_repo)
    done = await sqlite_api.wait_status(run["id"], "review", "failed", timeout=60)
    assert done["status"] == "failed" and "crashed on its way out" in done["status_reason"]
    assert agent.exited
    _, files = await _checkpoint_files(sqlite_api, run["id"], git_repo)
    assert "last.txt" in files
    types = await _types(sqlite_api, run["id"])
    assert "turn.completed" not in types and types.count("checkpoint.created") == 1


async def test_a_turn_that_changed_nothing_keeps_the_previous_checkpoints_commit(
    sqlite_api: Api, git_repo: Path, agent: _Agent
) -> None:
    """Every turn still has its checkpoint (row, ``checkpoint.created``, ref), but one whose
    files and HEAD are the previous checkpoint's shares its commit: no commit is made."""
    run = await _run(sqlite_api, git_repo)
    await sqlite_api.wait_status(run["id"], "review", "failed", timeout=60)
    for text in ("last.txt", "changed"):  # the same file again, then new content
        agent.text = text
        sent = await sqlite_api.post(f"/api/runs/{run['id']}/messages", json={"text": "again"})
        assert sent.status_code < 300, sent.text
        done = await sqlite_api.wait_status(run["id"], "review", "failed", timeout=60)
        assert done["status"] == "review", done
    points = (await sqlite_api.get(f"/api/runs/{run['id']}/checkpoints")).json()["data"]
    assert [(p["number"], p["turn"]) for p in points] == [(1, 1), (2, 2), (3, 3)]
    first, second, third = (next(iter(p["commits"].values())) for p in points)
    assert second == first and third != first
    assert (
        points[1]["diff_stats"]
        == points[0]["diff_stats"]
        == {
            "files": 1,
            "insertions": 1,
            "deletions": 0,
        }
    )
    for number, commit in ((2, first), (3, third)):
        ref = await git("rev-parse", f"refs/codeyard/{run['id']}/{number}", cwd=git_repo)
        assert ref.stdout == commit
    assert (await git("show", f"{third}:last.txt", cwd=git_repo)).stdout == "changed"
    types = await _types(sqlite_api, run["id"])
    assert types.count("checkpoint.created") == types.count("turn.completed") == 3


async def test_an_end_with_only_the_exit_left_is_recorded_while_the_agent_exits(
    sqlite_api: Api, git_repo: Path, agent: _Agent
) -> None:
    agent.after = "exiting"
    run = await _run(sqlite_api, git_repo)
    executor = sqlite_api.services.executor
    try:
        done = await sqlite_api.wait_status(run["id"], "review", "failed", timeout=20)
        assert done["status"] == "review", done
        # Recorded before the agent's exit, with its checkpoint; the run's task waits on.
        assert not agent.exited and executor.is_live(run["id"])
        turn, files = await _checkpoint_files(sqlite_api, run["id"], git_repo)
        assert turn == 1 and "last.txt" in files
        types = await _types(sqlite_api, run["id"])
        assert types.index("tool.result") < types.index("checkpoint.created")
        assert types.index("checkpoint.created") < types.index("turn.completed")
    finally:
        agent.leave.set()
    await executor.wait_stopped(run["id"])
    assert agent.exited and not executor.is_live(run["id"])


async def test_a_message_to_a_run_whose_agent_still_exits_starts_after_the_exit(
    sqlite_api: Api, git_repo: Path, agent: _Agent
) -> None:
    """The run rests in ``review`` while its agent exits; a message queues it again, and the
    next attempt waits for the old one's task: never two agents in one worktree."""
    agent.after = "exiting"
    run = await _run(sqlite_api, git_repo)
    try:
        await sqlite_api.wait_status(run["id"], "review", "failed", timeout=20)
        sent = await sqlite_api.post(f"/api/runs/{run['id']}/messages", json={"text": "again"})
        assert sent.status_code < 300, sent.text
        await asyncio.sleep(0.3)  # time for a worker to take it, were it not held
        assert agent.live == 1 and not agent.exited
    finally:
        agent.leave.set()
    done = await sqlite_api.wait_status(run["id"], "review", "failed", timeout=20)
    while done["turns"] < 2 or sqlite_api.services.executor.is_live(run["id"]):
        await asyncio.sleep(0.02)
        done = await sqlite_api.wait_status(run["id"], "review", "failed", timeout=20)
    assert done["status"] == "review" and done["turns"] == 2, done
    assert agent.most_live == 1
    types = await _types(sqlite_api, run["id"])
    assert types.count("turn.completed") == types.count("checkpoint.created") == 2


async def test_a_message_queued_in_the_turn_starts_the_next_turn_after_the_exit(
    sqlite_api: Api, git_repo: Path, agent: _Agent
) -> None:
    """The end recorded while the agent exits starts the next turn at once (a message came
    during the turn); the next turn's agent starts once the old one is gone."""
    agent.after = "exiting"
    agent.end.clear()
    run = await _run(sqlite_api, git_repo)
    try:
        await sqlite_api.wait_status(run["id"], "running", timeout=20)
        sent = await sqlite_api.post(f"/api/runs/{run['id']}/messages", json={"text": "more"})
        assert sent.status_code < 300, sent.text
        agent.end.set()
        async with asyncio.timeout(20):
            while "turn.completed" not in await _types(sqlite_api, run["id"]):
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # time for the next turn's agent to start, were it not held
        assert agent.live == 1 and not agent.exited
    finally:
        agent.leave.set()
    done = await sqlite_api.wait_status(run["id"], "review", "failed", timeout=20)
    assert done["status"] == "review" and done["turns"] == 2, done
    assert agent.most_live == 1
