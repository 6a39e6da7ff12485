"""Crash-proof runs (issue 12), one finding per test, with a real server killed by ``kill -9``.

The server process alone is killed (:meth:`ServerProcess.crash`), as in a real crash: what it
started is left to the kernel and to the next start-up, which must stop it. Runs use the script
provider; repositories, git and SQLite are real.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from codeyard.agents.process import SPAWN_WINDOW_ENV
from codeyard.executor.recovery import GAVE_UP, MAX_CRASH_RESUMES
from tests.conftest import make_repo
from tests.support.server import (
    ServerProcess,
    _alive,
    _descendants,
    event_log,
    wait_for_event,
    wait_status,
)

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.timeout(300)]

#: A setup script that is slow only while the worktree holds ``.slow``, copied in from the main
#: checkout by ``copy_files`` (the sandbox hides the checkout itself from setup scripts). The
#: test removes it after the crash, so the resumed prepare is quick.
SLOW_SETUP = "if [ -f .slow ]; then sleep 30; fi; echo ready > ready.txt"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path / "data", env={"CODEYARD_MAX_CONCURRENT_RUNS": "4"})
    try:
        srv.start(timeout=120)
        yield srv
    finally:
        srv.stop()


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def codeyard_branches(repo: Path) -> list[str]:
    return [b for b in git(repo, "branch", "--format=%(refname:short)").split() if "codeyard/" in b]


def registered_worktrees(repo: Path) -> list[str]:
    """The repository's runs' worktrees: not its own, nor the ready one the server keeps for
    its next run (``run_workspace.pool``, made in the background after a run is prepared)."""
    lines = git(repo, "worktree", "list", "--porcelain").splitlines()
    paths = [line.split(" ", 1)[1] for line in lines if line.startswith("worktree ")]
    return [p for p in paths if Path(p).resolve() != repo.resolve() and "worktree-pool" not in p]


async def project_repo(client: httpx.AsyncClient, repo: Path, **settings: Any) -> None:
    resp = await client.post(
        "/api/projects", json={"name": repo.name, "repos": [{"path": str(repo)}]}
    )
    assert resp.status_code == 201, resp.text
    if settings:
        repo_id = resp.json()["repos"][0]["id"]
        resp = await client.patch(f"/api/repos/{repo_id}", json=settings)
        assert resp.status_code == 200, resp.text


async def create_run(
    client: httpx.AsyncClient, repo: Path, *steps: dict[str, Any], mode: str = "auto"
) -> dict[str, Any]:
    resp = await client.post(
        "/api/runs",
        json={
            "prompt": "Survive",
            "repo_path": str(repo),
            "provider": "script",
            "agent_options": {"scenario": {"steps": list(steps)}, "permission_mode": mode},
        },
    )
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


async def gone_within(pids: list[int], seconds: float) -> list[int]:
    """The pids still alive after ``seconds`` (empty when they all went in time)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(_alive(p) for p in pids):
            return []
        await anyio.sleep(0.02)
    return [p for p in pids if _alive(p)]


async def step_process_running(server: ServerProcess, command: str, timeout: float = 30) -> None:
    """Wait until a process of the server runs ``command`` itself (its argv starts with the
    command's words, read from ``/proc``): not a shell or gate that only names it."""
    words = command.encode().split()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.proc is not None
        for pid in _descendants(server.proc.pid):
            with contextlib.suppress(OSError):
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                if argv[: len(words)] == words:
                    return
        await anyio.sleep(0.02)
    raise AssertionError(f"no process of the server ran {command!r} within {timeout}s")


def is_call(command: str) -> Any:
    return lambda e: e["type"] == "tool.call" and command in str(e["data"].get("input"))


async def test_crash_while_preparing_leaves_a_resumable_run_and_delete_removes_everything(
    server: ServerProcess, tmp_path: Path
) -> None:
    """Finding 1 (and 2 for setup scripts): the branch and worktree paths are recorded before
    they are made; a second prepare cleans what the first left; delete removes it all; the
    setup script of the killed server does not outlive the restart."""
    kept, deleted = make_repo(tmp_path / "kept"), make_repo(tmp_path / "deleted")
    with anyio.fail_after(150):
        async with server.client() as client:
            for repo in (kept, deleted):
                (repo / ".slow").write_text("")
                await project_repo(client, repo, setup_script=SLOW_SETUP, copy_files=[".slow"])
            a = await create_run(client, kept, {"say": "done"})
            b = await create_run(client, deleted, {"say": "done"})
            for run in (a, b):
                await wait_for_event(client, run["id"], is_call("sleep 30"))
            left = server.crash()
            assert left, "the setup scripts were not running"
            await server.start_async(timeout=120)
            assert await gone_within(left, 10.0) == []

            for run, repo in ((a, kept), (b, deleted)):
                after = await wait_status(client, run["id"], "interrupted", timeout=30)
                assert after["branch"] and after["branch"].startswith("codeyard/")
                assert codeyard_branches(repo) == [after["branch"]]  # the half-made work
                (repo / ".slow").unlink()
                for tree in registered_worktrees(repo):
                    (Path(tree) / ".slow").unlink(missing_ok=True)

            resumed = await client.post(f"/api/runs/{a['id']}/resume", json={})
            assert resumed.status_code == 200, resumed.text
            done = await wait_status(client, a["id"], "review", timeout=30)
            (worktree,) = registered_worktrees(kept)
            assert (Path(worktree) / "ready.txt").read_text() == "ready\n"
            assert codeyard_branches(kept) == [done["branch"]]

            resp = await client.delete(f"/api/runs/{b['id']}")
            assert resp.status_code == 204, resp.text
            assert registered_worktrees(deleted) == []
            assert codeyard_branches(deleted) == []
            assert not list((server.data_dir / "worktrees").glob("deleted/*"))


