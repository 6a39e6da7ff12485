"""Hot statements sent without SQLAlchemy Core's work per execution (issue 15).

A Core statement executed through ``AsyncConnection.execute`` costs ~100-170 µs of CPU on the
benchmark machine besides the database's own work, even when its compiled form is a cache
hit: the construct built by the caller, its cache key generated (a walk of the whole tree),
the parameters processed, an execution context, a cursor wrapper and a ``CursorResult`` made,
a greenlet switched to and back. The same SQL sent by the driver costs ~30 µs
(``bench/statement_cost.py``); with ~75 statements per agent run, most of them a few dozen
shapes, the difference is a noticeable part of the server's CPU per run.

A :class:`Statement` holds one Core construct, the single source of its SQL. It is compiled once
per dialect (the driver's placeholders: ``?`` for SQLite, ``$1`` for asyncpg), and each
execution sends that string with the parameters in positional order, converted by the bind
processors Core would use (JSON serialized, …); rows come back as tuples converted by the
result processors Core would use (JSON parsed, booleans, …). What Core still gives it:

- the transaction: a connection not in one begins it as Core's autobegin would (SQLite's
  ``BEGIN`` goes with the statement, ``store.sqlite_driver``), so ``commit``, ``rollback``,
  savepoints and the pool's reset on return treat these statements like any other;
- the driver adapter's lock and path: SQLite's one hop to aiosqlite's thread, asyncpg's
  prepared statement cache and its transaction started with the first statement;
- errors: a driver error is raised by Core's own handler, as Core raises it (``IntegrityError``
  and the rest of ``DBAPIError``; a lost connection is invalidated);
- ``before_cursor_execute`` listeners see each statement (the tests' and the bench's statement
  counts use them), with no cursor and no execution context (the engine's ``echo`` log does
  not show them).

Reads also take an engine instead of a connection (:data:`Reader`): the statement goes alone
on a connection of its own, outside any transaction, and the connection goes back to the pool.
One statement is its own consistent snapshot on both databases, so nothing is lost, and nothing
is spent on a transaction: no ``BEGIN`` (SQLite: none in the hop; asyncpg: no round trip), and
the pool's reset on return has nothing to roll back (SQLite: no trip to the driver's thread,
``OneHopConnection.rollback``; asyncpg: none begun). ~265 against ~165 µs of CPU per read on
SQLite (``bench/read_cost.py``). On a SQLite database file such a read does not even take a
pooled connection: it runs on the calling thread's own (``store.inline_reads``: ~7 µs, no trip
to a driver thread), and through the pool only when it cannot be read there at once. A caller
that reads twice and needs both reads to agree keeps one connection (its transaction) for both.

A connection Core must first revalidate, or a driver this module does not know, takes
``exec_driver_sql`` with the same string and parameters: the same results at Core's cost.
Constructs with expanding (``IN``) parameters, parameters rendered at execution or column
defaults computed in Python are refused when compiled: those need Core's execution context.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from sqlalchemy import Table, bindparam, update
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import TypeEngine
from sqlalchemy.util.concurrency import greenlet_spawn

from codeyard.store.inline_reads import InlineReader, reader_of
from codeyard.store.sqlite_driver import OneHopConnection, OneHopCursor

RowT = TypeVar("RowT", bound=tuple[Any, ...])
#: Where a read is sent: a connection (in its transaction, begun if none), or an engine (the
#: statement alone on a connection of its own, outside any transaction; see ``Statement``).
Reader = AsyncConnection | AsyncEngine
_Convert = Callable[[Any], Any]

#: asyncpg's status line of a statement: the rows it touched (what Core reads as rowcount).
_STATUS_ROWS = re.compile(r"(?:SELECT|UPDATE|DELETE|INSERT \d+) (\d+)")


@dataclass(slots=True)
class _Slot:
    """One positional parameter: its name, how its value is converted, and the value it takes
    when not given (a literal of the construct; ``required``: it must be given)."""

    name: str
    convert: _Convert | None
    required: bool
    default: Any


class Compiled:
    """A statement's SQL for one dialect, and how its parameters and rows are converted."""

    __slots__ = ("_converts", "_dialect", "keys", "slots", "sql", "types")

    def __init__(self, construct: Executable, dialect: Dialect) -> None:
        compiled = cast(SQLCompiler, cast(Any, construct).compile(dialect=dialect))
        self.sql: str = compiled.string
        if "POSTCOMPILE" in self.sql or compiled.insert_prefetch or compiled.update_prefetch:
            raise ValueError(
                "A Statement takes no expanding or execution-time parameters and no column "
                f"default computed in Python: {self.sql}"
            )
        slots = []
        for name in compiled.positiontup or ():
            bind = compiled.binds[name]
            convert = bind.type.dialect_impl(dialect).bind_processor(dialect)
            default = None if bind.required else bind.effective_value
            if default is not None and convert is not None:
                default = convert(default)
            slots.append(_Slot(name, convert, bind.required, default))
        self.slots = tuple(slots)
        returned = list(getattr(construct, "exported_columns", ()))
        #: The result's column keys and types, in order (none: the statement returns no rows).
        self.keys: tuple[str, ...] = tuple(str(c.key) for c in returned)
        self.types: tuple[TypeEngine[Any], ...] = tuple(c.type for c in returned)
        self._dialect = dialect
        #: Per result column, its conversion (None: none), set at the first result: it may
        #: depend on the type the database reports (PostgreSQL's numeric types do).
        self._converts: tuple[_Convert | None, ...] | None = None

    def params(self, given: Mapping[str, Any]) -> tuple[Any, ...]:
        out = []
        for slot in self.slots:
            if slot.name in given:
                value = given[slot.name]
                out.append(value if slot.convert is None else slot.convert(value))
            elif slot.required:
                raise TypeError(f"The statement's parameter {slot.name!r} was not given.")
            else:
                out.append(slot.default)
        return tuple(out)

    def rows(self, raw: Sequence[Sequence[Any]], coltypes: Sequence[Any]) -> list[Any]:
        """The driver's rows as tuples, each value converted as Core converts it."""
        converts = self._converts
        if converts is None:
            dialect = self._dialect
            if len(coltypes) != len(self.types):  # not reported: as SQLite reports them
                coltypes = [None] * len(self.types)
            converts = self._converts = tuple(
                type_.dialect_impl(dialect).result_processor(dialect, coltype)
                for type_, coltype in zip(self.types, coltypes, strict=True)
            )
        if not any(converts):
            return [tuple(row) for row in raw]
        return [
            tuple(value if c is None else c(value) for c, value in zip(converts, row, strict=False))
            for row in raw
        ]


