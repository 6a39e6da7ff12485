"""The writer's SQLite commit thread (``store.sqlite_commit``, fed by ``store.direct_appends``):
plain appends committed in one hop by a thread with its own ``sqlite3`` connection, everything
else through SQLAlchemy.

Real SQLite files from the project's migrations; the rows are read back with a separate stdlib
connection, so "committed" means visible to another connection, as after a crash.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from pydantic_core import PydanticSerializationError

from codeyard.domain import events as ev
from codeyard.domain.events import StoredEvent, utc_now
from codeyard.store import fencing, runs, sqlite_commit, sqlite_driver
from codeyard.store.db import create_engine, migrate
from codeyard.store.writer import Tx, Writer
from tests.support.writer_runs import PROJECT, add_runs

pytestmark = pytest.mark.anyio


class Db:
    def __init__(self, path: Path, writer: Writer, published: list[list[StoredEvent]]) -> None:
        self.path = path
        self.writer = writer
        self.published = published

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Read through a connection of its own: only what is committed."""
        conn = sqlite3.connect(self.path)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    async def add_runs(self, *run_ids: str) -> None:
        await add_runs(self.writer, *run_ids)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Db]:
    path = tmp_path / "codeyard.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await migrate(engine)
    published: list[list[StoredEvent]] = []
    writer = Writer(engine, published.append)
    await writer.start()
    try:
        yield Db(path, writer, published)
    finally:
        await asyncio.wait_for(writer.stop(), 10)
        await engine.dispose()


def _count_thread_commits(writer: Writer) -> list[int]:
    """Spy on the commit thread (it still commits): the rows of each batch handed to it."""
    direct = writer._direct
    assert direct is not None
    thread = direct.thread
    seen: list[int] = []
    commit = thread.commit

    def counted(rows: Any, updates: Any) -> asyncio.Future[None]:
        seen.append(len(rows))
        return commit(rows, updates)

    thread.commit = counted  # type: ignore[method-assign]
    return seen


def _commit_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "codeyard-sqlite-writer"]


async def test_awaited_appends_are_committed_numbered_and_published_after_commit(db: Db) -> None:
    await db.add_runs("run_a", "run_b")
    seen_at_publish: list[int] = []
    publish = db.writer._on_commit

    def on_commit(events: list[StoredEvent]) -> None:
        # The hand-off comes after the commit: another connection already sees every row.
        ids = ",".join(str(e.id) for e in events)
        seen_at_publish.append(db.rows(f"SELECT COUNT(*) FROM events WHERE id IN ({ids})")[0][0])
        assert seen_at_publish[-1] == len(events)
        publish(events)

    db.writer._on_commit = on_commit
    through_thread = _count_thread_commits(db.writer)
    batches = db.writer.batches
    first = await db.writer.append("run_a", [ev.ErrorEvent(message=f"a{i}") for i in range(3)])
    # Returned means committed: visible to a separate connection now.
    assert db.rows("SELECT seq, type FROM events WHERE run_id = 'run_a' ORDER BY seq") == [
        (1, "error"),
        (2, "error"),
        (3, "error"),
    ]
    assert db.rows("SELECT last_seq FROM runs WHERE id = 'run_a'") == [(3,)]
    # Many producers at once: group commit puts them in few batches, numbering stays exact.
    calls = [
        db.writer.append(run, [ev.ErrorEvent(message=f"{run}{k}")])
        for k in range(50)
        for run in ("run_a", "run_b")
    ]
    results = await asyncio.wait_for(asyncio.gather(*calls), 10)
    assert db.writer.batches - batches < 10
    assert len(through_thread) == db.writer.batches - batches
    ids = [e.id for r in [first, *results] for e in r]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for run, total in (("run_a", 53), ("run_b", 50)):
        rows = db.rows("SELECT id, seq FROM events WHERE run_id = ? ORDER BY seq", run)
        assert [r[1] for r in rows] == list(range(1, total + 1))
        assert [r[0] for r in rows] == sorted(r[0] for r in rows)
        assert db.rows("SELECT last_seq FROM runs WHERE id = ?", run) == [(total,)]
    assert sum(seen_at_publish) == 103
    assert [e.id for batch in db.published for e in batch] == sorted(ids)


