"""The worktree pool (``run_workspace.pool``) with real git: a ready worktree taken by the next
new run of its repository, never shared, never left behind."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from codeyard.domain.errors import Conflict
from codeyard.run_workspace.pool import WorktreePool, collect_all, forget_repository
from codeyard.workspace.git import GitError
from tests.conftest import Api, make_repo
from tests.support.waits import eventually

pytestmark = pytest.mark.anyio


def git_out(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def registered(repo: Path) -> list[str]:
    """The repository's linked worktrees, as ``git worktree list`` shows them."""
    lines = git_out(repo, "worktree", "list", "--porcelain").splitlines()
    paths = [line.split(" ", 1)[1] for line in lines if line.startswith("worktree ")]
    return [p for p in paths if Path(p).resolve() != repo.resolve()]


async def filled_pool(root: Path, repo: Path, base: str) -> WorktreePool:
    pool = WorktreePool(root)
    pool.fill_delay = 0
    await pool.start()
    pool.want(repo, base, repo.name)
    await pool.filled()
    return pool


async def test_a_claimed_worktree_is_the_run_s_on_its_new_branch(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "app", {"README.md": "# app\n", "src/a.py": "x = 1\n"})
    base = git_out(repo, "rev-parse", "HEAD")
    pool = await filled_pool(tmp_path / "worktrees", repo, base)
    try:
        assert pool.ready() == {os.path.realpath(repo): base}
        [ready] = registered(repo)
        assert Path(ready).is_relative_to((tmp_path / "worktree-pool").resolve())
        inode = os.stat(ready).st_ino
        dest = tmp_path / "worktrees" / "app" / "1-work" / "app"

        assert await pool.claim(repo, base, dest, "codeyard/1-work")

        assert os.stat(dest).st_ino == inode  # the pool's checkout, moved (not made again)
        assert not Path(ready).exists()
        assert pool.ready() == {}
        assert registered(repo) == [str(dest.resolve())]
        assert git_out(dest, "symbolic-ref", "HEAD") == "refs/heads/codeyard/1-work"
        assert git_out(dest, "rev-parse", "HEAD") == base
        assert git_out(dest, "status", "--porcelain") == ""
        assert (dest / "src" / "a.py").read_text() == "x = 1\n"
        # Its registration points at its new place: git's own prune keeps it, and it works.
        git_out(repo, "worktree", "prune")
        assert registered(repo) == [str(dest.resolve())]
        (dest / "b.txt").write_text("b\n")
        git_out(dest, "add", "b.txt")
        git_out(dest, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "b")
        assert git_out(repo, "log", "-1", "--format=%s", "codeyard/1-work") == "b"
        assert git_out(repo, "rev-parse", "main") == base  # the user's branch is untouched
    finally:
        await pool.close()
    assert registered(repo) == [str(dest.resolve())]  # the run's stays; the pool's are gone
    assert not (tmp_path / "worktree-pool").exists()


async def test_a_claim_leaves_the_pool_s_index_and_files_as_they_are(tmp_path: Path) -> None:
    """The branch is made without comparing every file with the index nor writing the index
    again (``git checkout -b`` did both, on the run's start path); the checkout stays clean."""
    files = {f"src/m{i}.py": f"n = {i}\n" for i in range(40)}
    repo = make_repo(tmp_path / "app", {"README.md": "# app\n", **files})
    base = git_out(repo, "rev-parse", "HEAD")
    pool = await filled_pool(tmp_path / "worktrees", repo, base)
    try:
        [ready] = registered(repo)
        index = Path(
            git_out(Path(ready), "rev-parse", "--path-format=absolute", "--git-path", "index")
        )
        before = os.stat(index)
        dest = tmp_path / "worktrees" / "app" / "1-work" / "app"

        assert await pool.claim(repo, base, dest, "codeyard/1-work")

        after = os.stat(index)
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
        assert git_out(dest, "symbolic-ref", "HEAD") == "refs/heads/codeyard/1-work"
        assert git_out(dest, "status", "--porcelain") == ""
        # The entry's emptied directory is removed after the claim, off the run's path.
        assert await eventually(lambda: not Path(ready).parent.exists(), timeout=5)
    finally:
        await pool.close()


