"""The throw-away PostgreSQL cluster that the storage and API tests run against."""

from __future__ import annotations

import errno
import socket
import subprocess
import sys
import unittest
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from codeyard.testing.postgres import (
    PostgresCluster,
    PostgresClusterError,
    PostgresUnavailable,
    _teardown,
    require_postgres,
    why_unavailable,
)

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    require_postgres()
    with PostgresCluster() as pg:
        yield pg


async def _scalar(url: str, sql: str) -> object:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(text(sql))
            return result.scalar() if result.returns_rows else None
    finally:
        await engine.dispose()


def _processes_mentioning(needle: str) -> list[int]:
    """Live processes whose command line contains ``needle`` (zombies have none)."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if needle.encode() in cmdline.read_bytes():
                pids.append(int(cmdline.parent.name))
        except OSError:
            continue
    return pids


@pytest.mark.postgres
async def test_default_database_answers(cluster: PostgresCluster) -> None:
    assert cluster.url.startswith(f"postgresql+asyncpg://postgres@127.0.0.1:{cluster.port}/")
    assert await _scalar(cluster.url, "select 1") == 1
    assert await _scalar(cluster.url, "select current_database()") == cluster.dbname


@pytest.mark.postgres
async def test_created_databases_are_independent(cluster: PostgresCluster) -> None:
    alpha = cluster.create_database("alpha")
    beta = cluster.create_database()  # generated name
    assert alpha != beta
    assert await _scalar(alpha, "select 1") == 1
    assert await _scalar(beta, "select 1") == 1

    await _scalar(alpha, "create table only_in_alpha (id int primary key)")
    assert await _scalar(alpha, "select to_regclass('public.only_in_alpha')::text") is not None
    assert await _scalar(beta, "select to_regclass('public.only_in_alpha')::text") is None

    cluster.drop_database("alpha")
    with pytest.raises(PostgresClusterError, match="already exists"):
        cluster.create_database(beta.rsplit("/", 1)[1])


@pytest.mark.postgres
def test_stop_removes_everything_and_frees_the_port() -> None:
    require_postgres()
    pg = PostgresCluster().start()
    base_dir, port = pg.base_dir, pg.port
    assert (base_dir / "data" / "PG_VERSION").is_file()
    with socket.create_connection((pg.host, port), timeout=5):
        pass

    pg.stop()
    pg.stop()  # idempotent

    assert not pg.running
    assert not base_dir.exists()
    assert _processes_mentioning(str(base_dir)) == []
    with pytest.raises(PostgresClusterError):
        _ = pg.url
    with socket.socket() as probe, pytest.raises(OSError) as refused:
        probe.settimeout(5)
        probe.connect(("127.0.0.1", port))
    assert refused.value.errno == errno.ECONNREFUSED
    with socket.socket() as listener:
        # Same option PostgreSQL sets, so old TIME_WAIT connections do not count as "in use".
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen()


def test_missing_binaries_skip_locally_but_fail_in_ci(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CODEYARD_PG_BIN", str(tmp_path / "no-such-bin"))
    reason = why_unavailable()
    assert reason is not None and "apt-get install postgresql" in reason

    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(unittest.SkipTest, match="not found"):
        require_postgres()

    monkeypatch.setenv("CI", "true")
    with pytest.raises(PostgresUnavailable, match="CI is set"):
        require_postgres()


def test_a_stale_pid_file_naming_a_stranger_signals_no_one(tmp_path: Path) -> None:
    """A cluster whose server died with its test process leaves ``postmaster.pid`` behind; pids
    wrap (``pid_max`` 32,768 here), so the number may now be anyone's — a pytest worker's. The
    teardown removes the directory and leaves that process alone (neither SIGQUIT from us nor
    from ``pg_ctl stop``). A real process stands in for the stranger; no PostgreSQL is needed."""
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        base_dir = tmp_path / "codeyard-pg-stale"
        data_dir = base_dir / "data"
        data_dir.mkdir(parents=True)
        (data_dir / "postmaster.pid").write_text(f"{stranger.pid}\n{data_dir}\n")
        pg_ctl = tmp_path / "pg_ctl"  # would SIGQUIT the pid it reads; must not be called
        marker = tmp_path / "pg_ctl-called"
        pg_ctl.write_text(f"#!/bin/sh\ntouch {marker}\nkill -QUIT {stranger.pid}\n")
        pg_ctl.chmod(0o755)

        _teardown(pg_ctl, base_dir, None)

        assert not base_dir.exists()
        assert not marker.exists()
        assert stranger.poll() is None, "the stranger holding the recycled pid was signalled"
    finally:
        stranger.kill()
        stranger.wait(timeout=10)
