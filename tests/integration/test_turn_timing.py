"""A turn's milestones for the overhead bench (``codeyard.agents.timing``): a real run of the
script agent, whose ``bash`` step is a real process started the way agent CLIs are.

``bench/overhead.py`` splits a run's time by these lines, so they must name the right run, come
in the turn's order, and cost nothing (write nothing) unless their logger is at DEBUG.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from codeyard.agents import timing
from tests.conftest import Api
from tests.support.timing_log import TimingLines, timing_lines

pytestmark = pytest.mark.anyio


@pytest.fixture
def lines() -> Iterator[TimingLines]:
    """The timing logger's lines, at DEBUG while the test runs."""
    with timing_lines() as handler:
        yield handler


async def _run(api: Api, repo: Path, steps: list[dict[str, Any]]) -> str:
    body = {
        "prompt": "timed",
        "repo_path": str(repo),
        "provider": "script",
        "agent_options": {"scenario": {"steps": steps}},
    }
    resp = await api.post("/api/runs", json=body)
    assert resp.status_code == 201, resp.text
    run_id: str = resp.json()["id"]
    done = await api.wait_status(run_id, "review", "failed", timeout=60)
    assert done["status"] == "review", done
    return run_id


def _marks(lines: list[str], run_id: str) -> list[tuple[str, float]]:
    out = []
    for line in lines:
        run, _, rest = line.partition(" ")
        what, _, at = rest.rpartition(" ")
        if run == run_id:
            out.append((what, float(at)))
    return out


async def test_a_turns_milestones_come_in_order_for_its_run(
    sqlite_api: Api, git_repo: Path, lines: TimingLines
) -> None:
    first = await _run(sqlite_api, git_repo, [{"bash": "echo one"}, {"say": "done"}])
    second = await _run(sqlite_api, git_repo, [{"say": "no process"}])
    marks = _marks(lines.lines, first)
    names = [m for m, _ in marks]
    # The bash step's process (its chain's first program) between the turn's start and end.
    spawn = next((m for m in names if m.startswith("spawn ")), None)
    assert spawn is not None, names
    order = [names.index(m) for m in ("prepared", "turn", spawn, "turn end", "agent done")]
    assert order == sorted(order) and order[0] == 0, names
    times = [at for _, at in marks]
    assert times == sorted(times)
    # The second run started no process: its lines are its own (none of the first's).
    second_marks = [m for m, _ in _marks(lines.lines, second)]
    assert second_marks == ["prepared", "turn", "turn end", "agent done"]


async def test_nothing_is_written_unless_the_logger_is_at_debug(
    sqlite_api: Api, git_repo: Path
) -> None:
    with timing_lines(debug=False) as handler:
        assert not logging.getLogger(timing.LOGGER).isEnabledFor(logging.DEBUG)
        await _run(sqlite_api, git_repo, [{"bash": "echo one"}])
    assert handler.lines == []


async def test_each_task_marks_for_its_own_run(lines: TimingLines) -> None:
    async def turn(run_id: str, gate: asyncio.Event) -> None:
        timing.for_run(run_id)
        timing.mark("turn")
        await gate.wait()
        timing.mark("turn end")

    gate = asyncio.Event()
    tasks = [asyncio.ensure_future(turn(r, gate)) for r in ("run_a", "run_b")]
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(*tasks)
    timing.mark("outside any run")  # this task names no run: nothing is written
    assert sorted(line.rsplit(" ", 1)[0] for line in lines.lines) == [
        "run_a turn",
        "run_a turn end",
        "run_b turn",
        "run_b turn end",
    ]
