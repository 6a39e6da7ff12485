"""Shared fixtures: real git repositories, real databases (SQLite and PostgreSQL), the app."""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from codeyard.app import create_app
from codeyard.config import Settings
from codeyard.events.hub import EventFilter, SubscriberDropped
from codeyard.store.db import create_engine, migrate
from codeyard.testing.postgres import PostgresCluster, require_postgres

TOKEN = "cy_test_token"
# Runs without an agent profile allow tool calls in tests unless a test asks for another mode;
# the approval tests set `permission_mode` (or this setting) explicitly.
os.environ.setdefault("CODEYARD_DEFAULT_PERMISSION_MODE", "auto")
# Run processes start at the servers' CPU priority in tests (agent_niceness 0), so tests that wait
# on agents do not depend on how the kernel weighs niced sessions against the other workers'
# browsers and servers (it did not change the ordinary phase's time: 19:11 before, 18:55 after).
# test_run_priority and test_preparation_bound set the niceness they check; the default's own
# path is tested there, in test_sandbox_spec and in test_cli_doctor_sandbox.
os.environ.setdefault("CODEYARD_AGENT_NICENESS", "0")
# Servers started by tests record themselves (codeyard.locator) and `codeyard login` stores
# tokens under XDG_CONFIG_HOME: keep both out of the developer's own config.
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="codeyard-tests-config-")
# Agent CLI versions, remembered across server starts (codeyard.agents.version_cache): shared
# by this test process and the servers it starts, none of them the developer's own cache.
os.environ["CODEYARD_CACHE_DIR"] = tempfile.mkdtemp(prefix="codeyard-tests-cache-")
os.environ.setdefault("GIT_AUTHOR_NAME", "Codeyard Tests")
os.environ.setdefault("GIT_AUTHOR_EMAIL", "tests@codeyard.invalid")
os.environ.setdefault("GIT_COMMITTER_NAME", "Codeyard Tests")
os.environ.setdefault("GIT_COMMITTER_EMAIL", "tests@codeyard.invalid")


# pytest-timeout fails a test after 180 s, once: a teardown that then blocks (a task group that
# never ends, a stream never closed) would hold the suite until CI's own limit kills it with no
# name attached. This second, harder limit writes every thread's stack to a file and ends the
# process: xdist reports the test its worker died in and goes on, and the summary prints the
# stacks (pytest captures fd 2 during a test, so they cannot go there).
HARD_TEST_LIMIT_SECONDS = int(os.environ.get("CODEYARD_TEST_HARD_LIMIT", "300"))
HANGS = Path(tempfile.gettempdir()) / f"codeyard-test-hangs-{os.getuid()}"
_hang_files: list[Any] = []


def _arm(what: str) -> None:
    HANGS.mkdir(exist_ok=True)
    out = (HANGS / f"{os.getpid()}.txt").open("w")
    out.write(f"Still running after {HARD_TEST_LIMIT_SECONDS} s: {what}\n")
    out.flush()
    _hang_files.append(out)  # kept open: the watchdog thread writes to it
    faulthandler.dump_traceback_later(HARD_TEST_LIMIT_SECONDS, exit=True, file=out)


def _disarm() -> None:
    faulthandler.cancel_dump_traceback_later()
    while _hang_files:
        _hang_files.pop().close()
    (HANGS / f"{os.getpid()}.txt").unlink(missing_ok=True)


def pytest_sessionstart(session: pytest.Session) -> None:
    if not hasattr(session.config, "workerinput"):  # the controller: forget earlier sessions
        for old in HANGS.glob("*.txt"):
            old.unlink(missing_ok=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None]:
    _arm(item.nodeid)
    try:
        yield
    finally:
        _disarm()


