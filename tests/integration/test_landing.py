"""Landing, rebasing, committing, pushing and listing branches, on real repositories."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from codeyard.domain.errors import BadRequest, Conflict, NotFound, ValidationFailed
from codeyard.workspace.branches import (
    Author,
    BranchInfo,
    commit_all,
    list_branches,
    push,
    rename_branch,
)
from codeyard.workspace.landing import (
    LandingRequest,
    NothingToLand,
    apply_landing,
    check_conflicts,
    land_all,
    plan_landing,
    rebase_branch,
)
from tests.conftest import make_repo

pytestmark = pytest.mark.anyio

RUN = "codeyard/1-x"


def run_git(cwd: Path, *args: str) -> str:
    """Plain synchronous git for arranging and inspecting, independent of the code under test."""
    env = {k: v for k, v in os.environ.items() if k not in {"GIT_DIR", "GIT_WORK_TREE"}}
    done = subprocess.run(
        ["git", *args], cwd=cwd, env={**env, "LC_ALL": "C"}, check=True, capture_output=True
    )
    return done.stdout.decode().strip()


def commit(cwd: Path, files: dict[str, str], message: str, *extra: str) -> str:
    for name, text in files.items():
        (cwd / name).parent.mkdir(parents=True, exist_ok=True)
        (cwd / name).write_text(text)
    run_git(cwd, "add", "-A")
    run_git(cwd, "commit", "-q", "-m", message, *extra)
    return run_git(cwd, "rev-parse", "HEAD")


def head(repo: Path, ref: str = "main") -> str:
    return run_git(repo, "rev-parse", ref)


def snapshot(*worktrees: Path) -> dict[str, Any]:
    """Refs, index, status and every file of each worktree: "nothing changed" means equal."""
    state: dict[str, Any] = {"refs": run_git(worktrees[0], "for-each-ref")}
    for wt in worktrees:
        files = {
            str(p.relative_to(wt)): p.read_bytes()
            for p in sorted(wt.rglob("*"))
            if p.is_file() and ".git" not in p.relative_to(wt).parts
        }
        state[str(wt)] = (
            run_git(wt, "rev-parse", "HEAD"),
            run_git(wt, "ls-files", "--stage"),
            run_git(wt, "status", "--porcelain", "--untracked-files=all"),
            files,
        )
    return state


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The user's repository, with ``main`` checked out in its main worktree."""
    return make_repo(tmp_path / "repo", {"README.md": "# demo\n", "src/app.py": "x = 1\n"})


@pytest.fixture
def run_wt(repo: Path, tmp_path: Path) -> Path:
    """A run worktree on ``codeyard/1-x`` started from ``main``."""
    dest = tmp_path / "worktrees" / "repo"
    run_git(repo, "worktree", "add", "-q", "-b", RUN, str(dest), "main")
    return dest


# --- merge, squash, rebase -------------------------------------------------------------------


async def test_merge_fast_forwards_and_the_clean_checkout_follows(repo: Path, run_wt: Path) -> None:
    run_head = commit(run_wt, {"new.txt": "new\n"}, "add new")
    assert await check_conflicts(repo, "main", RUN) == []
    plan = await plan_landing(repo, "main", RUN, "merge")
    assert plan.fast_forward and plan.new_commit == run_head
    await apply_landing(repo, plan)
    assert head(repo) == run_head
    assert (repo / "new.txt").read_text() == "new\n"  # the user's checkout followed
    assert run_git(repo, "status", "--porcelain") == ""


async def test_merge_commit_when_target_moved(repo: Path, run_wt: Path) -> None:
    main_head = commit(repo, {"README.md": "# demo\nmore\n"}, "user edit")
    run_head = commit(run_wt, {"src/app.py": "x = 2\n"}, "agent edit")
    plan = await plan_landing(repo, "main", RUN, "merge")
    assert not plan.fast_forward
    await apply_landing(repo, plan)
    assert run_git(repo, "log", "-1", "--format=%P").split() == [main_head, run_head]
    assert run_git(repo, "log", "-1", "--format=%s") == f"Merge branch '{RUN}' into main"
    assert (repo / "src/app.py").read_text() == "x = 2\n"
    assert run_git(repo, "status", "--porcelain") == ""


