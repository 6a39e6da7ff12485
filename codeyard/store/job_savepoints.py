"""A job's own rollback point in a writer batch of several (``store.writer``).

Each job of a batch of several runs under a savepoint, so one failing job rolls back alone. On
SQLite each ``SAVEPOINT`` and ``RELEASE`` was a trip of its own to the driver's thread (two per
job, ~60 us of the event loop's CPU each, and more jobs share a batch the more runs are busy).
Here they go with the next statement instead (``sqlite_driver.LateBeginConnection.later``): the
``SAVEPOINT`` with the job's first statement, the ``RELEASE`` with the next job's first or the
batch's last trip. A job that sent nothing takes its ``SAVEPOINT`` back (nothing to release or
roll back); a job that failed after sending rolls back to it at once, as before. The order of
statements in the transaction is unchanged. PostgreSQL (and any other driver) sends them as
statements, as before.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from codeyard.store.sqlite_driver import LateBeginConnection
from codeyard.store.statement import Statement

_SAVEPOINT_SQL = "SAVEPOINT codeyard_job"
_RELEASE_SQL = "RELEASE SAVEPOINT codeyard_job"
_SAVEPOINT: Statement[tuple[()]] = Statement(text(_SAVEPOINT_SQL))
_RELEASE_SAVEPOINT: Statement[tuple[()]] = Statement(text(_RELEASE_SQL))
_ROLLBACK_TO_SAVEPOINT: Statement[tuple[()]] = Statement(text("ROLLBACK TO SAVEPOINT codeyard_job"))


class JobSavepoints:
    """The savepoints of one batch's jobs on ``conn`` (one object per batch)."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self._late: LateBeginConnection | None = None
        self._looked = False

    async def _driver(self) -> LateBeginConnection | None:
        if not self._looked:
            self._looked = True
            if self._conn.dialect.driver == "aiosqlite":
                driver = (await self._conn.get_raw_connection()).driver_connection
                if isinstance(driver, LateBeginConnection):
                    self._late = driver
        return self._late

    async def open(self) -> None:
        """Before a job: its rollback point."""
        late = await self._driver()
        if late is None:
            await _SAVEPOINT.run(self._conn)
        else:
            late.later(_SAVEPOINT_SQL)

    async def release(self) -> None:
        """The job succeeded: its rollback point is released."""
        late = await self._driver()
        if late is None:
            await _RELEASE_SAVEPOINT.run(self._conn)
        elif not late.take_back(_SAVEPOINT_SQL):  # it sent nothing: nothing to release
            late.later(_RELEASE_SQL)

    async def roll_back(self) -> None:
        """The job failed: what it sent is undone (the batch's other jobs' stays)."""
        late = await self._driver()
        if late is not None and late.take_back(_SAVEPOINT_SQL):  # it sent nothing
            return
        await _ROLLBACK_TO_SAVEPOINT.run(self._conn)
