"""Stored settings: key → JSON value. Keys not stored fall back to the configured defaults.

One row per key (not one wide row) so that a setting added later needs no migration, and a PUT
that changes one value touches one row.

Settings are read several times per run (each tool call's policy gates and budget caps, the
approval timeout, the sandbox mode at each turn) and written by an admin now and then, so a
server keeps them in memory (issue 15): :func:`load` reads the table once and then answers
from the copy, and :func:`save`, the one door for writes, drops the copy once its write has
committed. A copy is kept only for an engine whose every write this process hears of
(:func:`hear_writes`): on SQLite the server process (the one writer) says so at start; on
PostgreSQL, where several API servers and workers share the database, :func:`save` announces
each write with ``NOTIFY`` on :data:`NOTIFY_CHANNEL` and the process's ``LISTEN`` connection
(``events.pg_fanout``) drops the copy when it hears one, and stops the caching while it is not
listening. Another process's write is then seen once its announcement arrives (milliseconds
after its commit). A process that listens for nothing (a worker host, a script) reads the
table every time, as before.
"""

from __future__ import annotations

import asyncio
import copy
import weakref
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from codeyard.domain.events import utc_now
from codeyard.store import schema
from codeyard.store.writer import Tx, Writer

T = schema.settings

#: The PostgreSQL channel on which every committed settings write is announced.
NOTIFY_CHANNEL = "codeyard_settings"


@dataclass(slots=True)
class _Copy:
    """One engine's settings as last read, and what makes that read stale."""

    #: This process hears of every write (:func:`hear_writes`): only then is a copy kept.
    hearing: bool = False
    values: dict[str, Any] | None = None
    #: Moves on at every write begun or ended and every announcement heard: a read that saw
    #: it move while it ran keeps nothing.
    generation: int = 0
    #: Writes of this process not yet committed (or failed): no copy is kept meanwhile.
    writing: int = 0

    def drop(self) -> None:
        self.generation += 1
        self.values = None


_copies: weakref.WeakKeyDictionary[Engine, _Copy] = weakref.WeakKeyDictionary()


def _copy_of(engine: Engine) -> _Copy:
    kept = _copies.get(engine)
    if kept is None:
        kept = _copies[engine] = _Copy()
    return kept


def hear_writes(engine: AsyncEngine, hearing: bool = True) -> None:
    """Whether this process hears of every write to ``engine``'s settings (its own through
    :func:`save`, others' through :func:`changed`): only then are they kept in memory. Either
    way the copy kept so far is dropped."""
    kept = _copy_of(engine.sync_engine)
    kept.hearing = hearing
    kept.drop()


def changed(engine: AsyncEngine) -> None:
    """Another process wrote the settings (its announcement was heard): read them again.

    The listener skips this process's own announcements (named by its writer's token): its
    own write already dropped the copy at commit, and the late echo would drop the copy read
    after it for nothing."""
    _copy_of(engine.sync_engine).drop()


async def load(conn: AsyncConnection) -> dict[str, Any]:
    """Every stored setting (absent keys are simply missing): the caller's own copy.

    What a read finds is kept only if the read began its connection's transaction (an older
    transaction may see the table as it was before a write that committed since) and nothing
    was written or announced while it ran."""
    kept = _copy_of(conn.sync_engine)
    if kept.values is not None:
        return copy.deepcopy(kept.values)
    keep = kept.hearing and not kept.writing and not conn.in_transaction()
    generation = kept.generation
    rows = (await conn.execute(select(T.c.key, T.c.value))).all()
    values = {row.key: row.value for row in rows}
    if keep and not kept.writing and kept.generation == generation:
        kept.values = copy.deepcopy(values)
    return values


async def read(engine: AsyncEngine) -> dict[str, Any]:
    """:func:`load` for a caller with no connection of its own: none is taken when a copy is
    kept (a pool check-out and its reset cost more than the read)."""
    kept = _copy_of(engine.sync_engine)
    if kept.values is not None:
        return copy.deepcopy(kept.values)
    async with engine.connect() as conn:
        return await load(conn)


async def save(writer: Writer, values: dict[str, Any]) -> None:
    """Store ``values`` (insert or replace each key) in a writer job of its own; the kept copy
    is dropped before the job runs and again once it has committed (or failed)."""
    kept = _copy_of(writer.engine.sync_engine)
    kept.writing += 1
    kept.drop()

    async def job(tx: Tx) -> None:
        now = utc_now()
        for key, value in values.items():
            await tx.conn.execute(delete(T).where(T.c.key == key))
            await tx.conn.execute(T.insert().values(key=key, value=value, updated_at=now))
        if tx.conn.dialect.name == "postgresql":  # delivered to the listeners at commit
            await tx.conn.execute(  # named, so that this process ignores its own
                text("SELECT pg_notify(:channel, :token)"),
                {"channel": NOTIFY_CHANNEL, "token": writer.token},
            )

    def written(done: asyncio.Future[None]) -> None:
        kept.writing -= 1
        kept.drop()
        if not done.cancelled():
            done.exception()  # retrieved: a caller cancelled meanwhile is not told

    # The write goes on if the caller is cancelled; the copy is dropped when it ends.
    writing = asyncio.ensure_future(writer.run(job))
    writing.add_done_callback(written)
    await asyncio.shield(writing)