async def test_squash_makes_one_commit_with_the_message(repo: Path, run_wt: Path) -> None:
    old = commit(repo, {"README.md": "# demo\nmore\n"}, "user edit")
    commit(run_wt, {"a.txt": "a\n"}, "one")
    commit(run_wt, {"b.txt": "b\n"}, "two")
    plan = await plan_landing(repo, "main", RUN, "squash", "Fix the thing\n\nIt was broken.")
    await apply_landing(repo, plan)
    assert run_git(repo, "rev-list", "--count", f"{old}..main") == "1"
    assert run_git(repo, "log", "-1", "--format=%P") == old
    assert run_git(repo, "log", "-1", "--format=%B") == "Fix the thing\n\nIt was broken."
    assert (repo / "a.txt").exists() and (repo / "b.txt").exists()


async def test_squash_fast_forwardable_still_one_commit_default_message(
    repo: Path, run_wt: Path
) -> None:
    old = head(repo)
    commit(run_wt, {"a.txt": "a\n"}, "one")
    commit(run_wt, {"b.txt": "b\n"}, "two")
    plan = await plan_landing(repo, "main", RUN, "squash")
    assert not plan.fast_forward
    await apply_landing(repo, plan)
    assert run_git(repo, "log", "--format=%P", "-1") == old
    assert run_git(repo, "log", "-1", "--format=%B") == f"Squashed '{RUN}'\n\n* one\n* two"


async def test_rebase_gives_linear_history_and_keeps_authors(repo: Path, run_wt: Path) -> None:
    old = commit(repo, {"README.md": "# demo\nmore\n"}, "user edit")
    commit(run_wt, {"a.txt": "a\n"}, "one", "--author=Ada <ada@example.com>")
    run_before = commit(run_wt, {"src/app.py": "x = 3\n"}, "two")
    plan = await plan_landing(repo, "main", RUN, "rebase")
    await apply_landing(repo, plan)
    assert run_git(repo, "rev-list", "--merges", f"{old}..main") == ""
    log = run_git(repo, "log", "--format=%s|%an|%P", f"{old}..main").splitlines()
    assert [line.split("|")[:2] for line in log] == [["two", "Codeyard Tests"], ["one", "Ada"]]
    assert log[1].split("|")[2] == old
    assert head(repo, RUN) == run_before  # the run branch itself is left alone
    assert (repo / "a.txt").read_text() == "a\n" and (repo / "README.md").read_text().endswith(
        "more\n"
    )


async def test_rebase_drops_commits_already_upstream(repo: Path, run_wt: Path) -> None:
    commit(run_wt, {"a.txt": "a\n"}, "same change")
    commit(run_wt, {"b.txt": "b\n"}, "own change")
    old = commit(repo, {"a.txt": "a\n"}, "same change, picked")
    plan = await plan_landing(repo, "main", RUN, "rebase")
    await apply_landing(repo, plan)
    assert run_git(repo, "log", "--format=%s", f"{old}..main") == "own change"


@pytest.mark.parametrize("strategy", ["merge", "squash", "rebase"])
async def test_conflict_lists_paths_and_changes_nothing(
    repo: Path, run_wt: Path, strategy: Any
) -> None:
    commit(repo, {"README.md": "user\n", "src/app.py": "x = 'user'\n"}, "user")
    commit(run_wt, {"ok.txt": "fine\n"}, "clean one")
    commit(run_wt, {"README.md": "agent\n", "src/app.py": "x = 'agent'\n"}, "agent")
    before = snapshot(repo, run_wt)
    assert await check_conflicts(repo, "main", RUN) == ["README.md", "src/app.py"]
    with pytest.raises(Conflict) as caught:
        await plan_landing(repo, "main", RUN, strategy)
    assert caught.value.extra["conflicts"] == ["README.md", "src/app.py"]
    assert "nothing was changed" in caught.value.detail
    assert snapshot(repo, run_wt) == before