async def test_run_values_are_stored_as_the_sqlalchemy_path_stores_them(db: Db) -> None:
    """Values converted for the thread (JSON, NULLs, booleans), and a job's run values (sent
    with its commit), read back byte for byte as SQLAlchemy's ``update(runs).values(...)``
    writes them."""
    await db.add_runs("run_direct", "run_sqla", "run_core")
    values: dict[str, Any] = {
        "usage": {"input_tokens": 7, "cost_usd": 0.25, "note": "ü"},
        "agent_state": {"k": [1, None]},
        "pull_request": None,  # JSON column: SQLAlchemy stores JSON 'null'
        "session_id": None,  # text column: SQL NULL
        "trusted": True,
        "crash_resumes": 2,
        "budget_usd": 3,
    }
    event = ev.ErrorEvent(message="m")
    await db.writer.append("run_direct", [event], dict(values))

    async def job(tx: Tx) -> None:  # a job: the SQLAlchemy connection, not the thread
        await tx.emit("run_sqla", [event])
        tx.set_run_values("run_sqla", dict(values))

    await db.writer.run(job)

    async def core(tx: Tx) -> None:  # the same values through SQLAlchemy's own UPDATE
        await tx.emit("run_core", [event])
        await runs.update_fields(tx, "run_core", **values)

    await db.writer.run(core)
    cols = ", ".join(f"{c}, typeof({c})" for c in [*values, "last_seq"])
    direct = db.rows(f"SELECT {cols} FROM runs WHERE id = 'run_direct'")
    sqla = db.rows(f"SELECT {cols} FROM runs WHERE id = 'run_sqla'")
    assert direct == sqla == db.rows(f"SELECT {cols} FROM runs WHERE id = 'run_core'")
    row = direct[0]
    assert json.loads(row[0]) == values["usage"] and row[1] == "text"
    assert row[4:8] == ("null", "text", None, "null")
    assert row[8:14] == (1, "integer", 2, "integer", 3.0, "real")
    assert row[14] == 1


async def test_a_failed_commit_writes_nothing_and_the_writer_goes_on(db: Db) -> None:
    await db.add_runs("run_a")
    await db.writer.append("run_a", [ev.ErrorEvent(message="one")])
    # Another connection takes the id the writer will use next: the batch's INSERT fails.
    next_id = db.writer._next_id
    conn = sqlite3.connect(db.path)
    conn.execute(
        "INSERT INTO events (id, run_id, project_id, seq, type, ts, data) "
        "VALUES (?, 'run_a', ?, 99, 'error', ?, '{}')",
        (next_id + 1, PROJECT, utc_now()),
    )
    conn.commit()
    with pytest.raises(sqlite3.IntegrityError):
        await db.writer.append(
            "run_a", [ev.ErrorEvent(message="two"), ev.ErrorEvent(message="three")], {"turns": 5}
        )
    # Nothing of the batch: not its first row, not the run-row update.
    assert db.rows("SELECT COUNT(*) FROM events WHERE id = ?", next_id) == [(0,)]
    assert db.rows("SELECT last_seq, turns FROM runs WHERE id = 'run_a'") == [(1, 0)]
    conn.execute("DELETE FROM events WHERE seq = 99")
    conn.commit()
    conn.close()
    stored = await db.writer.append("run_a", [ev.ErrorEvent(message="two")])
    assert [(e.id, e.seq) for e in stored] == [(next_id, 2)]
    assert db.rows("SELECT last_seq FROM runs WHERE id = 'run_a'") == [(2,)]


