"""Helpers shared by the benchmarks: machine facts, ports, repos, percentiles, health polling."""

from __future__ import annotations

import json
import math
import os
import platform
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
OUT = BENCH / "out"  # scratch space (git-ignored)
PY = sys.executable
TOKEN = "cy_bench_token"
HOST = "127.0.0.1"


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kb = 0
    return {
        "date": subprocess.run(["date"], capture_output=True, text=True).stdout.strip(),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "mem_gb": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
    }


def _cpu_times() -> tuple[int, int]:
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields), idle


def cpu_busy(seconds: float = 1.0) -> float:
    """Fraction of all CPUs busy over ``seconds`` (everything on the machine, not just us)."""
    total0, idle0 = _cpu_times()
    time.sleep(seconds)
    total1, idle1 = _cpu_times()
    return 1 - (idle1 - idle0) / max(1, total1 - total0)


def wait_quiet(threshold: float = 0.2, max_wait: float = 45) -> dict[str, float]:
    """The machine is shared: wait (bounded) until other work leaves it mostly idle.

    Returns what was seen, to be reported next to the numbers.
    """
    start = time.monotonic()
    busy = cpu_busy()
    while busy > threshold and time.monotonic() - start < max_wait:
        busy = cpu_busy()
    return {
        "busy_before": round(busy, 2),
        "waited_s": round(time.monotonic() - start, 1),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


def _own_tree_ticks() -> int:
    """CPU ticks (user + system, with waited-for children) of this process and its live
    descendants: the benchmark's own work, whatever process it ran in."""
    me = os.getpid()
    stats: dict[int, tuple[int, int]] = {}  # pid -> (ppid, ticks)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            f = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry.name)] = (int(f[1]), sum(int(x) for x in f[11:15]))
    total = 0
    for pid, (_, ticks) in stats.items():
        p = pid
        for _ in range(64):  # bounded walk up the tree
            if p == me:
                total += ticks
                break
            if p not in stats or p <= 1:
                break
            p = stats[p][0]
    return total


class Interference:
    """How much CPU other work on the machine took while a measurement ran.

    ``foreign`` is the share of the machine's total CPU (all cores) used by processes outside
    this benchmark's process tree between ``start()`` and ``stop()``.
    """

    def start(self) -> None:
        self._total0, self._idle0 = _cpu_times()
        self._own0 = _own_tree_ticks()

    def stop(self) -> float:
        total1, idle1 = _cpu_times()
        own1 = _own_tree_ticks()
        busy = (total1 - self._total0) - (idle1 - self._idle0)
        foreign = busy - (own1 - self._own0)
        self.foreign = max(0.0, foreign / max(1, total1 - self._total0))
        return self.foreign


#: A measurement during which other work used more than this share of the machine is retried.
FOREIGN_MAX = 0.10


def guarded(fn: Callable[[], T], attempts: int = 3) -> tuple[T, dict[str, Any]]:
    """Run a measurement, retrying (bounded) while other work disturbs it.

    Before each attempt, waits (up to 20 s) for the machine to be mostly idle. Returns the
    first attempt during which foreign CPU stayed under ``FOREIGN_MAX``, else the least
    disturbed one, with what was seen (reported next to the numbers).
    """
    best: tuple[T, dict[str, Any]] | None = None
    for attempt in range(1, attempts + 1):
        quiet = wait_quiet(max_wait=20)
        mon = Interference()
        mon.start()
        value = fn()
        seen = {"foreign_cpu": round(mon.stop(), 3), "attempt": attempt, **quiet}
        if best is None or seen["foreign_cpu"] < best[1]["foreign_cpu"]:
            best = (value, seen)
        if seen["foreign_cpu"] <= FOREIGN_MAX:
            break
    assert best is not None
    return best


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def fresh_dir(name: str) -> Path:
    """An empty ``bench/out/<name>``, or ``<name>-<pid>`` while another live bench process
    holds that one (two sittings of one bench, e.g. an A/B, must not delete each other's
    data directory under a running server)."""
    import shutil

    path = OUT / name
    if _held_by_other(path):
        path = OUT / f"{name}-{os.getpid()}"
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    (path / ".owner").write_text(str(os.getpid()))
    return path


def _held_by_other(path: Path) -> bool:
    try:
        pid = int((path / ".owner").read_text())
    except (OSError, ValueError):
        return False
    return pid != os.getpid() and Path(f"/proc/{pid}").exists()


def make_repo(path: Path) -> Path:
    """A real git repository on ``main`` with one commit (as the tests build them)."""
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@codeyard.invalid",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@codeyard.invalid",
    }
    path.mkdir(parents=True, exist_ok=True)
    for args in (["init", "-q", "-b", "main"], ["config", "commit.gpgsign", "false"]):
        subprocess.run(["git", *args], cwd=path, check=True, capture_output=True, env=env)
    (path / "README.md").write_text("# bench\n")
    subprocess.run(["git", "add", "-A"], cwd=path, check=True, capture_output=True, env=env)
    subprocess.run(
        ["git", "commit", "-q", "-m", "initial"], cwd=path, check=True, capture_output=True, env=env
    )
    return path


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, math.ceil(p / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


def http_get(port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """A minimal blocking HTTP/1.1 GET (no client library start-up cost in the measurement)."""
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 0
    return status, body


def wait_healthy(port: int, proc: subprocess.Popen[Any] | None, deadline_s: float) -> float:
    """Poll ``/api/health`` every ~2 ms until 200; returns the monotonic time it answered."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            status, _ = http_get(port, "/api/health", timeout=1.0)
            if status == 200:
                return time.monotonic()
        except OSError:
            pass
        time.sleep(0.002)
    raise TimeoutError(f"server on port {port} not healthy within {deadline_s}s")


def stop(proc: subprocess.Popen[Any], timeout: float = 10) -> None:
    """SIGINT (graceful uvicorn shutdown), then SIGKILL if it lingers — only our own child."""
    if proc.poll() is not None:
        return
    import signal

    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2))


def write_section(path: Path, begin: str, end: str, section: str) -> None:
    """Replace the generated section between ``begin`` and ``end`` markers of ``path``
    (``section`` includes both), or append it when the file has none yet."""
    text = path.read_text()
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


def on_databases(
    measure: Callable[[str, int], Coroutine[Any, Any, None]], count: int, pg: bool, prefix: str
) -> None:
    """``measure(url, count)`` on a throw-away SQLite database, then on a throw-away
    PostgreSQL cluster's database when ``pg``."""
    import asyncio
    import tempfile

    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        asyncio.run(measure(f"sqlite+aiosqlite:///{tmp}/codeyard.db", count))
    if pg:
        from codeyard.testing.postgres import PostgresCluster

        with PostgresCluster() as cluster:
            asyncio.run(measure(cluster.create_database(), count))