async def test_nothing_to_land_and_unknown_target(repo: Path, run_wt: Path) -> None:
    with pytest.raises(NothingToLand):
        await plan_landing(repo, "main", RUN, "merge")
    commit(run_wt, {"x.txt": "x\n"}, "add")
    commit(run_wt, {"x.txt": "x\n"}, "remove", "--allow-empty")
    run_git(run_wt, "rm", "-q", "x.txt")
    run_git(run_wt, "commit", "-q", "-m", "undo")
    with pytest.raises(NothingToLand, match="No changes"):
        await plan_landing(repo, "main", RUN, "squash")
    with pytest.raises(BadRequest, match="'release' does not exist"):
        await plan_landing(repo, "release", RUN, "merge")
    with pytest.raises(BadRequest, match="names no commit"):
        await plan_landing(repo, "main", "no-such-branch", "merge")


async def test_apply_refuses_when_target_moved_since_plan(repo: Path, run_wt: Path) -> None:
    commit(run_wt, {"x.txt": "x\n"}, "x")
    plan = await plan_landing(repo, "main", RUN, "merge")
    run_git(repo, "switch", "-q", "-c", "other")  # the user moves main elsewhere, off-checkout
    moved = commit(repo, {"y.txt": "y\n"}, "y")
    run_git(repo, "branch", "-f", "main", moved)
    with pytest.raises(Conflict, match="could not move 'main'"):
        await apply_landing(repo, plan)
    assert head(repo) == moved


# --- the user's checkout ---------------------------------------------------------------------


async def test_dirty_target_checkout_refuses_and_keeps_the_users_work(
    repo: Path, run_wt: Path
) -> None:
    commit(run_wt, {"src/app.py": "x = 2\n"}, "agent")
    plan = await plan_landing(repo, "main", RUN, "merge")
    (repo / "README.md").write_text("my unsaved work\n")
    before = snapshot(repo, run_wt)
    with pytest.raises(Conflict, match="uncommitted changes") as caught:
        await apply_landing(repo, plan)
    assert caught.value.extra["changes"] == ["README.md"]
    assert str(repo) in caught.value.detail
    assert snapshot(repo, run_wt) == before


async def test_merge_in_progress_in_target_checkout_refuses(repo: Path, run_wt: Path) -> None:
    commit(run_wt, {"new.txt": "agent\n"}, "agent")
    plan = await plan_landing(repo, "main", RUN, "merge")
    (repo / ".git" / "MERGE_HEAD").write_text(head(repo) + "\n")
    with pytest.raises(Conflict, match="under way"):
        await apply_landing(repo, plan)
    assert head(repo) == plan.old_commit


async def test_untracked_file_in_the_way_refuses(repo: Path, run_wt: Path) -> None:
    commit(run_wt, {"new.txt": "agent\n"}, "agent")
    plan = await plan_landing(repo, "main", RUN, "merge")
    (repo / "new.txt").write_text("mine, not committed\n")
    before = snapshot(repo, run_wt)
    with pytest.raises(Conflict, match="would overwrite") as caught:
        await apply_landing(repo, plan)
    assert caught.value.extra["untracked"] == ["new.txt"]
    assert snapshot(repo, run_wt) == before
    assert (repo / "new.txt").read_text() == "mine, not committed\n"


async def test_unrelated_untracked_files_do_not_block(repo: Path, run_wt: Path) -> None:
    run_head = commit(run_wt, {"new.txt": "agent\n"}, "agent")
    (repo / "notes.txt").write_text("scratch\n")
    await apply_landing(repo, await plan_landing(repo, "main", RUN, "merge"))
    assert head(repo) == run_head
    assert (repo / "notes.txt").read_text() == "scratch\n"
    assert (repo / "new.txt").read_text() == "agent\n"


async def test_target_not_checked_out_moves_only_the_ref(repo: Path, run_wt: Path) -> None:
    run_git(repo, "switch", "-q", "-c", "elsewhere")
    (repo / "README.md").write_text("dirty, but not on main\n")
    run_head = commit(run_wt, {"new.txt": "agent\n"}, "agent")
    await apply_landing(repo, await plan_landing(repo, "main", RUN, "merge"))
    assert head(repo) == run_head
    assert not (repo / "new.txt").exists()
    assert (repo / "README.md").read_text() == "dirty, but not on main\n"