#: Event data pydantic cannot serialize: a lone surrogate, as ``json.loads`` makes of an agent's
#: ``"\\ud800"``. ``data_json`` is first made in the writer's task, while numbering the append.
UNSERIALIZABLE = "half an emoji: \ud83d"


def _gapless(db: Db) -> list[tuple[str, int, int]]:
    """Every stored event as (run, seq, id), asserting ids 1..n and each run's seqs 1..k."""
    rows = db.rows("SELECT run_id, seq, id FROM events ORDER BY id")
    assert [r[2] for r in rows] == list(range(1, len(rows) + 1))
    for run in {r[0] for r in rows}:
        assert [r[1] for r in rows if r[0] == run] == list(
            range(1, sum(r[0] == run for r in rows) + 1)
        )
    return rows


async def test_an_append_that_cannot_be_serialized_is_refused_alone(db: Db) -> None:
    """The commit thread's path: the append fails for its caller, the others of its batch
    commit, and no id or seq is skipped (it ended the writer's task: nothing more was written)."""
    await db.add_runs("run_a", "run_b")
    through_thread = _count_thread_commits(db.writer)
    results = await asyncio.wait_for(
        asyncio.gather(
            db.writer.append("run_b", [ev.ErrorEvent(message="b")]),
            db.writer.append(
                "run_a", [ev.ErrorEvent(message="ok"), ev.ErrorEvent(message=UNSERIALIZABLE)]
            ),
            db.writer.append("run_a", [ev.ErrorEvent(message="a")], {"turns": 4}),
            return_exceptions=True,
        ),
        10,
    )
    assert isinstance(results[1], PydanticSerializationError)
    assert through_thread and sum(through_thread) == 2
    later = await asyncio.wait_for(db.writer.append("run_a", [ev.ErrorEvent(message="c")]), 10)
    assert _gapless(db) == [("run_b", 1, 1), ("run_a", 1, 2), ("run_a", 2, 3)]
    assert [(e.id, e.seq) for e in later] == [(3, 2)]
    assert db.rows("SELECT id, last_seq, turns FROM runs ORDER BY id") == [
        ("run_a", 2, 4),
        ("run_b", 1, 0),
    ]


async def test_run_values_that_cannot_be_converted_fail_their_batch_and_the_writer_goes_on(
    db: Db,
) -> None:
    """The commit thread's path: the batch fails for its callers with nothing written, as a
    failed flush on SQLAlchemy's path does, and the next append takes the numbers it left."""
    await db.add_runs("run_a")
    await db.writer.append("run_a", [ev.ErrorEvent(message="one")])
    through_thread = _count_thread_commits(db.writer)
    with pytest.raises(TypeError, match="not JSON serializable"):
        await asyncio.wait_for(
            db.writer.append("run_a", [ev.ErrorEvent(message="two")], {"usage": {"x": object()}}),
            10,
        )
    assert through_thread == []  # refused before the thread
    stored = await asyncio.wait_for(db.writer.append("run_a", [ev.ErrorEvent(message="two")]), 10)
    assert [(e.id, e.seq) for e in stored] == [(2, 2)]
    assert _gapless(db) == [("run_a", 1, 1), ("run_a", 2, 2)]
    assert db.rows("SELECT last_seq FROM runs") == [(2,)]


async def test_an_append_that_cannot_be_serialized_leaves_no_id_gap_on_sqlalchemys_path(
    db: Db,
) -> None:
    """SQLAlchemy's path refused it alone already, but kept the ids it had taken: the next
    event's id skipped them."""
    await db.add_runs("run_a")
    await db.writer.append("run_a", [ev.ErrorEvent(message="one")])
    db.writer._cursors.clear()  # as after a restart: the first append takes SQLAlchemy
    through_thread = _count_thread_commits(db.writer)
    with pytest.raises(PydanticSerializationError):
        await asyncio.wait_for(
            db.writer.append("run_a", [ev.ErrorEvent(message=UNSERIALIZABLE)]), 10
        )
    assert through_thread == []
    stored = await asyncio.wait_for(db.writer.append("run_a", [ev.ErrorEvent(message="two")]), 10)
    assert [(e.id, e.seq) for e in stored] == [(2, 2)]
    assert _gapless(db) == [("run_a", 1, 1), ("run_a", 2, 2)]