async def test_another_base_or_repository_is_not_served(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "app")
    other = make_repo(tmp_path / "other")
    base = git_out(repo, "rev-parse", "HEAD")
    pool = await filled_pool(tmp_path / "worktrees", repo, base)
    try:
        dest = tmp_path / "worktrees" / "p" / "1-x" / "app"
        assert not await pool.claim(repo, "0" * 40, dest, "codeyard/1-x")
        assert not await pool.claim(other, git_out(other, "rev-parse", "HEAD"), dest, "b")
        assert not dest.exists()
        assert pool.ready() == {os.path.realpath(repo): base}

        # The repository moved on: the entry is made again from the new base.
        (repo / "new.txt").write_text("new\n")
        git_out(repo, "add", "new.txt")
        git_out(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "new")
        newer = git_out(repo, "rev-parse", "HEAD")
        pool.want(repo, newer, "app")
        await pool.filled()
        assert pool.ready() == {os.path.realpath(repo): newer}
        assert await pool.claim(repo, newer, dest, "codeyard/1-x")
        assert (dest / "new.txt").is_file()
    finally:
        await pool.close()
    await asyncio.sleep(0)
    assert registered(repo) == [str(dest.resolve())]


@pytest.mark.parametrize("hooks_path", [False, True])
async def test_the_post_checkout_hook_runs_at_the_run_s_path_as_worktree_add_runs_it(
    tmp_path: Path, hooks_path: bool
) -> None:
    """A hook that installs or links files must see the run's worktree, never the pool's: it
    runs once, at the claim, with the arguments ``git worktree add`` gives it (``core.hooksPath``
    honoured)."""
    repo = make_repo(tmp_path / "app")
    base = git_out(repo, "rev-parse", "HEAD")
    log = tmp_path / "hook.log"
    hooks = tmp_path / "shared-hooks" if hooks_path else repo / ".git" / "hooks"
    hooks.mkdir(parents=True, exist_ok=True)
    if hooks_path:
        git_out(repo, "config", "core.hooksPath", str(hooks))
    hook = hooks / "post-checkout"
    hook.write_text(f'#!/bin/sh\necho "$(pwd -P) $1 $2 $3" >> {log}\n')
    hook.chmod(0o755)
    # What git itself does when it adds a run's worktree.
    plain = tmp_path / "plain"
    git_out(repo, "worktree", "add", "-q", "-b", "plain", str(plain), base)
    [as_git] = log.read_text().splitlines()
    assert as_git == f"{plain.resolve()} {'0' * 40} {base} 1"
    log.unlink()
    pool = await filled_pool(tmp_path / "worktrees", repo, base)
    try:
        assert not log.exists()  # not at the pool's path
        dest = tmp_path / "worktrees" / "app" / "1-work" / "app"
        assert await pool.claim(repo, base, dest, "codeyard/1-work")
        assert log.read_text().splitlines() == [f"{dest.resolve()} {'0' * 40} {base} 1"]
    finally:
        await pool.close()


async def test_a_claim_never_hands_one_worktree_to_two_runs(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "app")
    base = git_out(repo, "rev-parse", "HEAD")
    pool = await filled_pool(tmp_path / "worktrees", repo, base)
    try:
        dests = [tmp_path / "worktrees" / "p" / f"{n}-x" / "app" for n in (1, 2)]
        claims = [pool.claim(repo, base, d, f"codeyard/{n}-x") for n, d in enumerate(dests)]
        assert sorted(await asyncio.gather(*claims)) == [False, True]
        assert sum(d.exists() for d in dests) == 1
    finally:
        await pool.close()


