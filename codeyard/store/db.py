"""Engine creation, SQLite tuning and Alembic migrations applied at start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import QueuePool

from codeyard.store import inline_reads, sqlite_driver

MIGRATIONS = Path(__file__).parent / "migrations"
#: The newest migration. A test checks it against Alembic's own view, so it cannot drift.
HEAD_REVISION = "0026"


def dialect_name(url: str) -> str:
    return "postgresql" if url.startswith("postgresql") else "sqlite"


#: Set on every SQLite connection: the engine's and the writer's own (``store.sqlite_commit``).
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=30000",
)


#: The SQLite engine's pool. Each connection is an aiosqlite thread and the database opened
#: with its pragmas (~ms of CPU); SQLAlchemy's default (5, overflow 10) closed every connection
#: past five as it came back, so a server with tens of runs opened and closed them all along.
#: A pool keeps only what a moment needed: with 60 concurrent runs (agents_scale) 24 were in
#: use at once, and a pool of 20 opened and closed 56 in the step (~1 per run). Idle
#: connections cost little (a parked thread, a page cache filled as read).
SQLITE_POOL_SIZE, SQLITE_POOL_OVERFLOW = 60, 40


def create_engine(url: str) -> AsyncEngine:
    """An async engine; SQLite gets WAL, NORMAL sync and a busy timeout on every connection."""
    if dialect_name(url) == "sqlite":
        # One hand-off to the driver's thread per statement (``store.sqlite_driver``).
        parsed = make_url(url)
        dialect: Any = parsed.get_dialect()  # get_pool_class: the dialects', not Dialect's
        sized = issubclass(dialect.get_pool_class(parsed), QueuePool)
        engine = create_async_engine(
            url,
            connect_args={"timeout": 30},
            module=sqlite_driver.dbapi(),
            # A database in memory has one connection (SQLAlchemy's StaticPool): no size.
            **(
                {"pool_size": SQLITE_POOL_SIZE, "max_overflow": SQLITE_POOL_OVERFLOW}
                if sized
                else {}
            ),
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy, not the driver, issue BEGIN, so savepoints work (SQLAlchemy docs).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            for pragma in SQLITE_PRAGMAS:
                cur.execute(pragma)
            cur.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _begin(conn: Connection) -> None:
            # Sent with the next statement, in its hand-off to the driver's thread.
            adapted = conn.connection.dbapi_connection
            if isinstance(adapted, sqlite_driver.OneHopConnection):
                adapted.begin()
            else:
                conn.exec_driver_sql("BEGIN")

        filename, options = dialect().create_connect_args(parsed)
        database, uri = str(filename[0]), bool(options.get("uri", False))
        if inline_reads.is_file(database, uri=uri):  # reads by the engine: no thread trip
            inline_reads.attach(engine, database, uri=uri)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def _alembic_config(connection: Connection) -> Any:
    # Alembic is imported only when the schema needs work: most starts find it current, and
    # importing Alembic costs a noticeable part of the start-up time.
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def _upgrade(connection: Connection) -> None:
    from alembic import command

    command.upgrade(_alembic_config(connection), "head")


def _current_revision(connection: Connection) -> str | None:
    try:
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError:  # no table yet: a new database
        return None


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema to the newest revision (idempotent; quick when it is current)."""
    async with engine.connect() as conn:
        current = await conn.run_sync(_current_revision)
    if current == HEAD_REVISION:
        return
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)
