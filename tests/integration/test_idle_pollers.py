"""An idle server reads neither the port leases nor the workflow log every second (issue 15).

The preview port watcher keeps the leases in memory and the workflow approval notifier waits:
both are woken by ``store.wakeups`` when what they follow is written, by this process or, on
PostgreSQL, by another one (its ``NOTIFY`` is heard on the ``LISTEN`` connection). Real parts:
the app over httpx on SQLite and PostgreSQL; the SQL counted with SQLAlchemy's own
``before_cursor_execute`` event.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractContextManager

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from codeyard.domain.events import utc_now
from codeyard.preview import leases
from codeyard.store import schema, wakeups
from codeyard.store.db import create_engine
from tests.conftest import Api
from tests.support.sql import statements

pytestmark = pytest.mark.anyio


#: The watcher's read of every lease, and the notifier's look at the log.
LEASES = "SELECT port_leases.run_id, port_leases.base_port, port_leases.size"
LOG = "SELECT max(workflow_events.id)"


def reads_of(engine: AsyncEngine, start: str) -> AbstractContextManager[list[str]]:
    return statements(engine, lambda sql: sql.startswith(start) and "WHERE" not in sql)


async def until(condition: object, what: str, timeout: float = 30) -> None:
    async def wait() -> None:
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.02)

    try:
        await asyncio.wait_for(wait(), timeout)
    except TimeoutError:
        raise AssertionError(f"{what} within {timeout} s") from None


async def _started(api: Api) -> None:
    """The background features run (the notifier is a singleton: after the election)."""
    assert (await api.get("/api/health")).status_code == 200

    def running() -> bool:
        subscribers = getattr(api.app.state, "subscribers", None)
        return (
            subscribers is not None
            and subscribers.notifications.workflow_notifier._task is not None
        )

    await until(running, "the workflow notifier started")
    await asyncio.sleep(1.5)  # the start's own reads are done


async def test_an_idle_server_reads_the_leases_and_the_workflow_log_only_when_woken(
    api: Api, database_url: str
) -> None:
    await _started(api)
    engine = api.services.engine
    with (
        reads_of(engine, LEASES) as lease_reads,
        reads_of(engine, LOG) as log_reads,
    ):
        await asyncio.sleep(2.5)  # they read every second before
    assert lease_reads == [] and log_reads == []

    # A lease taken here is read at once and at the next look, then no more.
    with reads_of(engine, LEASES) as lease_reads:
        lease = await leases.ensure(api.services.writer, "run_one")
        await until(lambda: len(lease_reads) >= 2, "the watcher read the new lease")
        await asyncio.sleep(2.5)
    assert len(lease_reads) == 2

    # An approval request written by this process wakes the notifier (its look: max(id)).
    with reads_of(engine, LOG) as log_reads:
        wakeups.wake(engine, wakeups.WORKFLOW_APPROVALS)
        await until(lambda: len(log_reads) >= 1, "the notifier looked at the log")

    if not database_url.startswith("postgresql"):
        return
    # Another API server's writes wake this one through its LISTEN connection.
    other = create_engine(database_url)
    try:
        with reads_of(engine, LEASES) as lease_reads:
            async with other.begin() as conn:
                await conn.execute(
                    schema.port_leases.insert().values(
                        run_id="run_two",
                        base_port=lease.base_port + leases.BLOCK,
                        size=10,
                        created_at=utc_now(),
                    )
                )
                await wakeups.announce(conn, wakeups.PORT_LEASES)
            await until(lambda: len(lease_reads) >= 1, "the other server's lease was read")
        with reads_of(engine, LOG) as log_reads:
            async with other.begin() as conn:
                await wakeups.announce(conn, wakeups.WORKFLOW_APPROVALS)
            await until(lambda: len(log_reads) >= 1, "the other server's request was heard")
    finally:
        await other.dispose()