async def test_an_existing_branch_or_directory_is_refused_as_git_would(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "app")
    base = git_out(repo, "rev-parse", "HEAD")
    git_out(repo, "branch", "codeyard/1-x")
    pool = await filled_pool(tmp_path / "worktrees", repo, base)
    try:
        taken = tmp_path / "worktrees" / "p" / "9-x" / "app"
        taken.mkdir(parents=True)
        with pytest.raises(Conflict):
            await pool.claim(repo, base, taken, "codeyard/9-x")
        assert pool.ready() == {os.path.realpath(repo): base}  # still there for the next

        dest = tmp_path / "worktrees" / "p" / "1-x" / "app"
        with pytest.raises(GitError, match="already exists"):
            await pool.claim(repo, base, dest, "codeyard/1-x")
        assert not dest.exists()
        assert registered(repo) == []
        assert git_out(repo, "rev-parse", "codeyard/1-x") == base  # not ours: kept
    finally:
        await pool.close()


async def test_removing_the_repository_and_gc_empty_the_pool(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "app")
    base = git_out(repo, "rev-parse", "HEAD")
    pool = await filled_pool(tmp_path / "worktrees", repo, base)
    try:
        await forget_repository(repo)
        assert pool.ready() == {}
        assert registered(repo) == []

        pool.want(repo, base, "app")
        await pool.filled()
        assert len(registered(repo)) == 1
        await collect_all()
        assert pool.ready() == {}
        assert registered(repo) == []
    finally:
        await pool.close()


async def test_an_entry_unused_for_long_is_removed(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "app")
    base = git_out(repo, "rev-parse", "HEAD")
    pool = WorktreePool(tmp_path / "worktrees", idle_seconds=0.2)
    pool.fill_delay = 0
    await pool.start()
    try:
        pool.want(repo, base, "app")
        await pool.filled()
        assert len(registered(repo)) == 1
        for _ in range(100):
            if not registered(repo):
                break
            await asyncio.sleep(0.05)
        assert registered(repo) == []
        assert pool.ready() == {}
    finally:
        await pool.close()


DIES_WITH_A_FULL_POOL = """
import asyncio, os, sys
from pathlib import Path
from codeyard.run_workspace.pool import WorktreePool

async def main():
    pool = WorktreePool(Path(sys.argv[1]))
    pool.fill_delay = 0
    await pool.start()
    pool.want(Path(sys.argv[2]), sys.argv[3], "app")
    await pool.filled()
    assert pool.ready(), "not filled"
    os._exit(0)  # dies without closing its pool

asyncio.run(main())
"""


