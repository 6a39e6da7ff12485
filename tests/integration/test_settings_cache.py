"""Stored settings kept in memory (issue 15): read once, dropped by the write that changes them,
on SQLite and PostgreSQL; on PostgreSQL a write through another API server is seen too (its
``NOTIFY`` is heard on the ``LISTEN`` connection), also one made while that connection was lost.

Real parts: the app over httpx, real SQLite and PostgreSQL databases, two app instances on
one PostgreSQL database as two API servers would be. The SQL is counted with SQLAlchemy's own
``before_cursor_execute`` event.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from codeyard.config import Settings
from codeyard.store import schema
from codeyard.store import settings as settings_store
from codeyard.testing.postgres import PostgresCluster
from tests.conftest import TOKEN, Api, running_api
from tests.support.sql import statements

pytestmark = pytest.mark.anyio


def settings_reads(engine: AsyncEngine) -> AbstractContextManager[list[str]]:
    """The statements that read the settings table while the block runs."""
    return statements(engine, lambda sql: sql.startswith("SELECT") and "FROM settings" in sql)


async def _load(engine: AsyncEngine) -> dict[str, Any]:
    async with engine.connect() as conn:
        return await settings_store.load(conn)


async def _announce(engine: AsyncEngine, token: str) -> None:
    """A settings write's ``NOTIFY`` naming ``token``, sent from another connection."""
    async with engine.begin() as conn:
        await conn.execute(
            text("SELECT pg_notify(:channel, :token)"),
            {"channel": settings_store.NOTIFY_CHANNEL, "token": token},
        )


async def test_settings_are_read_once_until_a_write_changes_them(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = api.services.engine
    assert (await api.get("/api/settings")).json()["approval_timeout_hours"] == 10.0
    with settings_reads(engine) as reads:
        for _ in range(3):
            assert "approval_timeout_hours" not in await _load(engine)
            assert "approval_timeout_hours" not in await settings_store.read(engine)
        assert (await api.get("/api/settings")).json()["approval_timeout_hours"] == 10.0
    assert reads == []  # kept in memory

    with settings_reads(engine) as reads:
        resp = await api.request("PUT", "/api/settings", json={"approval_timeout_hours": 3})
        assert resp.status_code == 200, resp.text
        assert resp.json()["approval_timeout_hours"] == 3
        assert (await _load(engine))["approval_timeout_hours"] == 3
        assert (await settings_store.read(engine))["approval_timeout_hours"] == 3
    assert len(reads) == 1  # read again once after the write (for its answer), then kept

    fanout = api.app.state.fanout
    if fanout is not None:
        # PostgreSQL: a write's NOTIFY also comes back to the writing process's own LISTEN,
        # maybe after the copy was read anew; it names that process, which ignores it. Another
        # process's announcement, sent after it (heard in that order), drops the copy.
        heard: list[AsyncEngine] = []
        drop = settings_store.changed

        def changed(engine: AsyncEngine) -> None:
            heard.append(engine)
            drop(engine)

        monkeypatch.setattr(settings_store, "changed", changed)
        with settings_reads(engine) as reads:
            await _announce(engine, fanout.token)
            await _announce(engine, "another")
            for _ in range(500):
                if heard:
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.3)  # time for a second one, if the first were not ignored
            assert heard == [engine]
            assert (await _load(engine))["approval_timeout_hours"] == 3
            assert (await _load(engine))["approval_timeout_hours"] == 3
        assert len(reads) == 1  # only after the other process's write

    # Each caller gets its own copy: changing it changes nothing kept.
    (await _load(engine))["budgets"] = {"daily_usd": 1.0}
    assert "budgets" not in await _load(engine)


async def test_a_read_in_an_older_transaction_is_not_kept(api: Api) -> None:
    """A transaction that began before a write may see the table as it was (SQLite's snapshot):
    what it reads is given to it, never kept for everyone else."""
    engine = api.services.engine
    async with engine.connect() as older:
        await older.execute(select(schema.counters.c.value))  # its snapshot begins here
        await settings_store.save(api.services.writer, {"auto_resume": True})
        await settings_store.load(older)  # SQLite: without the write; PostgreSQL: with it
    assert (await _load(engine))["auto_resume"] is True
    assert (await api.get("/api/settings")).json()["auto_resume"] is True


async def test_a_cancelled_writer_still_drops_the_copy(api: Api) -> None:
    """The caller of a write may be cancelled while the write goes on: once it commits, the
    copy kept before it is gone all the same."""
    engine = api.services.engine
    assert "retention_days" not in await _load(engine)
    saving = asyncio.ensure_future(settings_store.save(api.services.writer, {"retention_days": 9}))
    await asyncio.sleep(0)  # handed to the writer
    saving.cancel()
    for _ in range(200):
        if (await _load(engine)).get("retention_days") == 9:
            break
        await asyncio.sleep(0.02)
    assert (await _load(engine))["retention_days"] == 9


def _settings(tmp_path: Path, name: str, url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / name, database_url=url, admin_token=TOKEN, bash_timeout_seconds=30
    )


async def _sees(api: Api, key: str, value: Any, seconds: float = 10) -> None:
    """``GET /api/settings`` on ``api`` shows ``key: value`` within ``seconds``."""
    body: dict[str, Any] = {}
    for _ in range(int(seconds / 0.02)):
        body = (await api.get("/api/settings")).json()
        if body[key] == value:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{key} never became {value!r}: {body[key]!r}")


@pytest.mark.postgres
async def test_a_write_through_another_server_is_seen(
    pg_cluster: PostgresCluster, tmp_path: Path
) -> None:
    url = pg_cluster.create_database()
    async with (
        running_api(_settings(tmp_path, "a", url)) as a,
        running_api(_settings(tmp_path, "b", url)) as b,
    ):
        assert (await a.get("/api/settings")).json()["retention_days"] is None
        with settings_reads(a.services.engine) as reads:
            await _load(a.services.engine)
        assert reads == []  # A keeps them in memory while it listens

        resp = await b.request("PUT", "/api/settings", json={"retention_days": 5})
        assert resp.status_code == 200, resp.text
        await _sees(a, "retention_days", 5)

        # A's LISTEN connection is lost and B writes at once: A may miss the announcement,
        # so it keeps nothing until it listens again, and then reads the settings anew.
        fanout = a.app.state.fanout
        listening = await fanout._conn.get_raw_connection()
        pid = listening.driver_connection.get_server_pid()
        async with b.services.engine.connect() as conn:
            await conn.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
        resp = await b.request("PUT", "/api/settings", json={"retention_days": 6})
        assert resp.status_code == 200, resp.text
        for _ in range(200):
            if fanout.reconnects:
                break
            await asyncio.sleep(0.05)
        assert fanout.reconnects == 1
        await _sees(a, "retention_days", 6)
        resp = await b.request("PUT", "/api/settings", json={"retention_days": 7})
        assert resp.status_code == 200, resp.text
        await _sees(a, "retention_days", 7)  # heard on the new connection