class Statement(Generic[RowT]):
    """One Core construct, compiled once per dialect and sent as SQL text by the driver (see
    the module's docstring). ``RowT``: the tuple type of its rows, as the construct selects
    (or returns) them; parameters are given by their ``bindparam`` names.

        _STATUS: Statement[tuple[str, str | None]] = Statement(
            select(R.c.status, R.c.resolution).where(R.c.id == bindparam("run_id"))
        )
        row = await _STATUS.first(conn, run_id=run_id)
    """

    __slots__ = ("_by_dialect", "construct")

    def __init__(self, construct: Executable) -> None:
        self.construct = construct
        self._by_dialect: dict[tuple[str, str], Compiled] = {}

    def compiled(self, dialect: Dialect) -> Compiled:
        key = (dialect.name, dialect.driver)
        found = self._by_dialect.get(key)
        if found is None:
            found = self._by_dialect[key] = Compiled(self.construct, dialect)
        return found

    async def rows(self, conn: Reader, **params: Any) -> list[RowT]:
        rows, _count = await self._execute(conn, params)
        return rows

    async def first(self, conn: Reader, **params: Any) -> RowT | None:
        rows, _count = await self._execute(conn, params)
        return rows[0] if rows else None

    async def scalar(self, conn: Reader, **params: Any) -> Any:
        """The first column of the first row (None: no row)."""
        rows, _count = await self._execute(conn, params)
        return rows[0][0] if rows else None

    async def mappings(self, conn: Reader, **params: Any) -> list[dict[str, Any]]:
        """The rows as dicts by column key (what ``dict(row._mapping)`` gives)."""
        rows, _count = await self._execute(conn, params)
        keys = self.compiled(conn.dialect).keys
        return [dict(zip(keys, row, strict=True)) for row in rows]

    async def first_mapping(self, conn: Reader, **params: Any) -> dict[str, Any] | None:
        rows, _count = await self._execute(conn, params)
        if not rows:
            return None
        return dict(zip(self.compiled(conn.dialect).keys, rows[0], strict=True))

    async def run(self, conn: AsyncConnection, **params: Any) -> int:
        """Execute; the rows it matched (the driver's rowcount)."""
        _rows, count = await self._execute(conn, params)
        return count

    async def _execute(
        self, conn: AsyncConnection | AsyncEngine, given: Mapping[str, Any]
    ) -> tuple[list[Any], int]:
        if isinstance(conn, AsyncEngine):
            inline = reader_of(conn)
            if inline is not None:
                done = self._inline(conn, inline, given)
                if done is not None:
                    return done
            async with conn.connect() as alone:
                return await self._send(alone, given, begin=False)
        return await self._send(conn, given, begin=True)

    def _inline(
        self, engine: AsyncEngine, inline: InlineReader, given: Mapping[str, Any]
    ) -> tuple[list[Any], int] | None:
        """The read on the calling thread's own SQLite connection (``store.inline_reads``);
        None: it could not be read there, send it through the pool."""
        compiled = self.compiled(engine.dialect)
        sql, params = compiled.sql, compiled.params(given)
        sync = engine.sync_engine
        if sync._has_events:
            for listener in sync.dispatch.before_cursor_execute:
                sql, params = listener(None, None, sql, params, None, False)
        outcome = inline.read(sql, params)
        if outcome is None:
            return None
        raw, count = outcome
        return compiled.rows(raw, ()), count

    async def _send(
        self, conn: AsyncConnection, given: Mapping[str, Any], *, begin: bool
    ) -> tuple[list[Any], int]:
        compiled = self.compiled(conn.dialect)
        sql, params = compiled.sql, compiled.params(given)
        sync = conn.sync_connection
        if sync is None or sync.closed or sync.invalidated:
            return await _through_core(conn, compiled, params)
        adapt: Any = sync.connection.dbapi_connection
        # By the dialect's driver, not the adapter's class: importing SQLAlchemy's PostgreSQL
        # dialect costs ~90 ms of a SQLite server's start-up (``store.upsert``).
        one_hop = isinstance(adapt, OneHopConnection)
        if not one_hop and conn.dialect.driver != "asyncpg":
            return await _through_core(conn, compiled, params)
        if not sync.in_transaction():
            if sync.get_transaction() is not None:  # inactive: Core raises what it must
                return await _through_core(conn, compiled, params)
            if begin:
                sync.begin()  # as Core's autobegin: no I/O here (SQLite's BEGIN goes with the hop)
        core = cast(Any, sync)
        if core._has_events or core.engine._has_events:
            for listener in core.dispatch.before_cursor_execute:
                sql, params = listener(sync, None, sql, params, None, False)
        try:
            if one_hop:
                description, raw, count, _last = await OneHopCursor._hop(adapt, sql, params, False)
                coltypes: list[Any] = [None] * len(description or ())
            else:
                raw, count, coltypes = await _asyncpg(adapt, sync, sql, params, begin)
        except BaseException as error:
            await greenlet_spawn(_raise_as_core, sync, adapt, error, sql, params)
            raise  # not reached: the line above raises
        return compiled.rows(raw or (), coltypes), count


