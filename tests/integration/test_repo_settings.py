"""Repository settings at work: copy_files, setup_script and cleanup_script, with real git."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from codeyard.config import Settings
from codeyard.workspace.repo_setup import copy_matching
from tests.conftest import TOKEN, Api, make_repo, open_api
from tests.support.waits import eventually, processes_mentioning

pytestmark = pytest.mark.anyio


def git_out(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


async def project_repo(api: Api, repo: Path, **settings: Any) -> str:
    """Register ``repo`` as a project and apply repository ``settings``; returns the repo id."""
    resp = await api.post("/api/projects", json={"name": repo.name, "repos": [{"path": str(repo)}]})
    assert resp.status_code == 201, resp.text
    repo_id: str = resp.json()["repos"][0]["id"]
    if settings:
        resp = await api.request("PATCH", f"/api/repos/{repo_id}", json=settings)
        assert resp.status_code == 200, resp.text
    return repo_id


async def start_run(api: Api, repo: Path, *steps: dict[str, Any]) -> dict[str, Any]:
    body = {
        "prompt": "Work on it",
        "repo_path": str(repo),
        "provider": "script",
        "agent_options": {"scenario": {"steps": list(steps)}},
    }
    resp = await api.post("/api/runs", json=body)
    assert resp.status_code == 201, resp.text
    result: dict[str, Any] = resp.json()
    return result


async def events_of(api: Api, run_id: str) -> list[dict[str, Any]]:
    resp = await api.get(f"/api/runs/{run_id}/events?limit=500")
    assert resp.status_code == 200, resp.text
    data: list[dict[str, Any]] = resp.json()["data"]
    return data


def worktree_of(api: Api, number: int) -> Path:
    root = Path(api.services.settings.worktree_root)
    matches = [p for p in root.glob(f"*/{number}-*/*") if p.is_dir()]
    assert len(matches) == 1, matches
    return matches[0]


async def test_copy_files_reach_the_worktree_but_never_a_commit(api: Api, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "app", {"README.md": "# app\n", "config/base.json": "{}\n"})
    (repo / ".env").write_text("SECRET=hunter2\n")
    (repo / ".env.local").write_text("LOCAL=1\n")
    (repo / "config" / "dev.local.json").write_text('{"dev": true}\n')
    (repo / "README.md").write_text("# changed in the checkout only\n")  # tracked: not copied
    (tmp_path / "outside.txt").write_text("not yours\n")
    os.symlink(tmp_path / "outside.txt", repo / "escape.link")
    os.symlink(".env", repo / "inside.link")
    patterns = [".env", ".env.*", "config/*.json", "*.link", "../outside.txt", "/etc/hostname"]
    await project_repo(api, repo, copy_files=patterns)

    run = await start_run(api, repo, {"bash": "git add -A && git commit -qm work && echo ok"})
    done = await api.wait_status(run["id"], "review", "failed")
    assert done["status"] == "review", done["status_reason"]
    tree = worktree_of(api, run["number"])
    assert (tree / ".env").read_text() == "SECRET=hunter2\n"
    assert (tree / ".env.local").read_text() == "LOCAL=1\n"
    assert (tree / "config" / "dev.local.json").read_text() == '{"dev": true}\n'
    assert (tree / "README.md").read_text() == "# app\n"  # the branch's version wins
    assert (tree / "inside.link").read_text() == "SECRET=hunter2\n"  # followed: stays inside
    assert not (tree / "inside.link").is_symlink()
    assert not (tree / "escape.link").exists() and not (tree / "outside.txt").exists()
    assert not (tmp_path / "worktrees-outside.txt").exists()

    committed = git_out(repo, "ls-tree", "-r", "--name-only", done["branch"]).split()
    assert sorted(committed) == ["README.md", "config/base.json"]
    assert git_out(tree, "status", "--porcelain") == ""


def test_copy_matching_refuses_paths_out_of_either_tree(tmp_path: Path) -> None:
    source, dest = tmp_path / "src", tmp_path / "dest"
    (source / "deep" / "er").mkdir(parents=True)
    (source / "deep" / "er" / "x.env").write_text("x")
    (source / ".git").mkdir()
    (source / ".git" / "config").write_text("[core]")
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", source / "linked")
    (tmp_path / "elsewhere" / "y.env").write_text("y")
    dest.mkdir()
    os.symlink(tmp_path / "elsewhere", dest / "deep")  # a committed symlink in the worktree

    patterns = ["**/*.env", ".git/config", "linked/y.env", "../src/deep/er/x.env", ""]
    assert copy_matching(source, dest, patterns) == []
    assert sorted(os.listdir(tmp_path / "elsewhere")) == ["y.env"]

    os.unlink(dest / "deep")
    assert copy_matching(source, dest, ["deep/**"]) == ["deep/er/x.env"]


async def test_setup_script_runs_in_the_worktree_and_is_reported(api: Api, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "svc")
    (repo / ".env").write_text("A=1\n")
    script = "echo setting up $CODEYARD_RUN_ID; cat .env; echo warn >&2; touch .ready"
    await project_repo(api, repo, copy_files=[".env"], setup_script=script)

    run = await start_run(api, repo, {"bash": "test -f .ready && echo found"})
    done = await api.wait_status(run["id"], "review", "failed")
    assert done["status"] == "review", done["status_reason"]
    events = await events_of(api, run["id"])
    kinds = [(e["type"], e["data"].get("tool") or e["data"].get("to")) for e in events]
    call_at = kinds.index(("tool.call", "setup_script"))
    assert kinds[call_at - 1] == ("run.status", "preparing")
    assert kinds[call_at + 2] == ("run.status", "running")
    call, result = events[call_at]["data"], events[call_at + 1]["data"]
    assert call["kind"] == "bash" and call["title"] == f"setup: {script}"
    assert call["input"] == {"command": script}
    assert result["call_id"] == call["call_id"] and result["ok"] is True
    assert result["exit_code"] == 0 and result["error"] is None and result["duration_ms"] >= 0
    assert f"setting up {run['id']}" in result["output"] and "A=1" in result["output"]
    assert "warn" in result["output"]
    agent_results = [e["data"] for e in events if e["type"] == "tool.result"][1:]
    assert "found" in agent_results[0]["output"]
    assert ".ready" not in git_out(worktree_of(api, run["number"]), "ls-files")


async def test_failing_setup_fails_the_run_and_leaves_nothing(api: Api, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "broken")
    await project_repo(
        api,
        repo,
        setup_script="echo installing; echo 'missing dependency: libfoo' >&2; exit 3",
        cleanup_script="echo cleaned",  # sandboxed: it can write only the worktree
    )
    run = await start_run(api, repo, {"say": "never"})
    failed = await api.wait_status(run["id"], "failed")
    reason = failed["status_reason"]
    assert "Setup script failed (exit 3)" in reason and "missing dependency: libfoo" in reason
    assert failed["branch"] is None
    events = await events_of(api, run["id"])
    result = next(e["data"] for e in events if e["type"] == "tool.result")
    assert result["ok"] is False and result["exit_code"] == 3 and result["error"] == "exit code 3"
    assert not [e for e in events if e["type"] == "agent.message"]
    calls = {e["data"]["call_id"]: e["data"]["tool"] for e in events if e["type"] == "tool.call"}
    cleanup = [
        e["data"]
        for e in events
        if e["type"] == "tool.result" and calls.get(e["data"]["call_id"]) == "cleanup_script"
    ]
    assert [r["output"].strip() for r in cleanup] == ["cleaned"]  # setup began: cleanup ran
    # Nothing half-made: no worktree directory, no branch, no registered worktree.
    assert not any(Path(api.services.settings.worktree_root).iterdir())
    assert git_out(repo, "branch", "--format=%(refname:short)") == "main"
    assert len(git_out(repo, "worktree", "list").splitlines()) == 1
    resp = await api.get(f"/api/runs/{run['id']}/workspace")
    assert resp.status_code == 409

    # Fixed, the same run prepares again from scratch and works.
    repo_id = failed["repo_ids"][0]
    resp = await api.request("PATCH", f"/api/repos/{repo_id}", json={"setup_script": "true"})
    assert resp.status_code == 200
    assert (await api.post(f"/api/runs/{run['id']}/resume", json={})).status_code == 200
    done = await api.wait_status(run["id"], "review", "failed")
    assert done["status"] == "review", done["status_reason"]


@pytest.fixture
async def quick_api(tmp_path: Path) -> AsyncIterator[Api]:
    """The API with a one-second script timeout."""
    settings = Settings(data_dir=tmp_path / "data", admin_token=TOKEN, bash_timeout_seconds=1)
    async for api in open_api(settings):
        yield api


async def test_setup_that_outlives_its_timeout_is_killed(quick_api: Api, tmp_path: Path) -> None:
    """The script's whole process group dies at the timeout: its shell is gone from the process
    table, so the marker it would write after its ``sleep`` is never written. (Checking only
    for the marker shortly after the timeout could not fail: a surviving ``sleep 5`` writes it
    four seconds later.)"""
    repo = make_repo(tmp_path / "slow")
    marker = tmp_path / "survived"
    await project_repo(quick_api, repo, setup_script=f"echo starting; sleep 2; touch {marker}")
    run = await start_run(quick_api, repo, {"say": "never"})
    failed = await quick_api.wait_status(run["id"], "failed")
    assert "Setup script timed out after 1s: starting" in failed["status_reason"]
    # A survivor would live until it writes the marker (about a second from now), then exit.
    gone = await eventually(lambda: not processes_mentioning(str(marker)), timeout=5)
    assert gone, processes_mentioning(str(marker))
    assert not marker.exists()  # the whole process group was killed before its sleep ended
    assert not any(Path(quick_api.services.settings.worktree_root).iterdir())


async def test_cleanup_script_runs_before_delete_and_never_blocks_it(
    api: Api, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "tidy")
    # Sandboxed, it writes only the worktree (deleted next) and git's objects and refs: a tag
    # carrying what it saw outlives the worktree.
    script = 'git tag -a "seen-$CODEYARD_RUN_ID" -m "$(ls | tr "\\n" " ")"; echo bye'
    repo_id = await project_repo(api, repo, cleanup_script=script)
    run = await start_run(api, repo, {"write": {"path": "made.txt", "content": "x"}})
    await api.wait_status(run["id"], "review")
    tree = worktree_of(api, run["number"])
    assert (await api.delete(f"/api/runs/{run['id']}")).status_code == 204
    seen = git_out(repo, "for-each-ref", "--format=%(contents)", f"refs/tags/seen-{run['id']}")
    assert "made.txt" in seen  # it ran inside the worktree
    assert not tree.exists()
    assert git_out(repo, "branch", "--format=%(refname:short)") == "main"

    await api.request("PATCH", f"/api/repos/{repo_id}", json={"cleanup_script": "exit 7"})
    run = await start_run(api, repo, {"say": "hi"})
    await api.wait_status(run["id"], "review")
    tree = worktree_of(api, run["number"])
    assert (await api.delete(f"/api/runs/{run['id']}")).status_code == 204
    assert not tree.exists()


async def test_removal_waits_out_a_git_lock_file(sqlite_api: Api, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "locked")
    run = await start_run(sqlite_api, repo, {"say": "hi"})
    done = await sqlite_api.wait_status(run["id"], "review")
    lock = repo / ".git" / "refs" / "heads" / f"{done['branch']}.lock"
    lock.write_text("")

    async def release() -> None:
        await asyncio.sleep(0.25)
        lock.unlink()

    releasing = asyncio.create_task(release())
    resp = await sqlite_api.delete(f"/api/runs/{run['id']}")
    await releasing
    assert resp.status_code == 204, resp.text
    assert git_out(repo, "branch", "--format=%(refname:short)") == "main"


async def test_discard_records_the_cleanup_script_on_the_run(api: Api, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "discarded")
    await project_repo(api, repo, cleanup_script="echo tidied-up-$CODEYARD_RUN_ID")
    run = await start_run(api, repo, {"write": {"path": "made.txt", "content": "x"}})
    await api.wait_status(run["id"], "review")
    resp = await api.post(f"/api/runs/{run['id']}/resolve", json={"action": "discard"})
    assert resp.status_code == 200, resp.text
    evs = (await api.get(f"/api/runs/{run['id']}/events?types=tool.call,tool.result")).json()
    calls = [e["data"] for e in evs["data"] if e["type"] == "tool.call"]
    results = [e["data"] for e in evs["data"] if e["type"] == "tool.result"]
    cleanup = [c for c in calls if "tidied-up" in c["title"]]
    assert len(cleanup) == 1, calls
    done = [r for r in results if r["call_id"] == cleanup[0]["call_id"]]
    assert done and f"tidied-up-{run['id']}" in done[0]["output"], results
