"""SQLite through aiosqlite with one hand-off to its thread per statement (issue 15).

SQLAlchemy's aiosqlite adapter wraps an aiosqlite cursor, and every step of it is one trip to
the connection's thread and back: making the cursor, executing, fetching the rows, closing it.
A ``SELECT`` cost four trips, a ``BEGIN`` or an ``UPDATE`` three. Each trip is a queue put, a
thread wake-up, a ``call_soon_threadsafe`` that wakes the event loop and a greenlet switch: a
good part of the server's CPU per run was these hand-offs (``bench/RESULTS.md``, session 12).

Here the adapter's cursor sends the whole statement to the thread in one call: a stdlib cursor
is made, executed, its rows fetched and it is closed there, and what SQLAlchemy reads after
(the rows, ``description``, ``rowcount``, ``lastrowid``) comes back in one result. Nothing
else changes: the same thread and connection, the same order of statements, and an error
raised there reaches SQLAlchemy through the adapter as before, which wraps it (``DBAPIError``
and its kinds) as it wraps any driver error. Server-side cursors (``stream``) keep
SQLAlchemy's own adapter.

``BEGIN`` costs no hand-off of its own: SQLAlchemy's ``begin`` event (``store.db``) marks the
connection, and the next call into its thread, whatever it is, runs ``BEGIN`` first, in the same
trip. Every call goes through aiosqlite's ``Connection._execute``, so this holds for the
statements of :class:`OneHopCursor` and for the writer's own ``executemany`` on the
``driver_connection`` alike: nothing runs outside the transaction SQLAlchemy began. A commit or
rollback with nothing sent since the mark (a read-only check-out, an empty transaction) ends a
transaction that never began, and costs no trip either. The writer's transactions end with one
trip for their last statements and the ``COMMIT`` (:func:`commit_with`).
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Sequence
from typing import Any, cast

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util.concurrency import await_

#: What one statement gives back from the thread: description, rows (None: no result set),
#: rowcount, lastrowid.
_Outcome = tuple[Any, list[Any] | None, int, int | None]


def _run(conn: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> _Outcome:
    """In the connection's thread: one statement from cursor to close."""
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else None
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class OneHopCursor:
    """The DB-API cursor SQLAlchemy sees: each ``execute`` is one trip to the thread, and the
    rows are kept here (a buffered cursor, as SQLAlchemy's adapter is)."""

    server_side = False
    __slots__ = (
        "_adapt_connection",
        "_description",
        "_lastrowid",
        "_rowcount",
        "_rows",
        "arraysize",
    )

    def __init__(self, adapt_connection: OneHopConnection) -> None:
        self._adapt_connection = adapt_connection
        self._rows: collections.deque[Any] = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self.arraysize = 1

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._lastrowid

    async def _async_soft_close(self) -> None:
        """Nothing to close: the stdlib cursor was closed in the thread."""

    def close(self) -> None:
        self._rows.clear()

    def execute(self, operation: Any, parameters: Any = None) -> None:
        self._send(operation, parameters, many=False)

    def executemany(self, operation: Any, seq_of_parameters: Sequence[Any]) -> None:
        self._send(operation, seq_of_parameters, many=True)

    def _send(self, operation: Any, parameters: Any, *, many: bool) -> None:
        adapt = self._adapt_connection
        try:
            outcome = await_(self._hop(adapt, operation, parameters, many))
        except Exception as error:
            adapt._handle_exception(error)
        self._description, rows, self._rowcount, self._lastrowid = outcome
        self._rows = collections.deque(rows) if rows is not None else collections.deque()

    @staticmethod
    async def _hop(
        adapt: OneHopConnection, operation: Any, parameters: Any, many: bool
    ) -> _Outcome:
        # aiosqlite's own way into its thread (``Connection._execute``: untyped); ``_conn``
        # raises "no active connection" once closed, as every aiosqlite call does.
        driver: Any = adapt._connection
        async with adapt._execute_mutex:
            outcome: _Outcome = await driver._execute(
                _run, driver._conn, operation, parameters, many
            )
            return outcome

    def setinputsizes(self, *inputsizes: Any) -> None:
        """The stdlib driver ignores it."""

    def __enter__(self) -> OneHopCursor:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __iter__(self) -> Any:
        while self._rows:
            yield self._rows.popleft()

    def fetchone(self) -> Any:
        return self._rows.popleft() if self._rows else None

    def fetchmany(self, size: int | None = None) -> list[Any]:
        rows = self._rows
        return [rows.popleft() for _ in range(min(size or self.arraysize, len(rows)))]

    def fetchall(self) -> list[Any]:
        out = list(self._rows)
        self._rows.clear()
        return out


def _call(
    late: LateBeginConnection, first: tuple[str, ...], fn: Any, args: Any, kwargs: Any
) -> Any:
    """In the connection's thread: what was asked to go first (the ``BEGIN`` SQLAlchemy asked
    for, the writer's savepoints: :meth:`LateBeginConnection.later`), then the call itself;
    counted done either way."""
    try:
        for sql in first:
            late._conn.execute(sql)
        return fn(*args, **kwargs)
    finally:
        late.calls_done += 1


#: A statement a transaction ends with (:func:`commit_with`): SQL, parameters, and whether they
#: are a sequence of parameter sets (``executemany``).
LastStatement = tuple[str, Any, bool]