async def test_a_worktree_being_added_meanwhile_does_not_fail_the_landing(
    repo: Path, run_wt: Path, tmp_path: Path
) -> None:
    """git lists a worktree it is still adding (detached, locked "initializing") before its
    directory is a checkout: a run preparing, or the worktree pool filling, beside a landing
    (CI saw a queue's landing fail on it). Arranged as git leaves it at that moment."""
    adding = tmp_path / "pool" / "repo"
    adding.mkdir(parents=True)
    admin = repo / ".git" / "worktrees" / "repo1"
    admin.mkdir(parents=True)
    (admin / "gitdir").write_text(f"{adding}/.git\n")
    (admin / "commondir").write_text("../..\n")
    (admin / "HEAD").write_text(head(repo) + "\n")
    (admin / "locked").write_text("initializing")
    listed = run_git(repo, "worktree", "list", "--porcelain")
    assert f"worktree {adding}" in listed and "locked initializing" in listed
    run_head = commit(run_wt, {"new.txt": "agent\n"}, "agent")
    await apply_landing(repo, await plan_landing(repo, "main", RUN, "merge"))
    assert head(repo) == run_head
    assert (repo / "new.txt").read_text() == "agent\n"  # the user's checkout still followed


# --- several repositories ----------------------------------------------------------------------


@pytest.fixture
def two_repos(tmp_path: Path) -> list[tuple[Path, Path]]:
    pairs = []
    for name in ("api", "web"):
        repo = make_repo(tmp_path / name)
        wt = tmp_path / "worktrees" / name
        run_git(repo, "worktree", "add", "-q", "-b", RUN, str(wt), "main")
        pairs.append((repo, wt))
    return pairs


def requests(pairs: list[tuple[Path, Path]]) -> list[LandingRequest]:
    return [LandingRequest(repo, "main", RUN, "merge") for repo, _ in pairs]


async def test_land_all_lands_every_repo_and_skips_unchanged(
    two_repos: list[tuple[Path, Path]],
) -> None:
    (api, api_wt), (web, _) = two_repos
    api_head = commit(api_wt, {"x.txt": "x\n"}, "x")
    web_before = head(web)
    plans = await land_all(requests(two_repos))
    assert plans[0] is not None and plans[1] is None
    assert head(api) == api_head and head(web) == web_before


async def test_land_all_second_repo_conflicts_first_unchanged(
    two_repos: list[tuple[Path, Path]],
) -> None:
    (api, api_wt), (web, web_wt) = two_repos
    commit(api_wt, {"x.txt": "x\n"}, "x")
    commit(web, {"README.md": "user\n"}, "user")
    commit(web_wt, {"README.md": "agent\n"}, "agent")
    before = snapshot(api, api_wt), snapshot(web, web_wt)
    with pytest.raises(Conflict) as caught:
        await land_all(requests(two_repos))
    assert caught.value.extra["conflicts"] == ["README.md"]
    assert caught.value.extra["repo"] == str(web)
    assert (snapshot(api, api_wt), snapshot(web, web_wt)) == before


async def test_land_all_dirty_checkout_in_second_repo_moves_nothing(
    two_repos: list[tuple[Path, Path]],
) -> None:
    (api, api_wt), (web, web_wt) = two_repos
    commit(api_wt, {"x.txt": "x\n"}, "x")
    commit(web_wt, {"y.txt": "y\n"}, "y")
    (web / "README.md").write_text("unsaved\n")
    before = snapshot(api, api_wt), snapshot(web, web_wt)
    with pytest.raises(Conflict, match="uncommitted changes"):
        await land_all(requests(two_repos))
    assert (snapshot(api, api_wt), snapshot(web, web_wt)) == before


