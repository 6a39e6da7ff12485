"""``bench/agents_scale.py`` stopped by SIGTERM or SIGINT mid-step leaves nothing running: its
server (a real one, which stops its runs' agents) and its fake model server end, and the bench
exits 128 + the signal without writing results. Before, SIGTERM ended the bench alone and both
went on running, orphaned. The step's agents are stood in for (a step that waits), and so is
the fake model (a child that sleeps): what is checked is the bench's own clean-up."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.server import ROOT

pytestmark = [pytest.mark.slow]

DRIVER = """
import asyncio, subprocess, sys
from pathlib import Path
import bench.agents_scale as bench_module

root = Path(sys.argv[1])

def start_fake(_root, _think):
    sleep = [sys.executable, "-c", "import time; time.sleep(120)"]
    stand_in = subprocess.Popen(sleep, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print("fake", stand_in.pid, flush=True)
    return stand_in, "http://127.0.0.1:9"

async def step(n, server, *args, **kwargs):
    print("server", server.pid, flush=True)  # the step has begun
    await asyncio.sleep(120)
    raise AssertionError("not stopped")

bench_module.fresh_dir = lambda name: root
bench_module.start_fake = start_fake
bench_module.step = step
sys.argv = ["agents_scale.py", "--agents", "1", "--json", str(root / "result.json")]
bench_module.main()
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stopped_bench_stops_its_server_and_fake_model(tmp_path: Path, sig: int) -> None:
    root = tmp_path / "bench"
    root.mkdir()
    bench = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(root)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert bench.stdout is not None
    pids: dict[str, int] = {}
    try:
        for line in bench.stdout:
            name, _, pid = line.strip().partition(" ")
            if name in ("fake", "server") and pid.isdigit():
                pids[name] = int(pid)
            if name == "server":
                break
        assert set(pids) == {"fake", "server"}, bench.communicate(timeout=30)[0]
        bench.send_signal(sig)
        out = bench.communicate(timeout=60)[0]
        assert [p for p in pids.values() if _alive(p)] == [], out  # the server, the fake model
        assert bench.returncode == 128 + sig, out
        assert f"stopped by {signal.Signals(sig).name}" in out
        assert not (root / "result.json").exists()
    finally:
        if bench.poll() is None:
            bench.kill()
        bench.wait(10)
        for pid in pids.values():  # without the clean-up: the orphans
            if _alive(pid):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
