"""An agent's possible last words (``Concluding``): the turn-end checkpoint's git work begins
then, before the agent reports its turn's end, and a tool call after them drops that work so
the checkpoint still holds what the turn left.

The agent is a provider of the test's own, registered like a plug-in: after ``Concluding`` it
waits for the checkpoint's ref before it goes on, so the order is checked exactly rather than
by timing (without the early start the ref appears only after ``TurnEnd``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from codeyard.agents.base import AdapterItem, Concluding, TurnContext, TurnEnd
from codeyard.domain.events import AgentMessage
from codeyard.workspace.git import git
from tests.conftest import Api
from tests.support.plugin_agent import PluginAgent, registered, write

pytestmark = pytest.mark.anyio

NAME = "test-concluding"
#: Seconds the agent waits for the checkpoint's ref before it gives up and goes on.
REF_WAIT = 15.0


class _Agent(PluginAgent):
    """Writes ``first.txt``, says it is concluding, waits for checkpoint 1's ref; then, with
    ``more``, writes ``later.txt`` in another tool call; then ends its turn."""

    name = NAME

    def __init__(self) -> None:
        self.more = False
        self.saw_ref: bool | None = None

    async def run_turn(self, ctx: TurnContext) -> AsyncIterator[AdapterItem]:
        for item in write(ctx.worktree, "first.txt", "1"):
            yield item
        yield Concluding()
        self.saw_ref = await _ref_appears(ctx.worktree, f"refs/codeyard/{ctx.run_id}/1")
        if self.more:  # it went on with a tool after all
            for item in write(ctx.worktree, "later.txt", "2"):
                yield item
        yield AgentMessage(message_id="m1", text="done")
        yield TurnEnd("end_turn", "done")


async def _ref_appears(worktree: Path, ref: str) -> bool:
    deadline = asyncio.get_running_loop().time() + REF_WAIT
    while asyncio.get_running_loop().time() < deadline:
        found = await git("show-ref", "--verify", "-q", ref, cwd=worktree, check=False)
        if found.returncode == 0:
            return True
        await asyncio.sleep(0.05)
    return False


@pytest.fixture
def agent() -> Iterator[_Agent]:
    with registered(_Agent()) as found:
        yield found


async def _finished(api: Api, repo: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A run of the agent, once it rests, and its checkpoints."""
    body = {"prompt": "write", "repo_path": str(repo), "provider": NAME}
    resp = await api.post("/api/runs", json=body)
    assert resp.status_code == 201, resp.text
    run_id = resp.json()["id"]
    done = await api.wait_status(run_id, "review", "failed", timeout=60)
    assert done["status"] == "review", done
    points = (await api.get(f"/api/runs/{run_id}/checkpoints")).json()["data"]
    return done, points


async def _files(repo: Path, point: dict[str, Any]) -> set[str]:
    (commit,) = point["commits"].values()
    listed = await git("ls-tree", "-r", "--name-only", commit, cwd=repo)
    return set(listed.stdout.splitlines())


async def test_the_checkpoint_begins_at_the_agents_last_words(
    sqlite_api: Api, git_repo: Path, agent: _Agent
) -> None:
    done, points = await _finished(sqlite_api, git_repo)
    assert agent.saw_ref is True  # committed before the agent reported its turn's end
    (point,) = points
    assert point["turn"] == 1 and "first.txt" in await _files(git_repo, point)
    assert done["diff_stats"]["files"] == 1
    events = (await sqlite_api.get(f"/api/runs/{done['id']}/events")).json()["data"]
    types = [e["type"] for e in events]
    assert types.count("checkpoint.created") == 1
    assert types.index("checkpoint.created") < types.index("turn.completed")


async def test_a_tool_call_after_the_last_words_is_in_the_checkpoint(
    sqlite_api: Api, git_repo: Path, agent: _Agent
) -> None:
    agent.more = True
    done, points = await _finished(sqlite_api, git_repo)
    (point,) = points  # the one begun early was dropped, not recorded
    assert point["number"] == 1
    assert {"first.txt", "later.txt"} <= await _files(git_repo, point)
    assert done["diff_stats"]["files"] == 2
    (commit,) = point["commits"].values()
    ref = await git("rev-parse", f"refs/codeyard/{done['id']}/1", cwd=git_repo)
    assert ref.stdout == commit  # the dropped one's ref was moved to the recorded commit