@pytest.fixture
def hand_offs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every call sent to an aiosqlite connection's thread (the writer's SQLAlchemy one)."""
    calls: list[str] = []
    execute = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Callable[..., Any], *a: Any, **k: Any) -> Any:
        inner = a[2] if getattr(fn, "__name__", "") == "_call" else fn  # store.sqlite_driver's
        calls.append(getattr(inner, "__name__", repr(inner)))
        return await execute(self, fn, *a, **k)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return calls


async def _a_job_with_events(tx: Tx) -> None:
    """A job's own statement, an event and a run value: a status change's shape."""
    await runs.update_fields(tx, "run_a", title="moved")
    await tx.emit("run_a", [ev.ErrorEvent(message="m")])
    tx.set_run_values("run_a", {"turns": 3})


async def test_a_jobs_events_run_row_and_commit_are_one_hand_off(
    db: Db, hand_offs: list[str]
) -> None:
    """A batch with jobs ends with one trip to the driver's thread for its events, its run rows
    and its COMMIT (they were three: issue 15, ~12 such transactions per Claude Code run)."""
    await db.add_runs("run_a")
    hand_offs.clear()
    await db.writer.run(_a_job_with_events)
    assert hand_offs == ["_run", "_last_and_commit"], hand_offs
    assert db.rows("SELECT title, last_seq, turns FROM runs") == [("moved", 1, 3)]
    assert db.rows("SELECT seq, type FROM events") == [(1, "error")]


async def test_a_failed_last_hand_off_rolls_the_batch_back(
    db: Db, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its statements sent, the COMMIT failing: nothing of the batch is kept (the transaction
    SQLAlchemy still holds open is rolled back), and the writer goes on."""
    await db.add_runs("run_a")
    last_and_commit = sqlite_driver._last_and_commit

    def failing(conn: sqlite3.Connection, statements: Any) -> None:
        for sql, params, many in statements:
            (conn.executemany if many else conn.execute)(sql, params)
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(sqlite_driver, "_last_and_commit", failing)
    with pytest.raises(sqlite3.OperationalError):
        await db.writer.run(_a_job_with_events)
    assert db.rows("SELECT title, last_seq, turns FROM runs") == [("t", 0, 0)]
    assert db.rows("SELECT COUNT(*) FROM events") == [(0,)]
    monkeypatch.setattr(sqlite_driver, "_last_and_commit", last_and_commit)
    await db.writer.run(_a_job_with_events)
    assert db.rows("SELECT title, last_seq, turns FROM runs") == [("moved", 1, 3)]
    assert db.rows("SELECT seq FROM events") == [(1,)]


async def test_savepoints_go_with_the_jobs_statements(db: Db, hand_offs: list[str]) -> None:
    """In a batch of several jobs each has its savepoint, but no trip of its own for it: the
    SAVEPOINT goes with the job's first statement, the RELEASE with the next trip, and a job
    that sends nothing takes neither (``store.job_savepoints``: were two trips per job). A
    failing job still rolls back alone."""
    await db.add_runs("run_a")

    async def a(tx: Tx) -> None:
        await runs.update_fields(tx, "run_a", title="a")
        await tx.emit("run_a", [ev.ErrorEvent(message="a")])

    async def b(tx: Tx) -> None:
        await runs.update_fields(tx, "run_a", turns=9)
        await tx.emit("run_a", [ev.ErrorEvent(message="b")])
        raise ValueError("b fails")

    async def c(tx: Tx) -> None:  # no statement of its own
        await tx.emit("run_a", [ev.ErrorEvent(message="c")])

    batches = db.writer.batches
    hand_offs.clear()
    results = await asyncio.gather(
        db.writer.run(a), db.writer.run(b), db.writer.run(c), return_exceptions=True
    )
    assert db.writer.batches - batches == 1
    assert isinstance(results[1], ValueError) and results[0] is None and results[2] is None
    # a: BEGIN, SAVEPOINT, UPDATE; b: RELEASE, SAVEPOINT, UPDATE; b's ROLLBACK TO; the events,
    # the run row, a RELEASE and the COMMIT.
    assert hand_offs == ["_run", "_run", "_run", "_last_and_commit"], hand_offs
    assert db.rows("SELECT title, turns, last_seq FROM runs") == [("a", 0, 2)]
    rows = db.rows("SELECT seq, data FROM events ORDER BY id")
    assert [(seq, json.loads(data)["message"]) for seq, data in rows] == [(1, "a"), (2, "c")]


