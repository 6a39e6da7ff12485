"""The git side of workspaces, against real repositories made in tmp_path."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from codeyard.domain.errors import Conflict
from codeyard.workspace import git as git_module
from codeyard.workspace.git import (
    GitError,
    GitTimeout,
    clone,
    current_branch,
    default_branch,
    git,
    is_work_tree,
    resolve_commit,
    toplevel,
    work_tree_top,
)
from codeyard.workspace.worktrees import (
    branch_name,
    create_worktree,
    head_commit,
    remove_worktree,
    worktree_dir,
)
from tests.support.git_http import git_http_server
from tests.support.waits import eventually

pytestmark = pytest.mark.anyio


def run_git(cwd: Path, *args: str) -> str:
    """Plain synchronous git for arranging fixtures, independent of the code under test."""
    env = {**os.environ, "LC_ALL": "C"}
    for var in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        env.pop(var, None)
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


def commit_file(repo: Path, name: str, text: str, message: str) -> str:
    (repo / name).write_text(text)
    run_git(repo, "add", name)
    run_git(repo, "commit", "--quiet", "-m", message)
    return run_git(repo, "rev-parse", "HEAD")


def make_repo(path: Path, branch: str = "main") -> Path:
    path.mkdir(parents=True)
    run_git(path, "init", "--quiet", "-b", branch)
    run_git(path, "config", "user.name", "Codeyard Test")
    run_git(path, "config", "user.email", "test@codeyard.invalid")
    run_git(path, "config", "commit.gpgsign", "false")
    commit_file(path, "README.md", "hello\n", "initial")
    return path


def branches(repo: Path) -> list[str]:
    return run_git(repo, "branch", "--format=%(refname:short)").splitlines()


def registered_worktrees(repo: Path) -> list[Path]:
    lines = run_git(repo, "worktree", "list", "--porcelain").splitlines()
    return [Path(line.removeprefix("worktree ")) for line in lines if line.startswith("worktree ")]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


# --- runner ---------------------------------------------------------------------------------


async def test_git_returns_output_without_trailing_newline(repo: Path) -> None:
    result = await git("rev-parse", "HEAD", cwd=repo)
    assert result.returncode == 0
    assert result.stdout == run_git(repo, "rev-parse", "HEAD")
    assert "\n" not in result.stdout


async def test_git_error_names_the_command_and_carries_stderr(repo: Path) -> None:
    with pytest.raises(GitError) as caught:
        await git("show", "no-such-ref", cwd=repo)
    error = caught.value
    assert error.returncode == 128
    assert "unknown revision" in error.stderr
    assert "git show no-such-ref" in error.detail
    assert error.stderr.strip() in error.detail
    assert error.command == ("show", "no-such-ref")


async def test_git_without_check_returns_the_failure(repo: Path) -> None:
    result = await git("show", "no-such-ref", cwd=repo, check=False)
    assert result.returncode == 128
    assert "unknown revision" in result.stderr


async def test_git_in_a_missing_directory_is_a_git_error(tmp_path: Path) -> None:
    with pytest.raises(GitError, match="does not exist"):
        await git("status", cwd=tmp_path / "missing")


async def test_git_sets_locale_and_no_prompt_and_ignores_inherited_git_dir(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere"))
    result = await git(
        "-c",
        "alias.show-env=!echo $GIT_TERMINAL_PROMPT $LC_ALL $CODEYARD_TEST_VAR",
        "show-env",
        cwd=repo,
        env={"CODEYARD_TEST_VAR": "extra"},
    )
    assert result.stdout == "0 C extra"


def _gone_or_zombie(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "State:\tZ" in status


async def test_timeout_kills_the_command_and_its_children(repo: Path, tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    started = time.monotonic()
    # A timeout a loaded machine's git and sh get to write the pid file in (0.5 s did not
    # always), and a sleep far longer than every bound here: only the kill ends it in time.
    with pytest.raises(GitTimeout, match=r"did not finish within 2s"):
        await git(
            "-c", f"alias.slow=!echo $$ > {pid_file}; exec sleep 120", "slow", cwd=repo, timeout=2
        )
    assert time.monotonic() - started < 60
    child = int(pid_file.read_text())
    assert await eventually(lambda: _gone_or_zombie(child), timeout=30), (
        "the alias's sleep outlived the timeout"
    )


async def test_cancelling_git_kills_the_command(repo: Path, tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    task = asyncio.ensure_future(
        git("-c", f"alias.slow=!echo $$ > {pid_file}; exec sleep 120", "slow", cwd=repo)
    )
    assert await eventually(lambda: pid_file.exists() and bool(pid_file.read_text().strip()), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    child = int(pid_file.read_text())
    assert await eventually(lambda: _gone_or_zombie(child), timeout=30)


async def test_git_starts_its_process_off_the_event_loop(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spawn holds the thread that makes it (vfork: until the child execs, 4-15 ms under
    load): the hundreds a second of a preparation storm must not hold the server's loop."""
    threads: list[int] = []
    spawn = git_module._spawn

    def recorded(
        args: tuple[str, ...], cwd: Path, env: dict[str, str] | None, lowered: int
    ) -> git_module._Child:
        threads.append(threading.get_ident())
        return spawn(args, cwd, env, lowered)

    monkeypatch.setattr(git_module, "_spawn", recorded)
    assert (await git("rev-parse", "--is-inside-work-tree", cwd=repo)).stdout == "true"
    assert threads and threading.get_ident() not in threads