async def test_land_all_rolls_back_when_a_later_move_fails(
    two_repos: list[tuple[Path, Path]],
) -> None:
    (api, api_wt), (web, web_wt) = two_repos
    commit(api_wt, {"x.txt": "x\n"}, "x")
    commit(web_wt, {"y.txt": "y\n"}, "y")
    before = snapshot(api, api_wt), snapshot(web, web_wt)
    lock = web / ".git" / "refs" / "heads" / "main.lock"
    lock.write_text("")  # another git process holds main: update-ref fails after api moved
    with pytest.raises(Conflict, match="could not move 'main'"):
        await land_all(requests(two_repos))
    lock.unlink()
    assert (snapshot(api, api_wt), snapshot(web, web_wt)) == before
    assert not (api / "x.txt").exists()
    assert "codeyard: undo" in run_git(api, "reflog", "main")  # it did move, and came back


async def test_land_all_reports_conflicts_of_every_repo(
    two_repos: list[tuple[Path, Path]],
) -> None:
    for repo, wt in two_repos:
        commit(repo, {"README.md": "user\n"}, "user")
        commit(wt, {"README.md": "agent\n"}, "agent")
    with pytest.raises(Conflict) as caught:
        await land_all(requests(two_repos))
    extra = caught.value.extra
    assert extra["conflicts"] == ["README.md", "README.md"]
    assert [r["repo"] for r in extra["repos"]] == [str(repo) for repo, _ in two_repos]


# --- rebase of the run branch ----------------------------------------------------------------


async def test_rebase_branch_onto_moved_target(repo: Path, run_wt: Path) -> None:
    main_head = commit(repo, {"README.md": "# demo\nmore\n"}, "user edit")
    commit(run_wt, {"a.txt": "a\n"}, "one")
    new = await rebase_branch(run_wt, "main")
    assert head(run_wt, RUN) == new
    assert run_git(run_wt, "log", "--format=%P", "-1") == main_head
    assert (run_wt / "README.md").read_text() == "# demo\nmore\n"  # files followed
    assert run_git(run_wt, "status", "--porcelain") == ""
    assert await rebase_branch(run_wt, "main") == new  # already up to date: no-op


async def test_rebase_branch_conflict_restores_everything(repo: Path, run_wt: Path) -> None:
    commit(repo, {"README.md": "user\n"}, "user")
    commit(run_wt, {"README.md": "agent\n"}, "agent")
    (run_wt / "scratch.txt").write_text("untracked\n")
    before = snapshot(repo, run_wt)
    with pytest.raises(Conflict) as caught:
        await rebase_branch(run_wt, "main")
    assert caught.value.extra["conflicts"] == ["README.md"]
    assert snapshot(repo, run_wt) == before


async def test_rebase_branch_refuses_uncommitted_changes(repo: Path, run_wt: Path) -> None:
    commit(repo, {"README.md": "user\n"}, "user")
    commit(run_wt, {"a.txt": "a\n"}, "agent")
    (run_wt / "a.txt").write_text("edited\n")
    before = snapshot(repo, run_wt)
    with pytest.raises(Conflict, match="uncommitted changes"):
        await rebase_branch(run_wt, "main")
    assert snapshot(repo, run_wt) == before


# --- commit, push, rename, list --------------------------------------------------------------


async def test_commit_all_includes_untracked_respects_gitignore(run_wt: Path) -> None:
    assert await commit_all(run_wt, "nothing") is None
    (run_wt / ".gitignore").write_text("*.log\n")
    (run_wt / "debug.log").write_text("noise\n")
    (run_wt / "src" / "new.py").write_text("y = 1\n")
    (run_wt / "README.md").write_text("changed\n")
    sha = await commit_all(run_wt, "agent work", Author("Ada", "ada@example.com"))
    assert sha == head(run_wt, RUN)
    files = run_git(run_wt, "show", "--name-only", "--format=%an|%s", sha).splitlines()
    assert files[0] == "Ada|agent work"
    assert sorted(files[2:]) == [".gitignore", "README.md", "src/new.py"]
    assert run_git(run_wt, "status", "--porcelain") == ""
    with pytest.raises(BadRequest):
        await commit_all(run_wt, "  ")


