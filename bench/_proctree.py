"""The server's process tree, read from ``/proc``: CPU, RSS and PSS of it and its descendants."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from bench._threads import thread_ticks

TICK = os.sysconf("SC_CLK_TCK")
PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    comm: str
    ticks: int  # own utime + stime
    child_ticks: int  # cutime + cstime: reaped descendants
    start: int
    rss_mb: float


def procs() -> dict[int, Proc]:
    out: dict[int, Proc] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        head, _, rest = raw.rpartition(")")
        f = rest.split()
        out[int(entry.name)] = Proc(
            int(entry.name),
            int(f[1]),
            head.partition("(")[2],
            int(f[11]) + int(f[12]),
            int(f[13]) + int(f[14]),
            int(f[19]),
            int(f[21]) * PAGE_MB,
        )
    return out


def tree(root: int, table: dict[int, Proc]) -> list[Proc]:
    """``root`` and its live descendants."""
    kids: dict[int, list[int]] = {}
    for p in table.values():
        kids.setdefault(p.ppid, []).append(p.pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            out.append(table[pid])
        todo.extend(kids.get(pid, ()))
    return out


def pss_mb(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    return 0.0


def pss_of(pids: list[int]) -> dict[int, float]:
    return {pid: pss_mb(pid) for pid in pids}


def mem_available_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return 0.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Sampler:
    """Memory and CPU of the server's process tree while a step runs."""

    def __init__(self, server_pid: int, agent_comm: str = "claude") -> None:
        self.server = server_pid
        self.agent_comm = agent_comm
        self.peak_rss: dict[str, float] = {"tree": 0.0}
        self.peak_pss: dict[str, float] = {"tree": 0.0}
        self.most_agents = 0
        self.min_available = mem_available_mb()
        #: (pid, start) -> (comm, last ticks seen, a child of the server), every descendant.
        self.ticks: dict[tuple[int, int], tuple[str, int, bool]] = {}
        self.stop = asyncio.Event()
        #: tid -> (name, ticks) of the server's threads: at the start, and the last seen.
        self.threads0 = thread_ticks(server_pid)
        self.threads = dict(self.threads0)

    async def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            members = await asyncio.to_thread(lambda: tree(self.server, procs()))
            server = next((p for p in members if p.pid == self.server), None)
            if server is None:
                return
            self.threads.update(await asyncio.to_thread(thread_ticks, self.server))
            for p in members:
                if p.pid != self.server:
                    self.ticks[(p.pid, p.start)] = (p.comm, p.ticks, p.ppid == self.server)
            total = sum(p.rss_mb for p in members)
            agents = sum(1 for p in members if p.comm == self.agent_comm)
            self.most_agents = max(self.most_agents, agents)
            if total > self.peak_rss["tree"]:
                self.peak_rss = {"tree": total, "server": server.rss_mb, "agents": agents}
            if n % 8 == 0:
                pss = await asyncio.to_thread(pss_of, [p.pid for p in members])
                total_pss = sum(pss.values())
                if total_pss > self.peak_pss["tree"]:
                    self.peak_pss = {
                        "tree": total_pss,
                        "server": pss.get(self.server, 0.0),
                        "agents": agents,
                    }
            self.min_available = min(self.min_available, mem_available_mb())
            n += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), 0.25)

    def sampled_ticks(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for comm, ticks, _ in self.ticks.values():
            out[comm] = out.get(comm, 0) + ticks
        return out

    def thread_split(self, own_ticks: int) -> dict[str, int]:
        """The server's ticks during the step by thread name (``bench/_threads.py``), and
        ``unseen``: its own ticks not in any thread's last sample (a thread's last < 0.25 s
        before it exited)."""
        self.threads.update(thread_ticks(self.server))
        out: dict[str, int] = {}
        for tid, (name, ticks) in self.threads.items():
            before = self.threads0.get(tid, (name, 0))[1]
            out[name] = out.get(name, 0) + ticks - before
        out["unseen"] = own_ticks - sum(out.values())
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def deeper_ticks(self) -> int:
        """Ticks of descendants below the server's children: the sandbox's inner processes and
        the agents, which the server never reaps (their CPU never reaches its ``cutime``)."""
        return sum(ticks for _, ticks, child in self.ticks.values() if not child)


async def wait_tree_empty(server_pid: int, timeout: float = 60) -> int:
    """Wait (bounded) until the server has no descendant left; how many remain."""
    end = time.monotonic() + timeout
    while True:
        left = len(tree(server_pid, procs())) - 1
        if left <= 0 or time.monotonic() > end:
            return left
        await asyncio.sleep(0.2)
