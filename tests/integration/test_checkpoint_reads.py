"""What a checkpoint reads before its git work (issue 15): the run's last checkpoint and, for a
fenced attempt, the run's attempt, in one statement (it was every checkpoint of the run, then
the run). Real app on SQLite and PostgreSQL, real git, the script agent.
"""

from __future__ import annotations

import pytest

from codeyard.run_workspace import checkpointing
from codeyard.store import checkpoints, fencing, runs
from tests.conftest import Api
from tests.integration.test_fencing_side_effects import _reviewed_run
from tests.support.sql import statements

pytestmark = pytest.mark.anyio


def _reads(sql: str) -> bool:
    """Reads of the run's checkpoints or row before the writer's job (not its own: PostgreSQL's
    locks, the run's numbering). Only those tables: the app's background tasks (consumers,
    deliveries) read others at any moment, one of theirs can fall inside the window (the test
    failed twice under load, with no change of its own)."""
    return (
        sql.lstrip().upper().startswith("SELECT")
        and not any(mark in sql for mark in ("FOR UPDATE", "_lock("))
        and any(table in sql for table in ("checkpoints", "runs"))
    )


async def test_a_checkpoint_reads_its_number_and_attempt_in_one_statement(
    api: Api, git_repo: object
) -> None:
    engine, writer = api.services.engine, api.services.writer
    run = await _reviewed_run(api, git_repo)  # type: ignore[arg-type]
    async with engine.connect() as conn:
        made = await checkpoints.of_run(conn, run["id"])  # the turn end's
        last, attempt = await checkpoints.last_and_attempt(conn, run["id"])
        assert await checkpoints.last_and_attempt(conn, "run_none") == (None, None)
    assert last == {"number": made[-1]["number"], "commits": made[-1]["commits"]}
    assert attempt == run["attempt"]

    with fencing.acting_for(run), statements(engine, _reads) as sent:
        row = await checkpointing.take_checkpoint(engine, writer, run, "manual", "one read")
    assert row["number"] == made[-1]["number"] + 1
    assert len(sent) == 1, sent  # the last checkpoint and the attempt

    # Another host took the run meanwhile: no git work, no row.
    await writer.run(lambda tx: runs.begin_attempt(tx, run["id"]))
    with fencing.acting_for(run), pytest.raises(fencing.StaleAttempt):
        await checkpointing.take_checkpoint(engine, writer, run, "manual", "stale")
    async with engine.connect() as conn:
        assert [c["number"] for c in await checkpoints.of_run(conn, run["id"])][-1] == row["number"]
