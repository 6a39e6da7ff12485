"""A real Codeyard server in a subprocess, and SSE clients over httpx streaming.

httpx's ASGI transport buffers whole responses, so anything about live streams (SSE, the
WebSocket) or about the process itself (``kill -9``, restart) needs a real server on a real port.
:class:`ServerProcess` starts one with ``run_server(Settings())`` configured through
``CODEYARD_*`` variables, waits for ``/api/health``, and kills it together with every process it
started (the script agent's bash steps run in their own sessions, so killing a process group
would miss them).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx

TOKEN = "cy_test_token"
ROOT = Path(__file__).resolve().parents[2]
SERVER_CODE = (
    "from codeyard.config import Settings; from codeyard.server import run_server; "
    "run_server(Settings())"
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _PortTaken(RuntimeError):
    """The server exited because another process held its port."""


def _listens(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds a socket listening on ``port`` (any address: tests bind
    0.0.0.0 too; Linux: the listening sockets' inodes in its network namespace's ``tcp`` and
    ``tcp6`` tables, then its descriptors)."""
    suffix = f":{port:04X}"
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                if fields[1].endswith(suffix) and fields[3] == "0A":  # 0A: LISTEN
                    inodes.add(fields[9])
    if not inodes:
        return False
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    return True
    return False