async def _asyncpg(
    adapt: Any, sync: Connection, sql: str, params: tuple[Any, ...], begin: bool
) -> tuple[list[Any], int, list[Any]]:
    """What SQLAlchemy's asyncpg cursor does for one statement (its lock, the transaction
    started with the first statement, the prepared statement cache), without the cursor."""
    async with adapt._execute_mutex:
        if adapt._transaction is None and begin:
            await adapt._start_transaction()
        stale_before = cast(Any, sync.dialect)._invalidate_schema_cache_asof
        prepared, attributes = await adapt._prepare(sql, stale_before)
        rows = await prepared.fetch(*params)
        found = _STATUS_ROWS.match(prepared.get_statusmsg() or "")
        count = int(found.group(1)) if found else -1
        return rows, count, [a.type.oid for a in attributes or ()]


def _raise_as_core(
    sync: Connection, adapt: Any, error: BaseException, sql: str, params: tuple[Any, ...]
) -> None:
    """In a greenlet (a lost connection is closed through it): ``error`` raised as Core
    raises a driver's error, by Core's own handler."""
    core = cast(Any, sync)
    try:
        try:
            if isinstance(error, Exception):
                adapt._handle_exception(error)  # the adapter's DB-API error, as its cursor gives
            raise error
        except BaseException as adapted:
            core._handle_dbapi_exception(adapted, sql, params, None, None)
    finally:
        del error


