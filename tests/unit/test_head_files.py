"""``POST /api/runs``' look-up of a ``repo_path``'s top and HEAD commit (``git.work_tree_commit``)
reads HEAD from the repository's files once git has found the work tree
(``workspace.head_files``): every answer is git's own (real git, asked separately), commits,
branch switches, packing and detaching made since are seen, and whatever is not the plain
case goes to git again."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from codeyard.workspace import head_files
from codeyard.workspace.git import resolve_commit, work_tree_commit, work_tree_top
from tests.conftest import make_repo

pytestmark = pytest.mark.anyio


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


async def _truth(path: Path) -> tuple[Path, str] | None:
    """What git says, asked apart (two processes, nothing remembered)."""
    top = await work_tree_top(path)
    sha = await resolve_commit(top, "HEAD") if top is not None else None
    return (top, sha) if top is not None and sha is not None else None


async def _commit(repo: Path, name: str) -> None:
    (repo / name).write_text(name)
    _git(repo, "add", name)
    _git(repo, "commit", "-q", "-m", name)


async def test_head_is_read_from_files_after_git_found_the_work_tree(
    tmp_path: Path, git_processes: list[tuple[str, ...]]
) -> None:
    repo = make_repo(tmp_path / "app", {"a.txt": "a\n"})
    found = await work_tree_commit(repo, "HEAD")
    assert len(git_processes) == 1  # git found it
    assert found == await _truth(repo)
    steps = [
        lambda: _commit(repo, "b.txt"),  # a commit made since is seen
        lambda: _switch(repo, "-c", "feature"),  # another branch
        lambda: _commit(repo, "c.txt"),
        lambda: _pack(repo),  # the branch packed: its loose file is gone
        lambda: _commit(repo, "d.txt"),  # loose again, and newer than the packed line
        lambda: _switch(repo, "--detach", "HEAD~2"),  # HEAD holds the commit itself
        lambda: _switch(repo, "main"),
        lambda: _delete_branch(repo, "feature"),  # git writes .git/config anew, same content
    ]
    for step in steps:
        await step()
        before = len(git_processes)
        found = await work_tree_commit(repo, "HEAD")
        assert len(git_processes) == before  # no process
        assert found == await _truth(repo)
        assert found is not None and found[0] == repo.resolve()


async def _switch(repo: Path, *args: str) -> None:
    _git(repo, "switch", "-q", *args)


async def _delete_branch(repo: Path, branch: str) -> None:
    config = repo / ".git" / "config"
    before = config.stat().st_ino
    _git(repo, "branch", "-q", "-D", branch)
    assert config.stat().st_ino != before  # what a discarded run's clean-up does


async def _pack(repo: Path) -> None:
    _git(repo, "pack-refs", "--all")
    assert not (repo / ".git/refs/heads/feature").exists()


async def test_what_is_not_the_plain_case_goes_to_git(
    tmp_path: Path, git_processes: list[tuple[str, ...]]
) -> None:
    repo = make_repo(tmp_path / "app", {"src/a.py": "x = 1\n"})
    linked = tmp_path / "linked"
    _git(repo, "worktree", "add", "-q", "--detach", str(linked))
    for path in (repo / "src", linked):  # not the top; a .git file
        for _ in range(2):
            before = len(git_processes)
            found = await work_tree_commit(path, "HEAD")
            assert len(git_processes) == before + 1
            assert found == await _truth(path)
    assert await work_tree_commit(repo, "HEAD") is not None
    before = len(git_processes)
    found = await work_tree_commit(repo, "main")
    assert len(git_processes) == before + 1  # only HEAD is read from files
    assert found == (repo.resolve(), await _head(repo))
    _git(repo, "symbolic-ref", "HEAD", "refs/heads/unborn")
    before = len(git_processes)
    assert await work_tree_commit(repo, "HEAD") is None  # git's answer: no commit
    assert len(git_processes) == before + 1


async def test_a_reconfigured_repository_is_asked_again_and_a_replaced_one_read_anew(
    tmp_path: Path, git_processes: list[tuple[str, ...]]
) -> None:
    repo = make_repo(tmp_path / "app")
    assert await work_tree_commit(repo, "HEAD") is not None
    _git(repo, "config", "core.bare", "true")
    before = len(git_processes)
    assert await work_tree_commit(repo, "HEAD") is None  # no work tree, as git says
    assert len(git_processes) == before + 1
    _git(repo, "--work-tree=.", "config", "core.bare", "false")
    subprocess.run(["rm", "-rf", str(repo)], check=True)
    again = make_repo(repo, {"other.txt": "other\n"})
    # Its directories may get the freed inodes back, with the same configuration: asked
    # again or read from its files, the answer is the new repository's HEAD.
    assert await work_tree_commit(again, "HEAD") == await _truth(again)


async def _head(repo: Path) -> str | None:
    return await resolve_commit(repo, "HEAD")


async def test_forget_asks_git_again(tmp_path: Path, git_processes: list[tuple[str, ...]]) -> None:
    repo = make_repo(tmp_path / "app")
    await work_tree_commit(repo, "HEAD")
    head_files.forget(repo)
    before = len(git_processes)
    found = await work_tree_commit(repo, "HEAD")
    assert len(git_processes) == before + 1
    assert found == await _truth(repo)


async def test_a_commit_is_found_loose_or_packed_and_a_missing_one_goes_to_git(
    tmp_path: Path, git_processes: list[tuple[str, ...]]
) -> None:
    repo = make_repo(tmp_path / "app")
    for i in range(3):
        await _commit(repo, f"f{i}.txt")  # several packed names to search
    assert await work_tree_commit(repo, "HEAD") is not None
    _git(repo, "gc", "-q", "--prune=now")  # every object packed, none loose
    assert not list((repo / ".git/objects").glob("??/*"))
    before = len(git_processes)
    assert await work_tree_commit(repo, "HEAD") == await _truth(repo)
    assert len(git_processes) == before + 2  # the truth's two, none for the read
    head = (await _head(repo)) or ""
    missing = {"0" * 40, head[:-1] + ("0" if head[-1] != "0" else "1")}  # before, beside HEAD
    for sha in missing:
        for where in (".git/refs/heads/main", ".git/HEAD"):  # a branch, detached
            (repo / where).write_text(sha + "\n")
            before = len(git_processes)
            assert await work_tree_commit(repo, "HEAD") is None  # git's answer: no commit
            assert len(git_processes) == before + 1
            (repo / ".git/HEAD").write_text("ref: refs/heads/main\n")
    (repo / ".git/refs/heads/main").write_text(head + "\n")
    assert await work_tree_commit(repo, "HEAD") == (repo.resolve(), head)
