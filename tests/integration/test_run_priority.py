"""A run's processes run below the server's CPU priority (issue 15 target 3): the agent's
process and the child it starts are niced by ``agent_niceness``, sandbox on or off, their
session's scheduling group is lowered too where the kernel groups by session, and the server
itself is never niced.

Real parts: the app over httpx, SQLite, real git, the script agent's real bash (inside the real
``bwrap`` when the sandbox is on), the kernel's own ``/proc/<pid>/stat``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from codeyard.agents.process import spawn
from codeyard.config import Settings
from codeyard.sandbox import Sandbox, contain, priority, probe
from tests.conftest import TOKEN, Api, make_repo, open_api
from tests.integration.test_sandbox_api import results, script_run

pytestmark = pytest.mark.anyio

#: The agent's bash runs this, and it starts a child that does the same: field 19 of
#: /proc/<pid>/stat (the 17th after the command's closing parenthesis) is the niceness. The
#: session's group is read after the ~0.5 s its lowering may take (``priority.group_prefix``
#: tries beside the command while the kernel's rate limit refuses).
PROBE = """nice_of() { sed 's/.*) //' /proc/$1/stat | cut -d' ' -f17; }
echo "agent $(nice_of $$)"
sh -c 'echo "child $(sed "s/.*) //" /proc/$$/stat | cut -d" " -f17)"'
echo "group $(sleep 0.7; cat /proc/self/autogroup)"
"""
STEP = "sh probe.sh"


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo", {"probe.sh": PROBE})


def _values(output: str) -> dict[str, str]:
    return {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in output.splitlines() if line}


@pytest.fixture(params=["on", "off"])
async def api(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Api]:
    if request.param == "on" and not probe(None).ok:
        pytest.skip(f"no sandbox here: {probe(None).problem}")
    settings = Settings(data_dir=tmp_path / "data", admin_token=TOKEN, agent_niceness=7)
    async for a in open_api(settings):
        if request.param == "off":
            resp = await a.request("PUT", "/api/settings", json={"sandbox": "off"})
            assert resp.status_code == 200, resp.text
        yield a


async def test_the_agent_and_its_child_run_niced_and_the_server_does_not(
    api: Api, git_repo: Path
) -> None:
    server_before = os.getpriority(os.PRIO_PROCESS, 0)
    resp = await api.post("/api/runs", json=script_run(git_repo, {"bash": STEP}))
    assert resp.status_code == 201, resp.text
    run = await api.wait_status(resp.json()["id"], "review")
    (result,) = await results(api, run["id"])
    seen = _values(result["output"])
    assert seen["agent"] == "7" and seen["child"] == "7", result["output"]
    if priority.autogroups():  # the session's group is lowered as much (here: as root)
        assert seen["group"].endswith(" nice 7"), result["output"]
    assert os.getpriority(os.PRIO_PROCESS, 0) == server_before  # the server: as started
    assert priority.niceness_of(os.getpid()) == server_before


async def test_niceness_zero_starts_the_agent_as_the_server(tmp_path: Path, git_repo: Path) -> None:
    if not probe(None).ok:
        pytest.skip(f"no sandbox here: {probe(None).problem}")
    settings = Settings(data_dir=tmp_path / "data", admin_token=TOKEN, agent_niceness=0)
    async for api in open_api(settings):
        resp = await api.post("/api/runs", json=script_run(git_repo, {"bash": STEP}))
        run = await api.wait_status(resp.json()["id"], "review")
        (result,) = await results(api, run["id"])
        seen = _values(result["output"])
        mine = str(os.getpriority(os.PRIO_PROCESS, 0))
        assert seen["agent"] == mine and seen["child"] == mine, result["output"]


async def test_a_burst_of_sandboxed_starts_each_starts_in_its_lowered_group(tmp_path: Path) -> None:
    """20 sandboxed run processes started at once, as a wave of agents is: as root each one's
    session group is lowered before the command starts (the kernel's ten-a-second limit on
    unprivileged writes would leave most at nice 0, and the rest lowered only later)."""
    if not probe(None).ok:
        pytest.skip(f"no sandbox here: {probe(None).problem}")
    if not (priority.autogroups() and priority.privileged()):
        pytest.skip("needs sched_autogroup and CAP_SYS_ADMIN")
    sandbox = Sandbox(niceness=7).for_run([tmp_path], "full")

    async def one() -> tuple[str, str]:
        jail = contain(
            sandbox, "script", ["/bin/sh", "-c", "cat /proc/self/autogroup; read -r _"], {},
            cwd=tmp_path, own_session=True,
        )  # fmt: skip
        proc, group = await spawn(
            jail.bare,  # as the agents start: the gate lowers the group
            lead=jail.lead,
            niceness=jail.niceness,
            kind="test",
            env=jail.env,
            cwd=tmp_path,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert proc.stdin is not None and proc.stdout is not None
        inside = (await proc.stdout.readline()).decode().strip()
        leader = (await asyncio.to_thread(Path(f"/proc/{proc.pid}/autogroup").read_text)).strip()
        proc.stdin.close()
        await proc.wait()
        await group.untrack()
        return inside, leader

    seen = await asyncio.gather(*(one() for _ in range(20)))
    lowered = [inside for inside, _ in seen if inside.endswith(" nice 7")]
    assert len(lowered) == len(seen), seen
    # The command is in the session the server started (bwrap made none): the same group.
    shared = [inside for inside, leader in seen if inside == leader]
    assert len(shared) == len(seen), seen
