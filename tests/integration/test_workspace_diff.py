"""Worktree diffs against real git repositories: text, JSON and stats agree and touch nothing."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from codeyard.workspace.diff import (
    DiffFile,
    _own_index,
    diff_between,
    diff_files,
    diff_stats,
    snapshot_index,
    snapshot_tree,
    unified_diff,
)
from tests.conftest import make_repo

pytestmark = pytest.mark.anyio

UNICODE = "dir with space/ünïcødé €.txt"
ODD = "odd\nname\twith tab.txt"
NUMBERS = "".join(f"{n}\n" for n in range(1, 21))


def sh(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def add_worktree(repo: Path, name: str = "wt") -> Path:
    dest = repo.parent / name
    sh(repo, "worktree", "add", "-q", "-b", f"codeyard/1-{name}", str(dest), "HEAD")
    return dest


def git_view(worktree: Path) -> tuple[str, str, str, str]:
    """What a user of the worktree sees: HEAD, staged names, status and the index entries."""
    return (
        sh(worktree, "rev-parse", "HEAD"),
        sh(worktree, "diff", "--cached", "--name-only"),
        sh(worktree, "status", "--porcelain", "-uall"),
        sh(worktree, "ls-files", "-s"),
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(
        tmp_path / "repo",
        {
            ".gitignore": "*.log\nbuild/\n",
            "keep.txt": "unchanged\n",
            "mod.txt": NUMBERS,
            "del.txt": "to be deleted\n",
            "ren.txt": "".join(f"rename me line {n}\n" for n in range(10)),
            "staged.txt": "old\n",
            UNICODE: "before\n",
        },
    )


@pytest.fixture
def changed(repo: Path) -> tuple[Path, str]:
    """A run worktree with a commit on its branch plus every kind of uncommitted change."""
    base = sh(repo, "rev-parse", "HEAD").strip()
    wt = add_worktree(repo)
    (wt / "bin.dat").write_bytes(b"\x00\x01\x02binary")
    (wt / "mod.txt").write_text(NUMBERS.replace("2\n", "two\n", 1))
    sh(wt, "add", "-A")
    sh(wt, "commit", "-q", "-m", "agent commit")
    (wt / "mod.txt").write_text(
        NUMBERS.replace("2\n", "two\n", 1).replace("15\n", "fifteen\n") + "21"
    )
    (wt / "del.txt").unlink()
    (wt / "ren.txt").rename(wt / "renamed.txt")
    with (wt / "renamed.txt").open("a") as f:
        f.write("one more line\n")
    (wt / "staged.txt").write_text("new\n")
    sh(wt, "add", "staged.txt")
    (wt / UNICODE).write_text("after\n")
    (wt / ODD).write_text("odd\n")
    (wt / "new file.txt").write_text("a\nb\n")
    (wt / "debug.log").write_text("ignored\n")
    (wt / "build").mkdir()
    (wt / "build" / "out.txt").write_text("ignored too\n")
    return wt, base


def by_path(files: list[DiffFile]) -> dict[str, DiffFile]:
    return {f["path"]: f for f in files}


async def test_json_covers_committed_uncommitted_untracked_and_deleted(
    changed: tuple[Path, str],
) -> None:
    wt, base = changed
    files = by_path(await diff_files(wt, base))

    assert set(files) == {
        "bin.dat",
        "mod.txt",
        "del.txt",
        "renamed.txt",
        "staged.txt",
        UNICODE,
        ODD,
        "new file.txt",
    }
    status = {p: f["status"] for p, f in files.items()}
    assert status == {
        "bin.dat": "added",
        "mod.txt": "modified",
        "del.txt": "deleted",
        "renamed.txt": "renamed",
        "staged.txt": "modified",
        UNICODE: "modified",
        ODD: "added",
        "new file.txt": "added",
    }
    assert files["renamed.txt"]["old_path"] == "ren.txt"
    assert files["renamed.txt"]["additions"] == 1 and files["renamed.txt"]["deletions"] == 0
    assert all(f["old_path"] is None for p, f in files.items() if p != "renamed.txt")
    assert files["bin.dat"]["binary"] and files["bin.dat"]["hunks"] == []
    assert files["bin.dat"]["additions"] == files["bin.dat"]["deletions"] == 0
    assert not any(f["binary"] for p, f in files.items() if p != "bin.dat")
    assert (files["del.txt"]["additions"], files["del.txt"]["deletions"]) == (0, 1)
    assert (files["new file.txt"]["additions"], files["new file.txt"]["deletions"]) == (2, 0)
    assert [ln["text"] for ln in files[ODD]["hunks"][0]["lines"]] == ["odd"]


async def test_hunks_carry_line_numbers(changed: tuple[Path, str]) -> None:
    wt, base = changed
    mod = by_path(await diff_files(wt, base))["mod.txt"]
    assert (mod["additions"], mod["deletions"]) == (3, 2)
    first, second = mod["hunks"]
    assert (first["old_start"], first["old_lines"], first["new_start"], first["new_lines"]) == (
        1,
        5,
        1,
        5,
    )
    assert first["header"].startswith("@@ -1,5 +1,5 @@")
    assert first["lines"][:3] == [
        {"type": "context", "text": "1", "old_line": 1, "new_line": 1},
        {"type": "del", "text": "2", "old_line": 2},
        {"type": "add", "text": "two", "new_line": 2},
    ]
    assert (second["old_start"], second["old_lines"], second["new_start"]) == (12, 9, 12)
    assert second["new_lines"] == 10
    lines = second["lines"]
    assert {"type": "del", "text": "15", "old_line": 15} in lines
    assert {"type": "add", "text": "fifteen", "new_line": 15} in lines
    assert lines[-2] == {"type": "context", "text": "20", "old_line": 20, "new_line": 20}
    assert lines[-1] == {"type": "add", "text": "21", "new_line": 21, "no_newline": True}


async def test_stats_agree_with_json_and_text(changed: tuple[Path, str]) -> None:
    wt, base = changed
    files = await diff_files(wt, base)
    stats = await diff_stats(wt, base)
    assert stats == {
        "files": len(files),
        "insertions": sum(f["additions"] for f in files),
        "deletions": sum(f["deletions"] for f in files),
    }
    text = await unified_diff(wt, base)
    assert text.count("\ndiff --git ") + text.startswith("diff --git ") == len(files)
    assert "rename from ren.txt\nrename to renamed.txt\n" in text
    assert "Binary files /dev/null and b/bin.dat differ" in text
    assert f"diff --git a/{UNICODE} b/{UNICODE}" in text  # unicode shown, not octal-escaped
    assert "debug.log" not in text and "build/" not in text
    assert text.endswith("\n")


async def test_diff_touches_neither_index_nor_head(repo: Path, changed: tuple[Path, str]) -> None:
    wt, base = changed
    before, main_before = git_view(wt), git_view(repo)
    await diff_files(wt, base)
    await unified_diff(wt, base, ["mod.txt"])
    await diff_stats(wt, base)
    assert git_view(wt) == before
    assert before[1] == "staged.txt\n"  # the agent's own staging survives
    assert git_view(repo) == main_before
    assert main_before[2] == ""  # the user's checkout never saw any of it


async def test_paths_filter(changed: tuple[Path, str]) -> None:
    wt, base = changed
    assert [f["path"] for f in await diff_files(wt, base, ["mod.txt"])] == ["mod.txt"]
    assert [f["path"] for f in await diff_files(wt, base, ["dir with space/"])] == [UNICODE]
    assert [f["path"] for f in await diff_files(wt, base, [ODD, "nope"])] == [ODD]
    assert await diff_files(wt, base, []) == []
    assert await diff_files(wt, base, ["nope"]) == []
    assert len(await diff_files(wt, base, ["."])) == 8
    assert await diff_files(wt, base, ["*.txt"]) == []  # literal, not a glob
    assert [f["path"] for f in await diff_files(wt, base, ["./mod.txt", "/x/"])] == ["mod.txt"]
    for side in ("renamed.txt", "ren.txt"):  # either side of a rename keeps it a rename
        (ren,) = await diff_files(wt, base, [side])
        assert (ren["status"], ren["old_path"], ren["additions"]) == ("renamed", "ren.txt", 1)
    text = await unified_diff(wt, base, ["renamed.txt"])
    assert "rename from ren.txt" in text and "mod.txt" not in text
    assert await unified_diff(wt, base, ["nope"]) == ""
    assert await diff_between(wt, base, "HEAD", "stats", ["mod.txt"]) == {
        "files": 1,
        "insertions": 1,
        "deletions": 1,
    }


async def test_type_change_mode_change_and_empty_file(repo: Path) -> None:
    base = sh(repo, "rev-parse", "HEAD").strip()
    wt = add_worktree(repo)
    (wt / "keep.txt").unlink()
    os.symlink("mod.txt", wt / "keep.txt")
    (wt / "mod.txt").chmod(0o755)
    (wt / "empty").touch()
    files = by_path(await diff_files(wt, base))
    link = files["keep.txt"]
    assert link["status"] == "type_changed"
    assert (link["additions"], link["deletions"]) == (1, 1)
    assert [h["lines"][0]["type"] for h in link["hunks"]] == ["del", "add"]
    assert files["mod.txt"]["status"] == "modified" and files["mod.txt"]["hunks"] == []
    assert files["empty"]["status"] == "added" and files["empty"]["hunks"] == []
    assert (await diff_stats(wt, base))["files"] == 3


def test_own_index_is_where_git_keeps_it(repo: Path) -> None:
    """The snapshot's shortcut to the worktree's index names the file git itself would use."""
    wt = add_worktree(repo)
    (repo / "sub").mkdir()
    for where in (repo, wt):
        found = _own_index(where)
        assert found is not None
        git_path = where / sh(where, "rev-parse", "--git-path", "index").strip()
        assert found.resolve() == git_path.resolve() and found.is_file()
    assert _own_index(repo / "sub") is None  # not a top level: git is asked instead


async def test_no_changes(repo: Path) -> None:
    base = sh(repo, "rev-parse", "HEAD").strip()
    wt = add_worktree(repo)
    (wt / "ignored.log").write_text("x\n")
    assert await diff_files(wt, base) == []
    assert await unified_diff(wt, base) == ""
    assert await diff_stats(wt, base) == {"files": 0, "insertions": 0, "deletions": 0}
    assert await snapshot_tree(wt) == sh(wt, "rev-parse", "HEAD^{tree}").strip()


async def test_unified_diff_applies_to_the_base(repo: Path) -> None:
    """The text form is a real patch: applied to the base it rebuilds the worktree's tree."""
    base = sh(repo, "rev-parse", "HEAD").strip()
    wt = add_worktree(repo)
    (wt / "mod.txt").write_text(NUMBERS.replace("7\n", "seven\n"))
    (wt / "ren.txt").rename(wt / "moved ü.txt")
    (wt / "del.txt").unlink()
    (wt / ODD).write_text("odd\n")
    patch = wt.parent / "change.patch"
    patch.write_text(await unified_diff(wt, base))
    other = add_worktree(repo, "other")
    sh(other, "apply", "--index", str(patch))
    assert sh(other, "write-tree").strip() == await snapshot_tree(wt)


