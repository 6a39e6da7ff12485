"""Diff and checkpoint cost for a change touching 2,000 files (the issue's target: JSON < 1 s).

A real repository of ``--files`` committed files (40 lines each) plus as many untouched ones gets
a run worktree, and the worktree then changes ``--files`` files at once: most modified (two lines
each, one of them staged), 5% deleted, 5% renamed with an edit, 5% new untracked files, plus
ignored files that must stay out. Each operation is timed from the public API of
``codeyard.workspace`` (git processes included), ``--repeat`` times; the median is printed:

* ``snapshot``: tree of the worktree state through a throw-away index;
* ``diff json``: ``diff_files`` (snapshot + one ``diff-tree`` + parsing), and its JSON size;
* ``diff text`` / ``diff stats``: ``unified_diff`` / ``diff_stats``;
* ``diff json 1 path``: ``diff_files`` with ``paths=[one file]`` (the UI's per-file view);
* ``checkpoint``: ``create_checkpoint`` of that state;
* ``restore``: ``restore_checkpoint`` alternating between the base and the changed state, so
  every run rewrites, deletes and recreates all the changed files.

    .venv/bin/python bench/diff_checkpoint.py [--files 2000] [--repeat 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import fresh_dir, machine, write_json
from codeyard.workspace.checkpoints import (
    create_checkpoint,
    delete_checkpoint_refs,
    restore_checkpoint,
)
from codeyard.workspace.diff import (
    diff_files,
    diff_stats,
    snapshot_tree,
    unified_diff,
)

ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@codeyard.invalid",
    "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@codeyard.invalid",
}  # fmt: skip


def sh(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=ENV
    ).stdout


def body(n: int, tag: str = "") -> str:
    return "".join(f"file {n} line {i} {tag if i in (10, 30) else ''}\n" for i in range(40))


def build(root: Path, count: int) -> tuple[Path, str]:
    """The repository, its run worktree with ``count`` changed files, and the base commit."""
    repo = root / "repo"
    repo.mkdir()
    sh(repo, "init", "-q", "-b", "main")
    sh(repo, "config", "commit.gpgsign", "false")
    (repo / ".gitignore").write_text("*.log\n")
    for n in range(2 * count):  # half will change, half stay as they are
        path = repo / f"pkg{n % 40}" / f"mod_{n}.py"
        path.parent.mkdir(exist_ok=True)
        path.write_text(body(n))
    sh(repo, "add", "-A")
    sh(repo, "commit", "-q", "-m", "base")
    base = sh(repo, "rev-parse", "HEAD").strip()
    wt = root / "wt"
    sh(repo, "worktree", "add", "-q", "-b", "codeyard/1-bench", str(wt), "HEAD")

    slice_ = count // 20  # 5% each of deletes, renames and new files
    for n in range(count):
        path = wt / f"pkg{n % 40}" / f"mod_{n}.py"
        if n < slice_:
            path.unlink()
        elif n < 2 * slice_:
            path.rename(path.with_name(f"renamed_{n}.py"))
            with path.with_name(f"renamed_{n}.py").open("a") as f:
                f.write("# moved\n")
        elif n < 3 * slice_:
            (wt / f"pkg{n % 40}" / f"new_{n}.py").write_text(body(n, "new"))
        else:
            path.write_text(body(n, "changed"))
        (wt / f"pkg{n % 40}" / "debug.log").write_text("ignored\n")
    sh(wt, "add", f"pkg0/mod_{count - 40}.py")  # some staged state, which must survive
    return wt, base


async def timed(repeat: int, action: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = await action()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    wt, base = build(fresh_dir("diff_checkpoint"), args.files)
    head = sh(wt, "rev-parse", "HEAD")
    results: dict[str, float] = {}
    results["snapshot"], _ = await timed(args.repeat, lambda: snapshot_tree(wt))
    results["diff json"], files = await timed(args.repeat, lambda: diff_files(wt, base))
    assert len(files) == args.files, len(files)
    size = len(json.dumps(files))
    one = [files[len(files) // 2]["path"]]
    results["diff json 1 path"], _ = await timed(args.repeat, lambda: diff_files(wt, base, one))
    results["diff text"], text = await timed(args.repeat, lambda: unified_diff(wt, base))
    results["diff stats"], stats = await timed(args.repeat, lambda: diff_stats(wt, base))
    assert stats["files"] == args.files, stats

    counter = iter(range(1, 10_000))
    results["checkpoint"], changed = await timed(
        args.repeat, lambda: create_checkpoint(wt, f"refs/codeyard/bench/{next(counter)}", "cp")
    )
    targets = iter([base, changed] * args.repeat)
    results["restore"], _ = await timed(
        args.repeat * 2, lambda: restore_checkpoint(wt, next(targets))
    )
    await delete_checkpoint_refs(wt, "refs/codeyard/bench")
    assert sh(wt, "rev-parse", "HEAD") == head

    print(f"{args.files} changed files (+{args.files} unchanged), median of {args.repeat}:")
    for name, seconds in results.items():
        print(f"  {name:<18} {seconds:7.3f} s")
    print(f"  json size          {size / 1e6:7.2f} MB, text {len(text) / 1e6:.2f} MB, {stats}")
    if args.json:
        write_json(args.json, {"machine": machine(), "files": args.files, "seconds": results})


if __name__ == "__main__":
    asyncio.run(main())