async def test_a_stale_attempt_is_refused_alone_in_its_batch(db: Db) -> None:
    await db.add_runs("run_a", "run_b")

    async def stale() -> None:
        token = fencing.current.set(fencing.Fence("run_a", 7))  # the run is on attempt 0
        try:
            await db.writer.append("run_a", [ev.ErrorEvent(message="stale")])
        finally:
            fencing.current.reset(token)

    results = await asyncio.wait_for(
        asyncio.gather(
            db.writer.append("run_b", [ev.ErrorEvent(message="b")]),
            stale(),
            db.writer.append("run_a", [ev.ErrorEvent(message="fresh")]),
            return_exceptions=True,
        ),
        10,
    )
    assert isinstance(results[1], fencing.StaleAttempt)
    rows = db.rows("SELECT run_id, seq, data FROM events ORDER BY id")
    assert [(r[0], r[1], json.loads(r[2])["message"]) for r in rows] == [
        ("run_b", 1, "b"),
        ("run_a", 1, "fresh"),
    ]


async def test_runs_the_writer_has_not_numbered_and_unknown_columns_take_sqlalchemy(
    db: Db,
) -> None:
    await db.add_runs("run_a")
    db.writer._cursors.clear()  # as after a restart: the numbering is read from the run row
    through_thread = _count_thread_commits(db.writer)
    await db.writer.append("run_a", [ev.ErrorEvent(message="x")])
    assert through_thread == []
    await db.writer.append("run_a", [ev.ErrorEvent(message="y")])
    assert through_thread == [1]
    assert db.rows("SELECT seq FROM events ORDER BY id") == [(1,), (2,)]
    with pytest.raises(Exception, match="no_such_column"):
        await db.writer.append("run_a", [ev.ErrorEvent(message="z")], {"no_such_column": 1})
    with pytest.raises(Exception, match="does not exist"):
        await db.writer.append("run_missing", [ev.ErrorEvent(message="z")])
    assert db.rows("SELECT last_seq FROM runs") == [(2,)]


async def test_stop_ends_the_thread(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await migrate(engine)
    before = len(_commit_threads())
    writer = Writer(engine, lambda _e: None)
    await writer.start()
    try:
        assert len(_commit_threads()) == before + 1
    finally:
        await asyncio.wait_for(writer.stop(), 10)
        await engine.dispose()
    assert len(_commit_threads()) == before


def test_only_sqlite_files_get_a_commit_thread(tmp_path: Path) -> None:
    def path_of(url: str) -> str | None:
        engine = create_engine(url)
        try:
            return sqlite_commit.file_path(engine)
        finally:
            engine.sync_engine.dispose()

    assert path_of(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}") == str(tmp_path / "a.db")
    assert path_of("sqlite+aiosqlite:///:memory:") is None
    assert path_of("sqlite+aiosqlite://") is None
    assert path_of(f"sqlite+aiosqlite:///file:{tmp_path / 'b.db'}?mode=ro&uri=true") is None
    assert path_of("postgresql+asyncpg://u:p@127.0.0.1:1/x") is None