def _descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (Linux ``/proc``), children before grandchildren."""
    out: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        for children in Path(f"/proc/{parent}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                for child in children.read_text().split():
                    out.append(int(child))
                    todo.append(int(child))
                    _STARTED.setdefault(int(child), _start_time(int(child)))
    return out


def _kill(pids: list[int]) -> None:
    for pid in pids:
        if not _alive(pid):  # gone, or its pid now names another test's process
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


#: Start time (clock ticks since boot) of each process seen by :func:`_descendants`. Pids wrap
#: around quickly here (pid_max 32768, a suite starts tens of thousands of processes, several
#: test workers at once), so a pid alone could name another test's new process.
_STARTED: dict[int, str | None] = {}


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(pid: int) -> bool:
    """True while the process seen as ``pid`` exists and is not a zombie (a new process that
    reused the pid does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return False
    seen = _STARTED.get(pid)
    return seen is None or seen == fields[19]


class ServerProcess:
    """``codeyard serve`` as a child process on a free loopback port, restartable on its data."""

    def __init__(
        self,
        data_dir: Path,
        *,
        token: str = TOKEN,
        database_url: str | None = None,
        env: dict[str, str] | None = None,
        port: int | None = None,
        wrap: Sequence[str] = (),
    ) -> None:
        self.data_dir = data_dir
        #: A command the server is started through; it must exec it (the pid is the server's).
        self.wrap = list(wrap)
        self.token = token
        self.port = port or free_port()
        #: The port was picked here: a start that finds it taken picks another.
        self._own_port = port is None
        self.log_path = data_dir.parent / f"{data_dir.name}-server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._env = {k: v for k, v in os.environ.items() if not k.startswith("CODEYARD_")}
        self._env.update(
            CODEYARD_DATA_DIR=str(data_dir),
            CODEYARD_HOST="127.0.0.1",
            CODEYARD_PORT=str(self.port),
            CODEYARD_ADMIN_TOKEN=token,
            CODEYARD_DEFAULT_PERMISSION_MODE=os.environ.get(
                "CODEYARD_DEFAULT_PERMISSION_MODE", "auto"
            ),
            PYTHONUNBUFFERED="1",
        )
        if database_url:
            self._env["CODEYARD_DATABASE_URL"] = database_url
        if os.environ.get("CODEYARD_CACHE_DIR"):  # the tests' CLI versions (tests/conftest.py)
            self._env["CODEYARD_CACHE_DIR"] = os.environ["CODEYARD_CACHE_DIR"]
        self._env.update(env or {})
        self._stray: set[int] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "the server is not running"
        return self.proc.pid

    def start(self, timeout: float = 120) -> None:
        """Start the server and wait until ``/api/health`` answers 200 from this server.

        A free port picked by :func:`free_port` can be taken by another test's server before
        this one binds it (pytest-xdist workers pick at once): that server's health check would
        answer, and this one exits with "is in use". So the answer counts only once this
        server's own process listens on the port; a port picked here and found taken is
        replaced by another one, at most three times."""
        for attempt in range(3):
            try:
                self._start_once(timeout)
                return
            except _PortTaken:
                if not self._own_port or attempt == 2:
                    raise
                self.port = free_port()
                self._env["CODEYARD_PORT"] = str(self.port)

    def _start_once(self, timeout: float) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        with self.log_path.open("ab") as log:
            log.write(f"--- start {time.strftime('%H:%M:%S')} ---\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [*self.wrap, sys.executable, "-c", SERVER_CODE],
                cwd=ROOT,
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                tail = self.log_tail()
                if f"Port {self.port} on " in tail and "is in use" in tail:
                    raise _PortTaken(tail)
                raise RuntimeError(f"the server exited with {code}:\n{tail}")
            with contextlib.suppress(httpx.TransportError):
                healthy = httpx.get(f"{self.url}/api/health", timeout=2).status_code == 200
                if healthy and _listens(self.proc.pid, self.port):
                    return
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"the server did not become healthy:\n{self.log_tail()}")
            time.sleep(0.05)

    async def start_async(self, timeout: float = 120) -> None:
        await anyio.to_thread.run_sync(lambda: self.start(timeout))

    def kill(self) -> None:
        """``kill -9`` the server and everything it started; wait until they are gone."""
        if self.proc is None:
            return
        children = _descendants(self.proc.pid)
        _kill([self.proc.pid])
        self.proc.wait()
        self.proc = None
        _kill(children)
        self._stray.update(children)

    def crash(self) -> list[int]:
        """``kill -9`` the server process alone, like a real crash: what it started is left to
        the kernel and the next start-up (returned, and checked gone by :meth:`stop`)."""
        if self.proc is None:
            return []
        children = _descendants(self.proc.pid)
        _kill([self.proc.pid])
        self.proc.wait()
        self.proc = None
        self._stray.update(children)
        return children

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM (graceful shutdown), SIGKILL after ``timeout``; then reap what is left."""
        if self.proc is not None:
            children = _descendants(self.proc.pid)
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                children += _descendants(self.proc.pid)
                self.proc.kill()
                self.proc.wait()
            self.proc = None
            _kill(children)
            self._stray.update(children)
        deadline = time.monotonic() + 5
        while any(_alive(p) for p in self._stray) and time.monotonic() < deadline:
            time.sleep(0.02)
        left = [p for p in self._stray if _alive(p)]
        assert not left, f"processes left behind by the server: {left}"

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def client(self, *, token: str | None = None, timeout: float = 30) -> httpx.AsyncClient:
        """An async client for this server, authenticated with the admin token by default."""
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=timeout)


# --- REST helpers ---------------------------------------------------------------------------


async def event_log(client: httpx.AsyncClient, run: str, **params: Any) -> list[dict[str, Any]]:
    """A run's whole event log from ``GET /api/runs/{id}/events``, paging by ``next_cursor``."""
    out: list[dict[str, Any]] = []
    after = 0
    while True:
        resp = await client.get(
            f"/api/runs/{run}/events", params={**params, "after": after, "limit": 100}
        )
        assert resp.status_code == 200, resp.text
        body = resp.json()
        out.extend(body["data"])
        if body["next_cursor"] is None:
            return out
        after = int(body["next_cursor"])


async def wait_status(
    client: httpx.AsyncClient, run: str, *statuses: str, timeout: float = 20
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    with anyio.move_on_after(timeout):
        while True:
            body = (await client.get(f"/api/runs/{run}")).json()
            if body.get("status") in statuses:
                return body
            await anyio.sleep(0.05)
    raise AssertionError(f"run {run} never reached {statuses}: {body}")


async def wait_for_event(
    client: httpx.AsyncClient,
    run: str,
    predicate: Callable[[dict[str, Any]], bool],
    timeout: float = 20,
) -> dict[str, Any]:
    """Poll the run's events until one matches ``predicate``; return it."""
    with anyio.move_on_after(timeout):
        while True:
            for event in await event_log(client, run):
                if predicate(event):
                    return event
            await anyio.sleep(0.05)
    raise AssertionError(f"no matching event on run {run}: {await event_log(client, run)}")


# --- SSE ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Frame:
    """One SSE frame as sent: its fields, and the raw lines it was made of."""

    id: str | None
    event: str
    data: str
    lines: tuple[str, ...] = ()

    def json(self) -> Any:
        return json.loads(self.data)

    @property
    def event_id(self) -> int:
        assert self.id is not None, f"frame without id: {self}"
        return int(self.id)


class SseStream:
    """An open SSE response; :meth:`frames` parses it (``:`` comments such as pings skipped)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.comments: list[str] = []

    async def frames(self) -> AsyncIterator[Frame]:
        fields: dict[str, list[str]] = {}
        lines: list[str] = []
        async for line in self.response.aiter_lines():
            if line == "":
                if "data" in fields:
                    ids = fields.get("id")
                    yield Frame(
                        ids[-1] if ids else None,
                        fields.get("event", ["message"])[-1],
                        "\n".join(fields["data"]),
                        tuple(lines),
                    )
                fields, lines = {}, []
                continue
            if line.startswith(":"):
                self.comments.append(line)
                continue
            lines.append(line)
            name, _, value = line.partition(":")
            fields.setdefault(name, []).append(value.removeprefix(" "))


@asynccontextmanager
async def open_sse(
    client: httpx.AsyncClient,
    path: str,
    *,
    last_event_id: int | str | None = None,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> AsyncIterator[SseStream]:
    """``GET path`` as an event stream; asserts a 200 ``text/event-stream`` answer."""
    sent = {"Accept": "text/event-stream", **(headers or {})}
    if last_event_id is not None:
        sent["Last-Event-ID"] = str(last_event_id)
    async with client.stream("GET", path, params=params, headers=sent) as resp:
        if resp.status_code != 200:
            await resp.aread()
            raise AssertionError(f"GET {path}: {resp.status_code} {resp.text}")
        assert resp.headers["content-type"].startswith("text/event-stream"), resp.headers
        yield SseStream(resp)


async def read_frames(
    client: httpx.AsyncClient,
    path: str,
    *,
    until: Callable[[Frame], bool] | None = None,
    count: int | None = None,
    timeout: float = 20,
    **kw: Any,
) -> list[Frame]:
    """Frames of one connection: to the end of the stream, ``count`` of them, or through the
    first one matching ``until``."""
    frames: list[Frame] = []
    with anyio.fail_after(timeout):
        async with open_sse(client, path, **kw) as stream:
            if count == 0:
                return frames
            async for frame in stream.frames():
                frames.append(frame)
                if (until is not None and until(frame)) or len(frames) == count:
                    break
    return frames


@dataclass
class Following:
    """What a reconnecting SSE client received, across all its connections."""

    frames: list[Frame] = field(default_factory=list)
    connections: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def ids(self) -> list[int]:
        return [f.event_id for f in self.frames]


async def follow_with_reconnects(
    client: httpx.AsyncClient,
    path: str,
    *,
    params: dict[str, Any] | None = None,
    after: int = 0,
    per_connection: Callable[[], int | None] = lambda: None,
    stop: Callable[[Frame], bool] | None = None,
    pause: Callable[[], float] = lambda: 0.05,
    down_timeout: float = 30,
    result: Following | None = None,
) -> Following:
    """Follow ``path`` like a browser's EventSource: reconnect with ``Last-Event-ID`` = the last id
    received, after dropped connections (server gone) and after ``per_connection()`` frames (the
    client hangs up on purpose; ``None`` reads on). Ends when a frame matches ``stop``, or, with
    no ``stop``, when the server ends a stream by itself (``until_idle``)."""
    got = result if result is not None else Following()
    last = after
    failing_since: float | None = None
    while True:
        limit = per_connection()
        try:
            async with open_sse(client, path, params=params, last_event_id=last) as stream:
                got.connections += 1
                failing_since = None
                n = 0
                hung_up = False
                if limit == 0:
                    hung_up = True
                else:
                    async for frame in stream.frames():
                        got.frames.append(frame)
                        last = frame.event_id
                        n += 1
                        if stop is not None and stop(frame):
                            return got
                        if limit is not None and n >= limit:
                            hung_up = True
                            break
            if not hung_up and stop is None:
                return got  # the server ended the stream
        except httpx.TransportError as exc:
            got.errors.append(f"{type(exc).__name__}: {exc}")
            now = time.monotonic()
            failing_since = failing_since or now
            if now - failing_since > down_timeout:
                raise AssertionError(f"the stream stayed unreachable: {got.errors[-3:]}") from exc
        await anyio.sleep(pause())