# --- queries --------------------------------------------------------------------------------


async def test_is_work_tree(repo: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    bare = tmp_path / "bare.git"
    run_git(tmp_path, "init", "--quiet", "--bare", str(bare))
    (repo / "sub").mkdir()

    assert await is_work_tree(repo)
    assert await is_work_tree(repo / "sub")
    assert not await is_work_tree(plain)
    assert not await is_work_tree(tmp_path / "missing")
    assert not await is_work_tree(bare)
    assert not await is_work_tree(repo / ".git")


async def test_work_tree_top_answers_both_questions(repo: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    bare = tmp_path / "bare.git"
    run_git(tmp_path, "init", "--quiet", "--bare", str(bare))
    (repo / "a" / "b").mkdir(parents=True)
    top = run_git(repo, "rev-parse", "--show-toplevel")

    assert str(await work_tree_top(repo)) == top
    assert str(await work_tree_top(repo / "a" / "b")) == top
    for outside in (plain, tmp_path / "missing", bare, repo / ".git"):
        assert await work_tree_top(outside) is None, outside


async def test_toplevel_from_a_subdirectory(repo: Path) -> None:
    (repo / "a" / "b").mkdir(parents=True)
    assert str(await toplevel(repo / "a" / "b")) == run_git(repo, "rev-parse", "--show-toplevel")


async def test_resolve_commit(repo: Path, tmp_path: Path) -> None:
    head = run_git(repo, "rev-parse", "HEAD")
    run_git(repo, "tag", "-a", "v1", "-m", "annotated")
    assert await resolve_commit(repo, "HEAD") == head
    assert await resolve_commit(repo, "main") == head
    assert await resolve_commit(repo, head[:8]) == head
    assert await resolve_commit(repo, "v1") == head  # annotated tag peels to its commit
    assert await resolve_commit(repo, "no-such-ref") is None
    assert await resolve_commit(repo, "HEAD^{tree}") is None  # a tree is not a commit
    assert await resolve_commit(repo, "--all") is None  # never an option
    assert await resolve_commit(repo, "") is None
    # Malformed input names no commit (a 400 upstream), never an error (a 500).
    assert await resolve_commit(repo, "main@{upstream}") is None  # no upstream configured
    assert await resolve_commit(repo, "HEAD\x00") is None  # cannot even reach git
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(GitError):
        await resolve_commit(plain, "HEAD")


async def test_current_and_default_branch(repo: Path, tmp_path: Path) -> None:
    assert await current_branch(repo) == "main"
    assert await default_branch(repo) == "main"

    linked = tmp_path / "linked"
    run_git(repo, "worktree", "add", "--quiet", "-b", "feature", str(linked))
    assert await current_branch(linked) == "feature"
    assert await default_branch(linked) == "main"  # the main checkout's branch, not this one's

    run_git(repo, "checkout", "--quiet", "--detach")
    assert await current_branch(repo) is None
    assert await default_branch(repo) == "main"

    trunk = make_repo(tmp_path / "trunk-repo", branch="trunk")
    assert await default_branch(trunk) == "trunk"


async def test_clone_over_http(repo: Path, tmp_path: Path) -> None:
    dest = tmp_path / "clones" / "copy"
    with git_http_server(tmp_path / "served") as remote:
        await clone(remote.publish(repo, "demo"), dest)
    assert await is_work_tree(dest)
    assert await resolve_commit(dest, "HEAD") == run_git(repo, "rev-parse", "HEAD")
    assert (dest / "README.md").read_text() == "hello\n"


async def test_clone_refuses_the_file_transport_even_unvalidated(
    repo: Path, tmp_path: Path
) -> None:
    """Callers validate URLs first; git itself is told to refuse local transports as well."""
    dest = tmp_path / "clones" / "copy"
    with pytest.raises(GitError):
        await clone(repo.as_uri(), dest)
    assert not dest.exists()


async def test_clone_of_a_missing_repository_fails_and_leaves_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "copy"
    with git_http_server(tmp_path / "served") as remote, pytest.raises(GitError):
        await clone(f"{remote.base}/nothing-here.git", dest)
    assert not dest.exists()


# --- worktrees ------------------------------------------------------------------------------


def test_branch_name_and_worktree_dir(tmp_path: Path) -> None:
    assert branch_name(7, "Fix the login bug!") == "codeyard/7-fix-the-login-bug"
    assert worktree_dir(tmp_path, "web", 7, "fix-login", "api") == (
        tmp_path / "web" / "7-fix-login" / "api"
    )
    for bad in ("..", ".", "", "a/b", "a\\b"):
        with pytest.raises(ValueError):
            worktree_dir(tmp_path, "web", 7, "fix", bad)
    with pytest.raises(ValueError):
        worktree_dir(tmp_path, "..", 7, "fix", "api")


async def test_create_worktree_from_the_base_commit(repo: Path, tmp_path: Path) -> None:
    base = run_git(repo, "rev-parse", "HEAD")
    commit_file(repo, "later.txt", "later\n", "after the base")
    dest = tmp_path / "worktrees" / "proj" / "1-task" / "repo"
    branch = branch_name(1, "task")

    await create_worktree(repo, dest, branch, base)

    assert (dest / "README.md").read_text() == "hello\n"
    assert not (dest / "later.txt").exists()
    assert await head_commit(dest) == base
    assert await current_branch(dest) == branch
    assert run_git(repo, "rev-parse", f"refs/heads/{branch}") == base
    assert dest.resolve() in [p.resolve() for p in registered_worktrees(repo)]
    assert await current_branch(repo) == "main"  # the user's checkout is untouched


async def test_create_worktree_with_existing_branch_leaves_nothing(
    repo: Path, tmp_path: Path
) -> None:
    base = run_git(repo, "rev-parse", "HEAD")
    run_git(repo, "branch", "codeyard/1-task")
    commit_file(repo, "later.txt", "later\n", "move main on")
    dest = tmp_path / "wt"

    with pytest.raises(GitError, match="already exists"):
        await create_worktree(repo, dest, "codeyard/1-task", run_git(repo, "rev-parse", "HEAD"))

    assert not dest.exists()
    assert run_git(repo, "rev-parse", "refs/heads/codeyard/1-task") == base  # not touched
    assert len(registered_worktrees(repo)) == 1


async def test_create_worktree_with_bad_base_leaves_nothing(repo: Path, tmp_path: Path) -> None:
    dest = tmp_path / "wt"
    with pytest.raises(GitError) as caught:
        await create_worktree(repo, dest, "codeyard/2-task", "0" * 40)
    assert "worktree add" in caught.value.detail
    assert not dest.exists()
    assert branches(repo) == ["main"]
    assert len(registered_worktrees(repo)) == 1


async def test_create_worktree_refuses_an_existing_directory(repo: Path, tmp_path: Path) -> None:
    dest = tmp_path / "wt"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    with pytest.raises(Conflict, match="already exists"):
        await create_worktree(repo, dest, "codeyard/3-task", "HEAD")
    assert (dest / "keep.txt").read_text() == "mine"
    assert branches(repo) == ["main"]


async def test_cancelled_create_worktree_leaves_nothing(repo: Path, tmp_path: Path) -> None:
    started = tmp_path / "hook-started"
    hook = repo / ".git" / "hooks" / "post-checkout"
    hook.write_text(f"#!/bin/sh\ntouch {started}\nexec sleep 120\n")
    hook.chmod(0o755)
    dest = tmp_path / "wt"

    task = asyncio.ensure_future(create_worktree(repo, dest, "codeyard/4-task", "HEAD"))
    assert await eventually(started.exists, timeout=30), "post-checkout hook never ran"
    assert dest.exists()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert not dest.exists()
    assert branches(repo) == ["main"]
    assert len(registered_worktrees(repo)) == 1


async def test_remove_worktree_removes_everything_and_is_idempotent(
    repo: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "wt"
    branch = "codeyard/5-task"
    await create_worktree(repo, dest, branch, "HEAD")
    (dest / "README.md").write_text("changed\n")
    (dest / "untracked.txt").write_text("new\n")

    await remove_worktree(repo, dest, branch)

    assert not dest.exists()
    assert branches(repo) == ["main"]
    assert len(registered_worktrees(repo)) == 1
    assert (repo / "README.md").read_text() == "hello\n"

    await remove_worktree(repo, dest, branch)  # everything already gone: still fine


async def test_remove_worktree_can_keep_the_branch(repo: Path, tmp_path: Path) -> None:
    dest = tmp_path / "wt"
    await create_worktree(repo, dest, "codeyard/6-task", "HEAD")
    await remove_worktree(repo, dest, "codeyard/6-task", delete_branch=False)
    assert not dest.exists()
    assert "codeyard/6-task" in branches(repo)
    assert len(registered_worktrees(repo)) == 1


async def test_remove_worktree_whose_directory_was_deleted_by_hand(
    repo: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "wt"
    await create_worktree(repo, dest, "codeyard/7-task", "HEAD")
    run_git(repo, "worktree", "lock", str(dest))  # even a locked registration goes
    shutil.rmtree(dest)

    await remove_worktree(repo, dest, "codeyard/7-task")

    assert branches(repo) == ["main"]
    assert len(registered_worktrees(repo)) == 1


async def test_remove_worktree_when_the_repository_is_gone(repo: Path, tmp_path: Path) -> None:
    dest = tmp_path / "wt"
    await create_worktree(repo, dest, "codeyard/8-task", "HEAD")
    shutil.rmtree(repo)

    await remove_worktree(repo, dest, "codeyard/8-task")

    assert not dest.exists()


async def test_remove_worktree_refuses_to_delete_the_repository(repo: Path) -> None:
    with pytest.raises(ValueError, match="refusing"):
        await remove_worktree(repo, repo, None)
    with pytest.raises(ValueError, match="refusing"):
        await remove_worktree(repo, repo.parent, None)
    assert (repo / "README.md").exists()