def _last_and_commit(conn: sqlite3.Connection, statements: Sequence[LastStatement]) -> None:
    """In the connection's thread: a transaction's last statements, then its ``COMMIT``."""
    for operation, parameters, many in statements:
        if many:
            conn.executemany(operation, parameters)
        else:
            conn.execute(operation, parameters)
    conn.commit()


async def commit_with(driver: LateBeginConnection, statements: Sequence[LastStatement]) -> None:
    """Send a transaction's last ``statements`` and its ``COMMIT`` to the thread in one trip (the
    writer's events, run rows and commit were three trips or more). SQLAlchemy's own commit when
    its ``begin`` block ends right after finds the database in autocommit and sends nothing
    (:meth:`OneHopConnection.commit`); if a statement or the commit fails, the transaction is
    still open and SQLAlchemy's rollback ends it."""
    await driver._execute(_last_and_commit, driver._conn, statements)


class LateBeginConnection(aiosqlite.Connection):
    """aiosqlite's connection; a ``BEGIN`` asked for (:meth:`begin_later`) goes into the thread
    with the next call, in the same trip. Calls are counted as sent (here) and done (in the
    thread): while they differ one is in flight (sent by a task since cancelled, say)."""

    begin_pending = False
    #: Statements without a result sent with the next call, after its ``BEGIN`` (:meth:`later`).
    pending: tuple[str, ...] = ()
    calls_sent = 0
    calls_done = 0

    def begin_later(self) -> None:
        self.begin_pending = True

    def later(self, sql: str) -> None:
        """Send ``sql`` (a savepoint's, which returns nothing and can only fail if the
        transaction is broken) with the next call, in the same trip."""
        self.pending = (*self.pending, sql)

    def take_back(self, sql: str) -> bool:
        """Whether ``sql`` was the last statement asked for and not sent yet: then it is not."""
        if self.pending and self.pending[-1] == sql:
            self.pending = self.pending[:-1]
            return True
        return False

    async def _execute(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        execute: Any = super()._execute  # untyped in aiosqlite
        first = ("BEGIN", *self.pending) if self.begin_pending else self.pending
        self.begin_pending, self.pending = False, ()
        self.calls_sent += 1
        return await execute(_call, self, first, fn, args, kwargs)

    def forget_begin(self) -> bool:
        """The transaction ends: whether it never began (nothing was sent since the mark). The
        savepoint statements not sent yet go with it (its end ends every savepoint)."""
        pending, self.begin_pending = self.begin_pending, False
        self.pending = ()
        return pending

    def idle_outside_transaction(self) -> bool:
        """No call is in flight and the database is in autocommit: a commit or rollback would
        send nothing (SQLite's own check), after a trip to the thread."""
        raw = self._connection
        if raw is None or self.calls_sent != self.calls_done:
            return False
        try:
            return not raw.in_transaction
        except sqlite3.ProgrammingError:  # closed: the driver's own call raises what it must
            return False


def _late_begin_connect(
    database: Any, *, iter_chunk_size: int = 64, **kwargs: Any
) -> LateBeginConnection:
    """``aiosqlite.connect`` (0.22: a connector for the thread, then the proxy), the proxy
    being a :class:`LateBeginConnection`."""

    def connector() -> sqlite3.Connection:
        location = database.decode() if isinstance(database, bytes) else str(database)
        return cast(sqlite3.Connection, sqlite3.connect(location, **kwargs))

    return LateBeginConnection(connector, iter_chunk_size)


class OneHopConnection(AsyncAdapt_aiosqlite_connection):
    """SQLAlchemy's aiosqlite connection adapter with :class:`OneHopCursor` as its cursor, and
    ``BEGIN`` sent with the next statement (:meth:`begin`)."""

    __slots__ = ()
    _cursor_cls = OneHopCursor  # type: ignore[assignment]

    def begin(self) -> None:
        """SQLAlchemy begins a transaction (its ``begin`` event): ``BEGIN`` goes with the next
        call into the driver's thread."""
        self._late().begin_later()

    def commit(self) -> None:
        if self._open():
            super().commit()

    def rollback(self) -> None:
        if self._open():
            super().rollback()

    def _open(self) -> bool:
        """Whether a transaction may be open to be ended: not when its ``BEGIN`` was never
        sent, nor when the database is idle in autocommit (a check-out whose statements were
        sent outside a transaction, as :class:`~codeyard.store.statement.Statement`'s reads
        on an engine are)."""
        late = self._late()
        return not late.forget_begin() and not late.idle_outside_transaction()

    def _late(self) -> LateBeginConnection:
        return cast(LateBeginConnection, self._connection)


class OneHopDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """The DB-API module given to the engine (``create_async_engine(module=...)``)."""

    def connect(self, *arg: Any, **kw: Any) -> OneHopConnection:
        connection: Any = _late_begin_connect(*arg, **kw)
        # As SQLAlchemy's: the thread never holds the interpreter's exit (before aiosqlite 0.22
        # the connection was the thread).
        getattr(connection, "_thread", connection).daemon = True
        return OneHopConnection(self, await_(connection))


def dbapi() -> OneHopDBAPI:
    return OneHopDBAPI(aiosqlite, sqlite3)