async def test_diff_between_commits_and_trees(repo: Path) -> None:
    first = sh(repo, "rev-parse", "HEAD").strip()
    (repo / "keep.txt").write_text("changed\n")
    sh(repo, "commit", "-q", "-am", "second")
    files = await diff_between(repo, first, "HEAD", "json")
    assert [(f["path"], f["additions"], f["deletions"]) for f in files] == [("keep.txt", 1, 1)]
    tree = sh(repo, "rev-parse", "HEAD^{tree}").strip()
    assert await diff_between(repo, first, tree) == await diff_between(repo, first, "HEAD")
    assert await diff_between(repo, "HEAD", first, "stats") == {
        "files": 1,
        "insertions": 1,
        "deletions": 1,
    }
    with pytest.raises(ValueError):
        await diff_between(repo, "--output=/tmp/x", "HEAD")


async def test_user_diff_config_does_not_change_the_parse(repo: Path) -> None:
    """diff.suppressBlankEmpty drops the space of blank context lines, even in plumbing."""
    for key, value in (("diff.suppressBlankEmpty", "true"), ("diff.noprefix", "true")):
        sh(repo, "config", key, value)
    (repo / "blank.txt").write_text("x\n\n")
    sh(repo, "add", "-A")
    sh(repo, "commit", "-q", "-m", "blank last line")
    base = sh(repo, "rev-parse", "HEAD").strip()
    wt = add_worktree(repo)
    (wt / "blank.txt").write_text("y\n\n")
    (file,) = await diff_files(wt, base)
    assert file["hunks"][0]["lines"] == [
        {"type": "del", "text": "x", "old_line": 1},
        {"type": "add", "text": "y", "new_line": 1},
        {"type": "context", "text": "", "old_line": 2, "new_line": 2},
    ]
    assert (await unified_diff(wt, base)).endswith("+y\n \n")


