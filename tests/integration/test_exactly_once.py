"""A run's durable steps happen once even when the server dies right after one (issue 12).

A real server is started with ``CODEYARD_TEST_CRASH_AT`` naming a boundary: it kills itself
with SIGKILL just after a step's effect and before its result is stored — a setup script ran,
a checkpoint commit is on its ref, the target branch moved, the worktree and branch are gone.
Restarted on the same data dir (``auto_resume`` on, or the operator repeating the request), the
step must not happen again: one setup run, one checkpoint, one landed commit, one cleanup run.
The repository, git, SQLite and the script agent are real.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from codeyard.crashpoints import CRASH_AT_ENV
from tests.conftest import make_repo
from tests.support.server import ServerProcess, event_log, wait_status

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.timeout(300)]


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def crash_at(server: ServerProcess, *points: str) -> None:
    """The boundaries the next start of ``server`` dies at (none: it runs normally)."""
    server._env.pop(CRASH_AT_ENV, None)
    if points:
        server._env[CRASH_AT_ENV] = ",".join(points)


async def died_at(server: ServerProcess, point: str, timeout: float = 60) -> None:
    """Wait until the server killed itself at ``point`` (its log says so), then reap it."""
    assert server.proc is not None
    deadline = time.monotonic() + timeout
    while server.proc.poll() is None:
        assert time.monotonic() < deadline, f"the server never reached {point}"
        await anyio.sleep(0.05)
    assert server.proc.returncode == -9, server.log_tail()
    assert f"crashing at {point}" in server.log_tail(200), server.log_tail()
    server.crash()  # reap it; what it started is left to the next start-up


def count(events: list[dict[str, Any]], type_: str, **data: Any) -> int:
    return sum(
        1
        for e in events
        if e["type"] == type_ and all(e["data"].get(k) == v for k, v in data.items())
    )


async def resolve(client: httpx.AsyncClient, run_id: str, action: str) -> httpx.Response | None:
    """POST resolve; None when the server died answering it."""
    try:
        return await client.post(f"/api/runs/{run_id}/resolve", json={"action": action})
    except httpx.TransportError:
        return None


async def test_each_durable_step_happens_once_when_the_server_dies_right_after_it(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "repo")
    server = ServerProcess(tmp_path / "data")
    try:
        with anyio.fail_after(280):
            crash_at(server, "prepare:set-up")
            await server.start_async(timeout=120)
            async with server.client() as client:
                resp = await client.put("/api/settings", json={"auto_resume": True})
                assert resp.status_code == 200, resp.text
                resp = await client.post(
                    "/api/projects", json={"name": "repo", "repos": [{"path": str(repo)}]}
                )
                assert resp.status_code == 201, resp.text
                scripts = {
                    "setup_script": "echo set-up >> setup.log",
                    "cleanup_script": "echo cleaned",
                }
                repo_id = resp.json()["repos"][0]["id"]
                resp = await client.patch(f"/api/repos/{repo_id}", json=scripts)
                assert resp.status_code == 200, resp.text

                async def create(*steps: dict[str, Any]) -> str:
                    resp = await client.post(
                        "/api/runs",
                        json={
                            "prompt": "Once",
                            "repo_path": str(repo),
                            "provider": "script",
                            "agent_options": {"scenario": {"steps": list(steps)}},
                        },
                    )
                    assert resp.status_code == 201, resp.text
                    return str(resp.json()["id"])

                # 1. Prepare: the setup script ran and is recorded as done; the run row does
                # not yet know its worktree. The resumed prepare keeps the worktree.
                landed = await create({"write": {"path": "a.txt", "content": "A\n"}})
                await died_at(server, "prepare:set-up")

                # 2. Turn end: the checkpoint commit is on its ref, the row and the turn's end
                # are not stored. The resumed turn takes the same checkpoint number again.
                crash_at(server, "checkpoint:ref-written")
                await server.start_async(timeout=120)
                await died_at(server, "checkpoint:ref-written")

                crash_at(server, "land:moved")
                await server.start_async(timeout=120)
                run = await wait_status(client, landed, "review", timeout=60)
                discarded = await create({"say": "nothing to keep"})
                await wait_status(client, discarded, "review", timeout=60)

                # 3. Landing: main moved, the run is not completed. Landing again records it.
                assert await resolve(client, landed, "squash") is None
                await died_at(server, "land:moved")
                assert int(git(repo, "rev-list", "--count", "main")) == 2  # it did land

                # 4. Discard: worktree and branch removed, the run not completed.
                crash_at(server, "discard:removed")
                await server.start_async(timeout=120)
                again = await resolve(client, landed, "squash")
                assert again is not None and again.status_code == 200, again and again.text
                assert again.json()["status"] == "completed"
                assert await resolve(client, discarded, "discard") is None
                await died_at(server, "discard:removed")

                crash_at(server)
                await server.start_async(timeout=120)
                done = await resolve(client, discarded, "discard")
                assert done is not None and done.status_code == 200, done and done.text
                assert done.json()["resolution"] == "discarded"

                # One of each effect.
                events = await event_log(client, landed)
                assert count(events, "tool.call", tool="setup_script") == 1
                worktree = Path(run["worktrees"][repo_id])
                assert (worktree / "setup.log").read_text() == "set-up\n"
                assert count(events, "checkpoint.created") == 1
                assert count(events, "turn.completed") == 1
                checkpoints = (await client.get(f"/api/runs/{landed}/checkpoints")).json()
                rows = checkpoints["data"] if isinstance(checkpoints, dict) else checkpoints
                assert [c["number"] for c in rows] == [1]
                refs = git(repo, "for-each-ref", "--format=%(refname)", f"refs/codeyard/{landed}")
                assert refs.splitlines() == [f"refs/codeyard/{landed}/1"]
                assert git(repo, "show", f"refs/codeyard/{landed}/1:a.txt") == "A"
                assert count(events, "git.merged") == 1
                assert int(git(repo, "rev-list", "--count", "main")) == 2  # one squash commit
                assert git(repo, "show", "main:a.txt") == "A"

                gone = await event_log(client, discarded)
                assert count(gone, "tool.call", tool="cleanup_script") == 1
                branches = git(repo, "branch", "--format=%(refname:short)").split()
                assert [b for b in branches if b.startswith("codeyard/")] == [run["branch"]]
                listed = git(repo, "worktree", "list", "--porcelain").splitlines()
                trees = [t for t in listed if t.startswith("worktree ")]
                # The main checkout and the landed run's (and maybe the one the server keeps
                # ready for the next run, run_workspace.pool, which is not a run's).
                assert len([t for t in trees if "worktree-pool" not in t]) == 2, trees
    finally:
        server.stop()


async def test_a_shell_step_that_ended_is_not_run_again_after_a_crash(tmp_path: Path) -> None:
    """The script agent's ``bash`` step finished (its mark written) but the server died before
    its result was stored: the resumed turn reports it and goes on with the next step."""
    repo = make_repo(tmp_path / "repo")
    server = ServerProcess(tmp_path / "data")
    try:
        with anyio.fail_after(200):
            crash_at(server, "script:step-done")
            await server.start_async(timeout=120)
            async with server.client() as client:
                resp = await client.put("/api/settings", json={"auto_resume": True})
                assert resp.status_code == 200, resp.text
                steps = [{"bash": "echo ran >> ran.txt"}, {"bash": "echo next >> ran.txt"}]
                resp = await client.post(
                    "/api/runs",
                    json={
                        "prompt": "Once",
                        "repo_path": str(repo),
                        "provider": "script",
                        "agent_options": {"scenario": {"steps": steps}},
                    },
                )
                assert resp.status_code == 201, resp.text
                run_id = resp.json()["id"]
                await died_at(server, "script:step-done")

                crash_at(server)
                await server.start_async(timeout=120)
                run = await wait_status(client, run_id, "review", timeout=60)
                (worktree,) = run["worktrees"].values()
                assert (Path(worktree) / "ran.txt").read_text() == "ran\nnext\n"
                events = await event_log(client, run_id)
                results = [e["data"] for e in events if e["type"] == "tool.result"]
                assert [r["ok"] for r in results] == [True, True], results
                assert "not run again" in str(results[0])
    finally:
        server.stop()
