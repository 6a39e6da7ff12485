"""Checkpoints against real git: exact restores, refs kept aside, HEAD and indexes untouched."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from codeyard.workspace.checkpoints import (
    create_checkpoint,
    create_checkpoint_with_stats,
    delete_checkpoint_refs,
    list_checkpoint_refs,
    restore_checkpoint,
)
from codeyard.workspace.diff import diff_files, snapshot_tree
from tests.conftest import make_repo

pytestmark = pytest.mark.anyio

REF = "refs/codeyard/run_1"


def sh(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def git_view(worktree: Path) -> tuple[str, str, str, str]:
    return (
        sh(worktree, "rev-parse", "HEAD"),
        sh(worktree, "diff", "--cached", "--name-only"),
        sh(worktree, "status", "--porcelain", "-uall"),
        sh(worktree, "ls-files", "-s"),
    )


def files_of(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` but ``.git``, ignored ones included, with its bytes."""
    found: dict[str, bytes] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames:
            if name == ".git":
                continue
            path = Path(dirpath) / name
            found[path.relative_to(root).as_posix()] = path.read_bytes()
    return found


def dirs_of(root: Path) -> set[str]:
    return {
        Path(d).relative_to(root).as_posix()
        for d, _, _ in os.walk(root)
        if ".git" not in Path(d).relative_to(root).parts
    }


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(
        tmp_path / "repo",
        {
            ".gitignore": "*.log\ncache/\n",
            "a.txt": "a\n",
            "b.txt": "b\n",
            "src/c.py": "print('c')\n",
            "ü space.txt": "unicode\n",
        },
    )


@pytest.fixture
def wt(repo: Path) -> Path:
    dest = repo.parent / "wt"
    sh(repo, "worktree", "add", "-q", "-b", "codeyard/1-x", str(dest), "HEAD")
    return dest


async def test_checkpoint_is_a_commit_of_the_full_state_on_its_own_ref(
    repo: Path, wt: Path
) -> None:
    (wt / "a.txt").write_text("changed\n")
    (wt / "b.txt").unlink()
    (wt / "new.txt").write_text("untracked\n")
    (wt / "staged.txt").write_text("staged\n")
    sh(wt, "add", "staged.txt")
    (wt / "x.log").write_text("ignored\n")
    before, main_before = git_view(wt), git_view(repo)
    branch_before = sh(repo, "rev-parse", "codeyard/1-x")

    sha = await create_checkpoint(wt, f"{REF}/1", "turn 1")

    assert sh(wt, "rev-parse", f"{REF}/1").strip() == sha
    assert sh(wt, "rev-parse", f"{sha}^").strip() == before[0].strip()  # parent: HEAD
    assert sh(wt, "log", "-1", "--format=%s", sha).strip() == "turn 1"
    names = sh(wt, "ls-tree", "-r", "--name-only", sha).splitlines()
    assert sorted(names) == sorted(
        [".gitignore", "a.txt", "new.txt", "src/c.py", "staged.txt", '"\\303\\274 space.txt"']
    )
    assert sh(wt, "show", f"{sha}:a.txt") == "changed\n"
    assert sha != await snapshot_tree(wt)  # a commit, whose tree is the snapshot
    assert sh(wt, "rev-parse", f"{sha}^{{tree}}").strip() == await snapshot_tree(wt)
    assert git_view(wt) == before and before[1] == "staged.txt\n"
    assert git_view(repo) == main_before and main_before[2] == ""
    assert sh(repo, "rev-parse", "codeyard/1-x") == branch_before