async def test_shell_steps_of_a_killed_server_are_stopped_before_the_run_is_interrupted(
    server: ServerProcess, git_repo: Path
) -> None:
    """Finding 2: a script ``bash`` step (its own session) dies with the server or is stopped
    at start-up; it never writes into the worktree after the crash."""
    step = {"bash": "sleep 20; echo late >> late.txt"}
    with anyio.fail_after(100):
        async with server.client() as client:
            run = await create_run(client, git_repo, step)
            await wait_for_event(client, run["id"], is_call("sleep 20"))
            # bash has started its sleep (waited for, not guessed: a loaded machine is slow)
            await step_process_running(server, "sleep 20", timeout=20)
            left = server.crash()
            assert len(left) >= 2, left  # bash and its sleep
            started = time.monotonic()
            await server.start_async(timeout=120)
            assert await gone_within(left, 10.0) == []
            healthy = time.monotonic() - started
            await wait_status(client, run["id"], "interrupted", timeout=30)
            await anyio.sleep(1.0)
            assert not list((server.data_dir / "worktrees").rglob("late.txt"))
            print(f"restart to healthy {healthy:.2f}s; {len(left)} leftover processes stopped")


async def test_auto_resume_resumes_crashed_runs_and_gives_up_after_three(
    server: ServerProcess, git_repo: Path, tmp_path: Path
) -> None:
    """Finding 4: ``auto_resume`` resumes runs a crash interrupted; a run that crashes the
    server at every start (no progress in between) stays interrupted after 3 crash-resumes."""
    other = make_repo(tmp_path / "other")
    with anyio.fail_after(170):
        async with server.client() as client:
            resp = await client.put("/api/settings", json={"auto_resume": True})
            assert resp.status_code == 200, resp.text
            quick = await create_run(client, other, {"say": "one"}, {"sleep": 1.5}, {"say": "two"})
            stuck = await create_run(client, git_repo, {"bash": "sleep 60"})
            await wait_for_event(client, quick["id"], lambda e: e["type"] == "agent.message")
            for attempt in range(1, MAX_CRASH_RESUMES + 2):
                await wait_for_event(
                    client,
                    stuck["id"],
                    lambda e, n=attempt: e["type"] == "turn.started" and e["data"]["turn"] == n,
                )
                await wait_for_event(
                    client,
                    stuck["id"],
                    lambda e, n=attempt: (
                        e["type"] == "tool.call" and e["data"]["call_id"] == f"call_{n}_0"
                    ),
                )
                # Crash once the step's process runs (this test is about resumption; a kill
                # inside the spawn window has its own test below).
                await step_process_running(server, "sleep 60")
                server.crash()
                await server.start_async(timeout=120)
                if attempt == 1:
                    done = await wait_status(client, quick["id"], "review", timeout=20)
                    said = [
                        e["data"]["text"]
                        for e in await event_log(client, quick["id"])
                        if e["type"] == "agent.message"
                    ]
                    assert said == ["one", "two"] and done["turns"] == 2
                if attempt <= MAX_CRASH_RESUMES:
                    await wait_status(client, stuck["id"], "running", timeout=30)
            # The restart's recovery interrupts it (waited for: it may run after the first
            # answer), and it stays so for longer than the back-off: it is not resumed again.
            await wait_status(client, stuck["id"], "interrupted", timeout=30)
            await anyio.sleep(3)
            final = (await client.get(f"/api/runs/{stuck['id']}")).json()
            assert final["status"] == "interrupted" and final["status_reason"] == GAVE_UP
            reasons = [
                e["data"]["reason"]
                for e in await event_log(client, stuck["id"])
                if e["type"] == "run.status" and e["data"]["to"] == "queued"
            ]
            assert reasons.count("resumed automatically") == MAX_CRASH_RESUMES
            # By hand it can still be resumed.
            resp = await client.post(f"/api/runs/{stuck['id']}/resume", json={})
            assert resp.status_code == 200, resp.text
            await client.post(f"/api/runs/{stuck['id']}/cancel")


async def test_a_kill_in_the_spawn_window_leaves_no_process_behind(
    tmp_path: Path, git_repo: Path
) -> None:
    """The spawn window: ``kill -9`` after the step's ``tool.call`` event and its fork, before
    its process group is recorded and before the child was tied to the server (it had not yet
    reached ``setpriv``). The server's test hook pauses there and holds the child; once the
    server is dead the child goes on, finds its server gone and refuses to start the step."""
    window = tmp_path / "window"
    window.mkdir()
    server = ServerProcess(tmp_path / "data", env={SPAWN_WINDOW_ENV: str(window)})
    try:
        server.start(timeout=120)
        with anyio.fail_after(100):
            async with server.client() as client:
                run = await create_run(client, git_repo, {"bash": "touch ran.txt; sleep 30"})
                with anyio.fail_after(20):
                    while not (window / "window").exists() or not (window / "window").read_text():
                        await anyio.sleep(0.02)
                child = int((window / "window").read_text())
                assert await wait_for_event(client, run["id"], is_call("sleep 30"))
                left = server.crash()
                assert child in left
                (window / "go").touch()
                assert await gone_within([child], 10.0) == [], "the step outlived its server"
                await server.start_async(timeout=120)
                assert await gone_within(left, 10.0) == []
                await wait_status(client, run["id"], "interrupted", timeout=30)
                assert not list((server.data_dir / "worktrees").rglob("ran.txt"))
    finally:
        server.stop()
