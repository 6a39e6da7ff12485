"""Wake-ups for followers of tables that no run event announces (issue 15).

The workflow approval notifier follows ``workflow_events``; the preview port watcher needs the
port leases. Both read their table every second, with every server's CPU paying for it while
nothing changed. They now wait for a wake-up on a *topic* instead:

- a write of what they follow calls :func:`announce` in its transaction: on PostgreSQL a
  ``NOTIFY`` on :data:`NOTIFY_CHANNEL` with the topic as payload, delivered at commit to every
  process that listens (``events.pg_fanout`` hands it to :func:`wake`), this one included;
- the process that wrote calls :func:`wake` itself once its transaction committed (SQLite has
  no ``NOTIFY``; on PostgreSQL this only comes before the echo);
- a follower re-reads at its old pace only while a write might go unheard (:func:`hearing` is
  false): on PostgreSQL before the ``LISTEN`` connection is up and while it is lost, and in a
  process that never listens (a script); on SQLite the server, the one writing process, says
  at start that it hears every write. When hearing starts or stops, every follower is woken, so
  it looks at once (what was announced meanwhile was not heard) and picks its pace again.

:class:`Known` builds on the same: a yes/no answer about a table (does any notification target
exist? does any repository run checks after its turns?) kept in memory until a write of its
topic (:func:`written`, in the writing job) is heard.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

if TYPE_CHECKING:
    from codeyard.store.writer import Tx

#: The PostgreSQL channel of every topic's announcements.
NOTIFY_CHANNEL = "codeyard_wakeups"
#: An execution asked for a workflow approval (``workflow_events``).
WORKFLOW_APPROVALS = "workflow_approvals"
#: A run's port lease was taken or ended (``port_leases``).
PORT_LEASES = "port_leases"
#: A notification target (push subscription, device, channel) was added or removed.
NOTIFICATION_TARGETS = "notification_targets"
#: A repository's checks configuration was written (``repo_checks``).
REPO_CHECKS = "repo_checks"
#: A policy, policy set, project or agent profile was written: what a run's policy context is
#: read from (``policy.context``).
POLICIES = "policies"

Wake = Callable[[], None]


@dataclass(slots=True)
class _Topics:
    hearing: bool = False
    followers: dict[str, list[Wake]] = field(default_factory=dict)


_engines: weakref.WeakKeyDictionary[Engine, _Topics] = weakref.WeakKeyDictionary()


def _of(engine: AsyncEngine) -> _Topics:
    kept = _engines.get(engine.sync_engine)
    if kept is None:
        kept = _engines[engine.sync_engine] = _Topics()
    return kept


def follow(engine: AsyncEngine, topic: str, wake: Wake) -> Callable[[], None]:
    """Call ``wake`` (on the event loop) at each announcement of ``topic``; returns the call
    that stops it."""
    followers = _of(engine).followers.setdefault(topic, [])
    followers.append(wake)

    def stop() -> None:
        if wake in followers:
            followers.remove(wake)

    return stop


def hearing(engine: AsyncEngine) -> bool:
    """Whether this process hears every write to ``engine`` of every topic."""
    return _of(engine).hearing


def hear_all(engine: AsyncEngine, on: bool = True) -> None:
    """This process hears every announcement on ``engine`` from now on (or, ``on=False``, no
    longer does); every follower is woken to look now."""
    topics = _of(engine)
    topics.hearing = on
    for followers in list(topics.followers.values()):
        for wake in list(followers):
            wake()


async def announce(conn: AsyncConnection, topic: str) -> None:
    """In the writing transaction: on PostgreSQL, every listening process is woken at commit.
    (On SQLite the writer calls :func:`wake` after its commit.)"""
    if conn.dialect.name == "postgresql":
        await conn.execute(select(func.pg_notify(NOTIFY_CHANNEL, topic)))


def wake(engine: AsyncEngine, topic: str) -> None:
    """``topic`` was written (committed here, or announced by any process): wake its followers
    in this process."""
    for wake_one in list(_of(engine).followers.get(topic, ())):
        wake_one()


async def written(tx: Tx, topic: str) -> None:
    """In a writer job that wrote what ``topic`` follows: announced to other processes (on
    PostgreSQL, at commit) and to this one's followers right after the commit."""
    await announce(tx.conn, topic)
    engine = tx.conn.engine
    tx.after_commit(lambda: wake(engine, topic))


@dataclass(slots=True)
class _Answer:
    value: bool | None = None
    #: Moves on at every wake-up: a read that saw it move while it ran keeps nothing.
    generation: int = 0

    def drop(self) -> None:
        self.generation += 1
        self.value = None


class Known:
    """A yes/no question about the database (does any notification target exist?) that is
    asked far more often than its answer changes: the answer is kept per engine while this
    process hears every write of ``topic`` (each one calls :func:`written`), dropped at each
    wake-up of the topic, and read again (on a connection of its own, so that it sees every
    commit so far) when not known or while writes might go unheard."""

    def __init__(self, topic: str, read: Callable[[AsyncConnection], Awaitable[bool]]) -> None:
        self.topic = topic
        self._read = read
        self._answers: weakref.WeakKeyDictionary[Engine, _Answer] = weakref.WeakKeyDictionary()

    def _of(self, engine: AsyncEngine) -> _Answer:
        kept = self._answers.get(engine.sync_engine)
        if kept is None:
            kept = self._answers[engine.sync_engine] = _Answer()
            follow(engine, self.topic, kept.drop)
        return kept

    async def get(self, engine: AsyncEngine) -> bool:
        kept = self._of(engine)
        heard = hearing(engine)
        if heard and kept.value is not None:
            return kept.value
        generation = kept.generation
        async with engine.connect() as conn:
            found = await self._read(conn)
        if heard and hearing(engine) and kept.generation == generation:
            kept.value = found
        return found