async def test_restore_gives_back_exact_contents(repo: Path, wt: Path) -> None:
    (wt / "a.txt").write_text("checkpointed\n")
    (wt / "b.txt").unlink()
    (wt / "new.txt").write_text("new at checkpoint\n")
    (wt / "x.log").write_text("ignored at checkpoint\n")
    saved = files_of(wt)
    saved_dirs = dirs_of(wt)
    head = sh(wt, "rev-parse", "HEAD")
    sha = await create_checkpoint(wt, f"{REF}/1", "cp")

    (wt / "a.txt").write_text("later\n")
    (wt / "b.txt").write_text("b is back, differently\n")
    (wt / "new.txt").unlink()
    (wt / "src" / "c.py").rename(wt / "src" / "moved.py")
    (wt / "brand" / "new" / "dir").mkdir(parents=True)
    (wt / "brand" / "new" / "dir" / "f.txt").write_text("added later\n")
    (wt / "ü space.txt").write_text("edited\n")
    (wt / "x.log").write_text("ignored, edited after\n")
    (wt / "cache").mkdir()
    (wt / "cache" / "blob").write_text("ignored dir\n")
    main_before = git_view(repo)

    await restore_checkpoint(wt, sha)

    expected = dict(saved)
    expected["x.log"] = b"ignored, edited after\n"  # ignored files are left alone
    expected["cache/blob"] = b"ignored dir\n"
    assert files_of(wt) == expected
    assert dirs_of(wt) == saved_dirs | {"cache"}  # the emptied new directories are gone
    assert sh(wt, "rev-parse", "HEAD") == head
    assert sh(wt, "symbolic-ref", "HEAD").strip() == "refs/heads/codeyard/1-x"
    assert sh(wt, "diff", "--cached", "--name-only") == ""  # index == HEAD: all unstaged
    assert sh(wt, "status", "--porcelain").splitlines() == [" M a.txt", " D b.txt", "?? new.txt"]
    assert await snapshot_tree(wt) == sh(wt, "rev-parse", f"{sha}^{{tree}}").strip()
    assert git_view(repo) == main_before


async def test_restore_any_older_checkpoint_after_several(wt: Path) -> None:
    states: list[tuple[str, dict[str, bytes]]] = []
    for n in range(1, 4):
        (wt / "a.txt").write_text(f"version {n}\n")
        (wt / f"only-{n}.txt").write_text(f"{n}\n")
        if n == 2:
            (wt / "b.txt").unlink()
            (wt / "src" / "c.py").rename(wt / "c.py")
        sha = await create_checkpoint(wt, f"{REF}/{n}", f"turn {n}")
        states.append((sha, files_of(wt)))
    (wt / "a.txt").write_text("after all checkpoints\n")

    for index in (0, 2, 1, 0):
        sha, saved = states[index]
        await restore_checkpoint(wt, sha)
        assert files_of(wt) == saved, f"checkpoint {index + 1}"


async def test_a_state_the_previous_checkpoint_holds_keeps_its_commit(wt: Path) -> None:
    """A turn that changed nothing: the same files on the same HEAD are the previous
    checkpoint's commit (no new commit; the new number's ref points at it). A change, a moved
    HEAD with the same files, or a previous commit that is gone make a new commit."""
    base = sh(wt, "rev-parse", "HEAD").strip()
    (wt / "a.txt").write_text("changed\n")
    first, stats = await create_checkpoint_with_stats(wt, f"{REF}/1", "turn 1", base)
    commits = sh(wt, "rev-list", "--all").split()

    same, same_stats = await create_checkpoint_with_stats(wt, f"{REF}/2", "turn 2", base, first)
    assert same == first and same_stats == stats == {"files": 1, "insertions": 1, "deletions": 1}
    assert sh(wt, "rev-parse", f"{REF}/2").strip() == first
    assert sh(wt, "rev-list", "--all").split() == commits  # no commit was made

    (wt / "a.txt").write_text("changed again\n")
    changed, _ = await create_checkpoint_with_stats(wt, f"{REF}/3", "turn 3", base, first)
    assert changed != first and sh(wt, "show", f"{changed}:a.txt") == "changed again\n"

    # The agent committed its work: the files are the checkpoint's, HEAD is not its parent.
    sh(wt, "commit", "-q", "-am", "agent work")
    head = sh(wt, "rev-parse", "HEAD").strip()
    moved, _ = await create_checkpoint_with_stats(wt, f"{REF}/4", "turn 4", base, changed)
    assert moved != changed and sh(wt, "rev-parse", f"{moved}^").strip() == head

    gone = "0" * 40
    fresh, _ = await create_checkpoint_with_stats(wt, f"{REF}/5", "turn 5", base, gone)
    assert fresh not in (gone, moved) and sh(wt, "rev-parse", f"{fresh}^").strip() == head