async def _through_core(
    conn: AsyncConnection, compiled: Compiled, params: tuple[Any, ...]
) -> tuple[list[Any], int]:
    """The same SQL through ``exec_driver_sql``: Core revalidates the connection first."""
    result = await conn.exec_driver_sql(compiled.sql, params)
    if not result.returns_rows:
        return [], result.rowcount
    description = cast(Any, result).cursor.description or ()
    rows = compiled.rows(result.all(), [d[1] for d in description])
    return rows, result.rowcount


class RowWrites:
    """``INSERT`` of a row and ``UPDATE`` of the row with a given key, for whichever columns a
    caller writes: one :class:`Statement` per set of column names (built on first use). Values
    that are SQL expressions (``R.c.turns + 1``) take Core, which renders them."""

    __slots__ = ("_inserts", "_key", "_table", "_updates")

    #: Sets of columns kept per table and kind; more are still written, through Core.
    LIMIT = 256

    def __init__(self, table: Table, key: str = "id") -> None:
        self._table = table
        self._key = table.c[key]
        self._inserts: dict[tuple[str, ...], Statement[tuple[()]]] = {}
        self._updates: dict[tuple[str, ...], Statement[tuple[()]]] = {}

    def insert_statement(self, names: tuple[str, ...]) -> Statement[tuple[()]]:
        stmt = self._inserts.get(names)
        if stmt is None:
            stmt = Statement(self._table.insert().values({n: bindparam(n) for n in names}))
            if len(self._inserts) < self.LIMIT:
                self._inserts[names] = stmt
        return stmt

    def update_statement(self, names: tuple[str, ...]) -> Statement[tuple[()]]:
        """``UPDATE … SET <names> WHERE <key> = :row_key_``."""
        stmt = self._updates.get(names)
        if stmt is None:
            stmt = Statement(
                update(self._table)
                .where(self._key == bindparam(_KEY))
                .values({n: bindparam(n) for n in names})
            )
            if len(self._updates) < self.LIMIT:
                self._updates[names] = stmt
        return stmt

    async def insert(self, conn: AsyncConnection, values: Mapping[str, Any]) -> None:
        if _expressions(values):
            await conn.execute(self._table.insert().values(**values))
            return
        await self.insert_statement(tuple(values)).run(conn, **values)

    async def update(self, conn: AsyncConnection, key: Any, values: Mapping[str, Any]) -> int:
        """Write ``values`` to the row whose key is ``key``; the rows matched (0 or 1)."""
        if _expressions(values):
            stmt = update(self._table).where(self._key == key).values(**values)
            return int((await conn.execute(stmt)).rowcount)
        return await self.update_statement(tuple(values)).run(conn, **values, **{_KEY: key})


#: The key's parameter name in :class:`RowWrites`' updates (no column is named so).
_KEY = "row_key_"


def _expressions(values: Mapping[str, Any]) -> bool:
    return any(isinstance(v, ClauseElement) for v in values.values())