async def test_commit_without_configured_identity_falls_back(
    run_wt: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("NAME", "EMAIL"):
        monkeypatch.delenv(f"GIT_COMMITTER_{var}", raising=False)
        monkeypatch.delenv(f"GIT_AUTHOR_{var}", raising=False)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    run_git(run_wt, "config", "user.useConfigOnly", "true")
    (run_wt / "x.txt").write_text("x\n")
    sha = await commit_all(run_wt, "work")
    assert sha is not None
    assert run_git(run_wt, "log", "-1", "--format=%cn <%ce>") == "Codeyard <codeyard@localhost>"


@pytest.fixture
def remote(repo: Path, tmp_path: Path) -> Path:
    bare = tmp_path / "remote.git"
    run_git(tmp_path, "init", "-q", "--bare", str(bare))
    run_git(repo, "remote", "add", "origin", str(bare))
    return bare


async def test_push_and_force_with_lease(
    repo: Path, run_wt: Path, remote: Path, tmp_path: Path
) -> None:
    first = commit(run_wt, {"a.txt": "a\n"}, "one")
    await push(run_wt, RUN)
    assert head(remote, RUN) == first
    # someone else pushes to the run branch
    other = tmp_path / "other"
    run_git(tmp_path, "clone", "-q", "-b", RUN, str(remote), str(other))
    theirs = commit(other, {"b.txt": "b\n"}, "theirs")
    run_git(other, "push", "-q", "origin", RUN)
    # we rewrite our branch: a plain push and a force-with-lease both refuse
    run_git(run_wt, "commit", "-q", "--amend", "-m", "one, amended")
    with pytest.raises(Conflict, match="rejected"):
        await push(run_wt, RUN)
    with pytest.raises(Conflict, match="stale info") as caught:
        await push(run_wt, RUN, force=True)
    assert caught.value.extra["reason"] == "[rejected] (stale info)"
    assert head(remote, RUN) == theirs
    # after fetching, the lease matches and force wins
    run_git(run_wt, "fetch", "-q", "origin")
    await push(run_wt, RUN, force=True)
    assert head(remote, RUN) == head(run_wt, RUN)


async def test_push_without_remote_explains(repo: Path, run_wt: Path) -> None:
    with pytest.raises(BadRequest, match="remote add origin"):
        await push(repo, RUN)
    with pytest.raises(BadRequest, match="does not exist"):
        await push(repo, "nope")


async def test_rename_branch(repo: Path, run_wt: Path) -> None:
    for bad in ("bad..name", "-x", "@{-1}", "HEAD", "a b", "ends.lock"):
        with pytest.raises(ValidationFailed):
            await rename_branch(repo, RUN, bad)
    with pytest.raises(Conflict, match="already exists"):
        await rename_branch(repo, RUN, "main")
    with pytest.raises(Conflict):
        await rename_branch(repo, RUN, "main/sub")  # clashes with the ref "main"
    with pytest.raises(NotFound):
        await rename_branch(repo, "missing", "fine")
    await rename_branch(repo, RUN, "feature/nice")
    assert run_git(run_wt, "branch", "--show-current") == "feature/nice"


async def test_list_branches_ahead_behind_pushed(repo: Path, run_wt: Path, remote: Path) -> None:
    commit(run_wt, {"a.txt": "a\n"}, "one")
    commit(run_wt, {"b.txt": "b\n"}, "two")
    commit(repo, {"README.md": "moved\n"}, "main moves")
    run_git(repo, "branch", "stale", "main~1")
    run_git(repo, "push", "-q", "origin", "main")  # remote-tracking ref, no upstream config
    await push(run_wt, RUN)
    commit(run_wt, {"c.txt": "c\n"}, "three, not pushed")
    main = head(repo)
    assert await list_branches(repo, "main") == [
        BranchInfo(RUN, head(repo, RUN), 3, 1, False),
        BranchInfo("main", main, 0, 0, True),
        BranchInfo("stale", head(repo, "stale"), 0, 1, False),
    ]
    await push(run_wt, RUN)
    infos = {b.name: b for b in await list_branches(repo, "main")}
    assert infos[RUN].pushed
    assert [b.ahead for b in await list_branches(repo, "gone")] == [None, None, None]