async def test_the_throw_away_index_is_made_and_removed_off_the_loop(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its directory's file system calls run in threads (under load they held the loop ms
    each), and it is gone after the snapshot, also when the work inside failed."""
    threads: dict[str, int] = {}
    made, removed = tempfile.mkdtemp, shutil.rmtree

    def mkdtemp(**kw: str) -> str:
        threads["made"] = threading.get_ident()
        return made(**kw)

    def rmtree(path: str, ignore_errors: bool = False) -> None:
        threads["removed"] = threading.get_ident()
        removed(path, ignore_errors)

    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    monkeypatch.setattr(shutil, "rmtree", rmtree)
    with pytest.raises(RuntimeError):
        async with snapshot_index(repo) as env:
            index = Path(env["GIT_INDEX_FILE"])
            assert index.is_file()
            raise RuntimeError("the work inside failed")
    assert not index.parent.exists()
    assert set(threads) == {"made", "removed"}
    assert threading.get_ident() not in threads.values()


async def test_a_snapshot_cancelled_while_its_index_is_made_leaves_no_directory(
    repo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Cancelled while a worker thread makes its directory and copies the index into it (a
    turn-end checkpoint dropped because the agent went on), the snapshot removes that
    directory once the thread has made it; none is left in the temporary directory."""
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    making, release = threading.Event(), threading.Event()
    copy = shutil.copy2

    def slow_copy(src: object, dst: object) -> object:
        making.set()
        release.wait(10)
        return copy(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(shutil, "copy2", slow_copy)
    task = asyncio.ensure_future(snapshot_tree(repo))
    assert await asyncio.to_thread(making.wait, 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    release.set()
    for _ in range(500):  # removed in a thread once it is made
        if not any(temp.iterdir()):
            break
        await asyncio.sleep(0.01)
    assert list(temp.iterdir()) == []
