"""Restart after ``kill -9`` with 100 interrupted runs and 1,000 pending approvals (issue 12).

A real ``codeyard serve`` (``max_concurrent_runs`` 100, ``auto_resume`` on) gets 100 script runs
in one repository, each asking approval for the first of its ten shell steps (100 pending
approvals through the real path); 900 more pending approvals, one for each later step (so a
resumed agent would bind to them), are written into the database while the server is down.
The server is killed with ``kill -9`` and started again on the same data dir, three times:

* restart to healthy: spawn to the first 200 from ``/api/health`` (start-up recovery included:
  sweeping recorded process groups, interrupting the 100 runs, keeping 1,000 approvals pending);
* to every run running again: spawn until all 100 runs are back in ``waiting`` on their bound
  approval (``auto_resume`` re-queued them, they re-ran nothing, their agent asked step 1 again
  and was bound to the approval it had). The n-th crash-resume in a row waits a back-off
  (0 s, 1 s, 2 s) first, which is included.

A baseline start (fresh data dir, nothing to recover) is measured the same way, and the
server's own CPU time to healthy is recorded: the machine is shared with other work.

    .venv/bin/python bench/recovery.py [--runs 100] [--approvals-per-run 10]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    OUT,
    TOKEN,
    free_port,
    fresh_dir,
    machine,
    make_repo,
    stop,
    wait_healthy,
    write_json,
)
from codeyard.domain.approvals import fingerprint

CODEYARD = Path(sys.executable).parent / "codeyard"
#: The executor's start-up log line (``codeyard.executor.recovery``): wall and CPU seconds.
RECOVERED = re.compile(r"recovered from an unclean stop in ([0-9.]+) s \(([0-9.]+) s CPU\)")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    def __init__(self, data_dir: Path, log: Path) -> None:
        self.data_dir, self.log = data_dir, log
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> tuple[float, float, float]:
        """(spawn time, seconds to healthy, server CPU seconds by then)."""
        env = {
            **os.environ,
            "CODEYARD_ADMIN_TOKEN": TOKEN,
            "CODEYARD_MAX_CONCURRENT_RUNS": "100",
            "CODEYARD_DEFAULT_PERMISSION_MODE": "default",
            "CODEYARD_RUN_CREATE_PER_MINUTE": "1000",
        }
        with self.log.open("a") as out:
            t0 = time.monotonic()
            self.proc = subprocess.Popen(
                [
                    str(CODEYARD),
                    "serve",
                    "--port",
                    str(self.port),
                    "--data-dir",
                    str(self.data_dir),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        t1 = wait_healthy(self.port, self.proc, 120)
        return t0, t1 - t0, _cpu_seconds(self.proc.pid)

    def crash(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=60,
        )


def statuses(client: httpx.Client) -> dict[str, str]:
    out: dict[str, str] = {}
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 200}
        if cursor:
            params["cursor"] = cursor
        body = client.get("/api/runs", params=params).json()
        out.update({r["id"]: r["status"] for r in body["data"]})
        cursor = body.get("next_cursor")
        if not cursor:
            return out


def wait_all(client: httpx.Client, want: set[str], count: int, limit: float) -> float:
    """Poll until ``count`` runs are in ``want``; the monotonic time they were."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        found = statuses(client)
        if sum(1 for s in found.values() if s in want) >= count:
            return time.monotonic()
        time.sleep(0.05)
    raise TimeoutError(f"runs never all reached {want}: {statuses(client)}")


def steps(i: int, n: int) -> list[dict[str, str]]:
    return [{"bash": f"echo run{i} step{k}"} for k in range(n)]


def add_approvals(db: Path, runs: list[dict[str, Any]], per_run: int) -> int:
    """Pending approvals for steps 1.. of each run, as the agent would ask them later."""
    con = sqlite3.connect(db)
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    later = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() + 36000))
    rows = []
    for i, run in enumerate(runs):
        for k in range(1, per_run):
            command = f"echo run{i} step{k}"
            rows.append(
                (
                    f"apr_bench{i:03d}{k:02d}",
                    run["id"],
                    f"call_1_{k}",
                    "Bash",
                    "bash",
                    json.dumps({"command": command}),
                    command,
                    "mode:default",
                    "pending",
                    now,
                    later,
                    fingerprint("Bash", {"command": command}),
                )
            )
    con.executemany(
        "INSERT INTO approvals (id, run_id, call_id, tool, kind, input, title, rule, status, "
        "created_at, expires_at, fingerprint) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        rows,
    )
    con.execute("UPDATE runs SET pending_approvals = ?", (per_run,))
    con.commit()
    con.close()
    return len(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--approvals-per-run", type=int, default=10)
    ap.add_argument("--restarts", type=int, default=3)
    ap.add_argument("--json", type=Path, default=OUT / "recovery.json")
    args = ap.parse_args()
    base = fresh_dir("recovery")
    log = base / "server.log"
    repo = make_repo(base / "repo")

    baseline = Server(base / "baseline", log)
    _, baseline_s, baseline_cpu = baseline.start()
    assert baseline.proc is not None
    stop(baseline.proc)

    server = Server(base / "data", log)
    try:
        server.start()
        with server.client() as client:
            assert client.put("/api/settings", json={"auto_resume": True}).status_code == 200
            runs = []
            for i in range(args.runs):
                resp = client.post(
                    "/api/runs",
                    json={
                        "prompt": f"bench {i}",
                        "repo_path": str(repo),
                        "provider": "script",
                        "agent_options": {"scenario": {"steps": steps(i, args.approvals_per_run)}},
                    },
                )
                assert resp.status_code == 201, resp.text
                runs.append(resp.json())
            wait_all(client, {"waiting"}, args.runs, 600)
        server.crash()
        extra = add_approvals(base / "data" / "codeyard.db", runs, args.approvals_per_run)

        restarts = []
        for n in range(args.restarts):
            t0, healthy_s, cpu = server.start()
            with server.client() as client:
                t_all = wait_all(client, {"waiting"}, args.runs, 600)
                count = 0
                cursor = None
                while True:
                    params: dict[str, Any] = {"status": "pending", "limit": 200}
                    if cursor:
                        params["cursor"] = cursor
                    body = client.get("/api/approvals", params=params).json()
                    count += len(body["data"])
                    cursor = body.get("next_cursor")
                    if not cursor:
                        break
            found = RECOVERED.findall(log.read_text())
            wall, cpu_rec = (float(found[-1][0]), float(found[-1][1])) if found else (None, None)
            restarts.append(
                {
                    "recovery_s": wall,
                    "recovery_cpu_s": cpu_rec,
                    "restart": n + 1,
                    "healthy_s": round(healthy_s, 3),
                    "server_cpu_to_healthy_s": round(cpu, 3),
                    "all_running_again_s": round(t_all - t0, 3),
                    "pending_approvals_after": count,
                }
            )
            print(json.dumps(restarts[-1]))
            server.crash()
    finally:  # never leave a server behind when something above fails
        if server.proc is not None and server.proc.poll() is None:
            stop(server.proc)
    result = {
        "machine": machine(),
        "runs": args.runs,
        "pending_approvals": args.runs + extra,
        "baseline_healthy_s": round(baseline_s, 3),
        "baseline_cpu_s": round(baseline_cpu, 3),
        "restarts": restarts,
        "load_average": os.getloadavg(),
    }
    print(json.dumps(result))
    write_json(args.json, result)


if __name__ == "__main__":
    main()