async def test_restore_after_the_agent_committed_keeps_the_branch(wt: Path) -> None:
    sha = await create_checkpoint(wt, f"{REF}/1", "cp")
    saved = files_of(wt)
    (wt / "a.txt").write_text("committed by the agent\n")
    (wt / "d.txt").write_text("new and committed\n")
    sh(wt, "add", "-A")
    sh(wt, "commit", "-q", "-m", "agent work")
    head = sh(wt, "rev-parse", "HEAD")

    await restore_checkpoint(wt, sha)

    assert files_of(wt) == saved
    assert sh(wt, "rev-parse", "HEAD") == head  # history stays; the undo shows as changes
    assert sh(wt, "status", "--porcelain").splitlines() == [" M a.txt", " D d.txt"]
    assert [(f["path"], f["status"]) for f in await diff_files(wt, "HEAD")] == [
        ("a.txt", "modified"),
        ("d.txt", "deleted"),
    ]


async def test_checkpointed_file_wins_over_a_now_ignored_one(wt: Path) -> None:
    (wt / "notes.tmp").write_text("at checkpoint\n")
    sha = await create_checkpoint(wt, f"{REF}/1", "cp")
    (wt / ".gitignore").write_text("*.log\ncache/\n*.tmp\n")
    (wt / "notes.tmp").write_text("edited while ignored\n")

    await restore_checkpoint(wt, sha)

    assert (wt / "notes.tmp").read_text() == "at checkpoint\n"
    assert (wt / ".gitignore").read_text() == "*.log\ncache/\n"


async def test_checkpoint_needs_no_identity_and_never_signs(repo: Path, wt: Path) -> None:
    sh(repo, "config", "commit.gpgsign", "true")
    sh(repo, "config", "gpg.program", "false")
    sha = await create_checkpoint(wt, f"{REF}/1", "cp")
    assert sh(wt, "log", "-1", "--format=%an <%ae>", sha).strip() == (
        "Codeyard <checkpoints@codeyard.invalid>"
    )


async def test_refs_are_listed_in_order_and_deleted_by_prefix(repo: Path, wt: Path) -> None:
    shas = {n: await create_checkpoint(wt, f"{REF}/{n}", f"turn {n}") for n in (1, 2, 10)}
    other = await create_checkpoint(wt, "refs/codeyard/run_10/1", "another run")

    listed = await list_checkpoint_refs(repo, REF)  # from the main checkout, too
    assert listed == [(f"{REF}/{n}", shas[n]) for n in (1, 2, 10)]
    assert await list_checkpoint_refs(wt, REF + "/") == listed

    assert await delete_checkpoint_refs(wt, REF) == 3
    assert await list_checkpoint_refs(repo, REF) == []
    assert await list_checkpoint_refs(repo, "refs/codeyard") == [("refs/codeyard/run_10/1", other)]
    assert await delete_checkpoint_refs(repo, REF) == 0


@pytest.mark.parametrize("ref", ["HEAD", "codeyard/1", "-d", "refs/codeyard/*"])
async def test_bad_refs_are_refused(wt: Path, ref: str) -> None:
    with pytest.raises(ValueError):
        await create_checkpoint(wt, ref, "cp")
    with pytest.raises(ValueError):
        await list_checkpoint_refs(wt, ref)