async def test_what_a_dead_process_left_is_removed_at_the_next_start(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "app")
    base = git_out(repo, "rev-parse", "HEAD")
    root = tmp_path / "worktrees"
    done = subprocess.run(
        [sys.executable, "-c", DIES_WITH_A_FULL_POOL, str(root), str(repo), base],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    [left] = registered(repo)
    assert Path(left).is_dir()

    live = WorktreePool(root)
    live.fill_delay = 0
    await live.start()
    try:
        # A live process's pool is left alone by another's sweep.
        live.want(repo, base, "app")
        await live.filled()
        assert await eventually(lambda: len(registered(repo)) == 1)  # swept at the start
        [mine] = registered(repo)
        assert mine != left
        assert not Path(left).exists()
        # The start's sweep ends with the dead owner's directory and lock (after its worktree).
        pool_dir = tmp_path / "worktree-pool"
        assert await eventually(lambda: len(list(pool_dir.iterdir())) == 2)
        assert await live.sweep() == 0
        assert sorted(p.suffix for p in (tmp_path / "worktree-pool").iterdir()) == ["", ".lock"]
    finally:
        await live.close()
    assert registered(repo) == []


async def run_to_review(api: Api, repo: Path, command: str) -> dict[str, Any]:
    body = {
        "prompt": "Work on it",
        "repo_path": str(repo),
        "provider": "script",
        "agent_options": {"scenario": {"steps": [{"bash": command}]}},
    }
    resp = await api.post("/api/runs", json=body)
    assert resp.status_code == 201, resp.text
    done = await api.wait_status(resp.json()["id"], "review", "failed")
    assert done["status"] == "review", done["status_reason"]
    return done


async def test_the_next_run_takes_the_ready_worktree_and_is_prepared_as_ever(
    api: Api, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "app", {"README.md": "# app\n"})
    (repo / ".env").write_text("SECRET=1\n")
    resp = await api.post("/api/projects", json={"name": "app", "repos": [{"path": str(repo)}]})
    assert resp.status_code == 201, resp.text
    project = resp.json()
    repo_id = project["repos"][0]["id"]
    setup = {"copy_files": [".env"], "setup_script": "echo $CODEYARD_RUN_ID > .setup"}
    assert (await api.request("PATCH", f"/api/repos/{repo_id}", json=setup)).status_code == 200
    pool = api.services.executor.pool
    assert isinstance(pool, WorktreePool)
    pool.fill_delay = 0

    first = await run_to_review(api, repo, "echo one > one.txt")
    await pool.filled()
    [ready] = [p for p in registered(repo) if p != str(Path(first["worktrees"][repo_id]).resolve())]
    inode = os.stat(ready).st_ino

    second = await run_to_review(api, repo, "echo two > two.txt")
    dest = Path(second["worktrees"][repo_id])
    assert os.stat(dest).st_ino == inode  # taken from the pool
    assert dest.parent.name == f"{second['number']}-work-on-it"
    assert git_out(dest, "symbolic-ref", "--short", "HEAD") == second["branch"]
    assert git_out(dest, "rev-parse", "HEAD") == second["base_commits"][repo_id]
    assert (dest / ".env").read_text() == "SECRET=1\n"  # copied per run
    assert (dest / ".setup").read_text() == f"{second['id']}\n"  # its own setup script
    assert not (dest / "one.txt").exists()
    # Its diff, stats and checkpoints are what the first run's (a worktree added) were.
    for run, mine in ((first, "one.txt"), (second, "two.txt")):
        files = (await api.get(f"/api/runs/{run['id']}/diff?format=json")).json()["data"]
        assert [f["path"] for f in files] == [".setup", mine]  # .env is kept out of git
        assert run["diff_stats"] == {"files": 2, "insertions": 2, "deletions": 0}
        checkpoints = (await api.get(f"/api/runs/{run['id']}/checkpoints")).json()["data"]
        assert len(checkpoints) == 1

    # Nothing of the pool is shown as a run's, and it is made again for the next run.
    listed = (await api.get("/api/runs")).json()["data"]
    assert sorted(r["number"] for r in listed) == [first["number"], second["number"]]
    usage = (await api.get("/api/disk-usage")).json()
    assert [len(p["runs"]) for p in usage["projects"]] == [2]
    await pool.filled()
    assert pool.ready() == {os.path.realpath(repo): second["base_commits"][repo_id]}

    # Discarded: the run's worktree and branch go; landing and the rest see an ordinary run.
    resp = await api.post(f"/api/runs/{second['id']}/resolve", json={"action": "discard"})
    assert resp.status_code == 200, resp.text
    assert not dest.exists()
    assert second["branch"] not in git_out(repo, "branch", "--format=%(refname:short)")

    # The repository leaves its project: its ready worktree goes with it.
    resp = await api.delete(f"/api/projects/{project['id']}/repos/{repo_id}")
    assert resp.status_code == 204, resp.text
    assert pool.ready() == {}
    assert all("worktree-pool" not in p for p in registered(repo))


async def test_worktrees_on_another_file_system_turn_the_pool_off(tmp_path: Path) -> None:
    other = Path("/dev/shm")
    if not other.is_dir() or os.stat(other).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second file system here")
    repo = make_repo(tmp_path / "app")
    base = git_out(repo, "rev-parse", "HEAD")
    pool = await filled_pool(tmp_path / "worktrees", repo, base)
    dest = Path(tempfile.mkdtemp(dir=other)) / "p" / "1-x" / "app"
    try:
        assert not await pool.claim(repo, base, dest, "codeyard/1-x")  # rename: EXDEV
        assert not dest.exists() and not pool.started
        pool.want(repo, base, "app")  # nothing is made any more
        await pool.filled()
        assert pool.ready() == {}
    finally:
        await pool.close()
        shutil.rmtree(dest.parents[2], ignore_errors=True)
    assert registered(repo) == []