@pytest.hookimpl(hookwrapper=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> Generator[None]:
    # Session fixtures (PostgreSQL clusters, fake servers) are torn down here, outside any test.
    _arm("the session's teardown")
    try:
        yield
    finally:
        _disarm()


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """After the hard limit ends a worker, the released xdist would deadlock ``--dist loadfile``."""
    if config.getvalue("dist") != "loadfile":
        return None
    from tests.support.xdist_recovery import RecoveringLoadFileScheduling

    return RecoveringLoadFileScheduling(config, log)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for found in sorted(HANGS.glob("*.txt")):
        text = found.read_text()
        if "Thread 0x" not in text:  # armed by a process still running a test, not a dump
            continue
        terminalreporter.write_sep("=", f"hung test process {found.stem}")
        terminalreporter.write_line(text)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_repo(path: Path, files: dict[str, str] | None = None) -> Path:
    """A real git repository on ``main`` with one commit."""
    path.mkdir(parents=True, exist_ok=True)
    run = lambda *a: subprocess.run(["git", *a], cwd=path, check=True, capture_output=True)  # noqa: E731
    run("init", "-q", "-b", "main")
    run("config", "commit.gpgsign", "false")
    for name, content in (files or {"README.md": "# demo\n"}).items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(content)
    run("add", "-A")
    run("commit", "-q", "-m", "initial")
    return path


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    require_postgres()
    with PostgresCluster() as cluster:
        yield cluster


def _migrated(url: str) -> None:
    """Run the real migrations on ``url`` (what the app's start does on a new database)."""

    async def migrate_and_close() -> None:
        engine = create_engine(url)
        try:
            await migrate(engine)
        finally:
            await engine.dispose()

    asyncio.run(migrate_and_close())


@functools.cache
def migrated_sqlite_file() -> Path:
    """A SQLite database the migrations brought to the newest revision, once per worker process:
    each test's database starts as a copy (the 26 migrations cost ~170 ms of CPU and up to 2 s of
    fsyncs on a loaded machine, for each of the suite's in-process app starts). Migrating a new
    database is still tested: this runs the real migrations, and so does every test that starts
    ``codeyard serve`` on a new data directory."""
    path = Path(tempfile.mkdtemp(prefix="codeyard-migrated-")) / "codeyard.db"
    _migrated(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def migrated_sqlite() -> Iterator[Path]:
    path = migrated_sqlite_file()
    yield path
    shutil.rmtree(path.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def migrated_pg_template(pg_cluster: PostgresCluster) -> str:
    """A PostgreSQL database at the newest revision, the template each test's database is
    copied from (``CREATE DATABASE … TEMPLATE``); see :func:`migrated_sqlite_file` for why."""
    url = pg_cluster.create_database("codeyard_migrated")
    _migrated(url)
    return "codeyard_migrated"


def _seed_sqlite(template: Path, db: Path) -> None:
    db.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # as the app makes its data dir
    shutil.copyfile(template, db)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test that uses this runs on SQLite and on a fresh PostgreSQL database, both already
    migrated to the newest revision."""
    if request.param == "sqlite":
        db = tmp_path / "codeyard.db"
        _seed_sqlite(request.getfixturevalue("migrated_sqlite"), db)
        return f"sqlite+aiosqlite:///{db}"
    cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
    return cluster.create_database(template=request.getfixturevalue("migrated_pg_template"))


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        admin_token=TOKEN,
        max_concurrent_runs=4,
        bash_timeout_seconds=30,
    )


@pytest.fixture
def sqlite_settings(tmp_path: Path, migrated_sqlite: Path) -> Settings:
    settings = Settings(data_dir=tmp_path / "data", admin_token=TOKEN, bash_timeout_seconds=30)
    _seed_sqlite(migrated_sqlite, settings.data_dir / "codeyard.db")
    return settings


#: The longest :meth:`Api.until` goes without reading again when no event of the run came.
STATUS_POLL = 0.25
T = TypeVar("T")


class Api:
    """The app over httpx's ASGI transport, with its lifespan running."""

    def __init__(self, client: httpx.AsyncClient, app: Any) -> None:
        self.client = client
        self.app = app

    @property
    def services(self) -> Any:
        return self.app.state.services

    async def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return await self.client.request(method, path, **kw)

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        return await self.client.get(path, **kw)

    async def post(self, path: str, json: Any = None, **kw: Any) -> httpx.Response:
        return await self.client.post(path, json=json, **kw)

    async def delete(self, path: str, **kw: Any) -> httpx.Response:
        return await self.client.delete(path, **kw)

    async def until(
        self, run: str, read: Callable[[], Awaitable[T | None]], timeout: float
    ) -> T | None:
        """``read()`` until it returns something (not None), or None after ``timeout`` seconds.

        Read again at each batch of the run's events (a status change or an approval is one) and
        at least every ``STATUS_POLL`` seconds: reading every 20 ms cost the test process a CPU
        second per ten seconds of waiting, taken from the agent CLI it waited for."""
        import anyio

        hub = self.services.hub
        sub = hub.subscribe(EventFilter(run_id=run))
        try:
            with anyio.move_on_after(timeout):
                while True:
                    found = await read()
                    if found is not None:
                        return found
                    with anyio.move_on_after(STATUS_POLL):
                        try:
                            await sub.next_batch()
                        except SubscriberDropped:
                            sub = hub.subscribe(EventFilter(run_id=run))
        finally:
            sub.close()
        return None

    async def wait_status(self, run: str, *statuses: str, timeout: float = 20) -> dict[str, Any]:
        """Until the run is in one of ``statuses``; fail with its last state otherwise."""
        body: dict[str, Any] = {}

        async def read() -> dict[str, Any] | None:
            nonlocal body
            body = (await self.get(f"/api/runs/{run}")).json()
            return body if body.get("status") in statuses else None

        found = await self.until(run, read, timeout)
        if found is not None:
            return found
        raise AssertionError(f"run {run} never reached {statuses}: {body}")


async def open_api(settings: Settings) -> AsyncIterator[Api]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://localhost", headers=headers
        ) as client:
            yield Api(client, app)


#: ``open_api`` as a context manager. Closing the generator with ``aclose()`` instead would throw
#: GeneratorExit into the app's lifespan, through the MCP session manager's task group.
running_api = contextlib.asynccontextmanager(open_api)


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    """The API on SQLite and on PostgreSQL (parametrized through ``database_url``)."""
    async for a in open_api(settings):
        yield a


@pytest.fixture
async def sqlite_api(sqlite_settings: Settings) -> AsyncIterator[Api]:
    """The API on SQLite only, for tests about behaviour that does not depend on the database."""
    async for a in open_api(sqlite_settings):
        yield a


@pytest.fixture
def git_processes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, ...]]]:
    """The arguments of each git process ``codeyard.workspace.git`` starts, as they start."""
    from codeyard.workspace import git as git_module

    started: list[tuple[str, ...]] = []
    real = git_module.git

    async def counting(*args: str, **kwargs: Any) -> git_module.GitResult:
        started.append(args)
        return await real(*args, **kwargs)

    monkeypatch.setattr(git_module, "git", counting)
    yield started
