"""Worktree creation on a large repository: Codeyard against plain ``git worktree add``.

A repository of ``--files`` files (default 20,000, ~200 MB: base64 text of random bytes, 2-18 KB
per file, four directory levels) is generated and committed once, then packed as a cloned
repository would be (``repack -a -d``, no delta search: the contents are random). After one
unmeasured warm-up, ``--repeat`` rounds each time, in an order that alternates from round to
round, the same creation two ways:

* ``plain``: ``git worktree add -b plain-N <dir> HEAD``, a subprocess, wall clock;
* Codeyard: ``prepare_worktrees`` as the executor runs it before a run's first turn (project
  and repository read from the database, the per-repository lock, ``create_worktree``,
  copy_files and setup script, none configured here), then ``ChangeTracker.start()``, the first
  snapshot of the worktree the turn takes before the agent acts. ``create_worktree`` (branch
  check, directory check, ``git worktree add``) is timed from inside that same call.

Reported: ``create_worktree`` (the bare creation), ``prepare_worktrees``, and ``ready``
(``prepare_worktrees`` + ``ChangeTracker.start()``: ready for the agent). Every worktree (and
its branch) is removed and the removal written back (``sync``) before the next is made. Ratios
are the median Codeyard time over the median plain time, and the median of the per-round
ratios. Target: at most 1.10.

    .venv/bin/python bench/worktree.py [--files 20000] [--mb 200] [--repeat 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench._common import OUT, TOKEN, fresh_dir, machine, wait_quiet, write_json
from codeyard.app import create_app
from codeyard.config import Settings
from codeyard.executor.changes import ChangeTracker
from codeyard.run_workspace import prepare, removal
from codeyard.workspace.worktrees import create_worktree

ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@codeyard.invalid",
    "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@codeyard.invalid",
}  # fmt: skip
TARGET = 1.10


def sh(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=ENV
    ).stdout.strip()


def generate(repo: Path, files: int, total_mb: float, seed: int = 7) -> dict[str, Any]:
    """The repository: ``files`` files of random base64 text, ``total_mb`` MB in all, committed."""
    rng = random.Random(seed)
    mean = total_mb * 1e6 / files
    sizes = [rng.randint(int(mean * 0.2), int(mean * 1.8)) for _ in range(files)]
    repo.mkdir(parents=True)
    sh(repo, "init", "-q", "-b", "main")
    sh(repo, "config", "commit.gpgsign", "false")
    sh(repo, "config", "gc.auto", "0")  # no background repack under the measurements
    sh(repo, "config", "maintenance.auto", "false")
    started = time.perf_counter()
    written = 0
    for n, size in enumerate(sizes):
        folder = repo / f"pkg{n % 20:02d}" / f"mod{n // 20 % 10}" / f"part{n // 200 % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        data = base64.encodebytes(rng.randbytes(size * 3 // 4))  # 76-column lines
        (folder / f"file_{n:05d}.txt").write_bytes(data)
        written += len(data)
    sh(repo, "add", "-A")
    sh(repo, "commit", "-q", "-m", "generated")
    sh(repo, "repack", "-a", "-d", "-q", "--window=0")
    sh(repo, "prune-packed")
    os.sync()
    pack_bytes = sum(p.stat().st_size for p in (repo / ".git" / "objects" / "pack").iterdir())
    return {
        "files": files,
        "bytes": written,
        "pack_bytes": pack_bytes,
        "generate_s": round(time.perf_counter() - started, 1),
    }


def plain(repo: Path, dest: Path, n: int) -> float:
    start = time.perf_counter()
    subprocess.run(
        ["git", "worktree", "add", "--quiet", "-b", f"plain-{n}", str(dest), "HEAD"],
        cwd=repo,
        check=True,
        env=ENV,
    )
    return time.perf_counter() - start


def plain_remove(repo: Path, dest: Path, n: int) -> None:
    shutil.rmtree(dest)
    sh(repo, "worktree", "prune")
    sh(repo, "branch", "-D", f"plain-{n}")
    os.sync()  # the next measurement does not pay for this one's write-back


async def timed(action: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = await action()
    return time.perf_counter() - start, result


class Codeyard:
    """The app's services (database with the project registered), as a run would use them.

    ``prepare_worktrees`` is run as the executor runs it; its call of ``create_worktree`` is
    timed from the inside, which gives the bare creation time of the very same worktree.
    """

    def __init__(self, repo: Path, data_dir: Path) -> None:
        self.repo = repo
        self.settings = Settings(data_dir=data_dir, admin_token=TOKEN)
        self.app = create_app(self.settings)
        self.project: dict[str, Any] = {}
        self.head = sh(repo, "rev-parse", "HEAD")
        self.create_s: list[float] = []

    async def register(self) -> None:
        transport = httpx.ASGITransport(app=self.app)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://localhost", headers=headers
        ) as client:
            body = {"name": "bench", "repos": [{"path": str(self.repo)}]}
            resp = await client.post("/api/projects", json=body)
            resp.raise_for_status()
            self.project = resp.json()

        async def timed_create(repo: Path, dest: Path, branch: str, base_commit: str) -> None:
            seconds, _ = await timed(lambda: create_worktree(repo, dest, branch, base_commit))
            self.create_s.append(seconds)

        prepare.create_worktree = timed_create  # type: ignore[attr-defined]

    def run(self, n: int) -> dict[str, Any]:
        repo_id = self.project["repos"][0]["id"]
        return {
            "id": f"run_bench{n}",
            "number": n,
            "title": "bench",
            "project_id": self.project["id"],
            "repo_ids": [repo_id],
            "branch": None,
            "worktrees": {},
            "base_commits": {repo_id: self.head},
        }

    async def ready(self, n: int) -> tuple[float, float, float, dict[str, Any]]:
        """(create_worktree s, prepare_worktrees s, first snapshot s, the prepared run)."""
        engine = self.app.state.services.engine
        root = self.settings.worktree_root
        run = self.run(n)
        prep, (branch, worktrees) = await timed(
            lambda: prepare.prepare_worktrees(engine, run, root)
        )
        tracker = ChangeTracker(worktrees, run["base_commits"])
        track, _ = await timed(tracker.start)
        return self.create_s[-1], prep, track, {**run, "branch": branch, "worktrees": worktrees}

    async def remove(self, run: dict[str, Any]) -> None:
        await removal.remove_run_worktrees(self.app.state.services.engine, run)
        os.sync()


def median(values: list[float]) -> float:
    return statistics.median(values)


async def measure(root: Path, repo: Path, repeat: int) -> dict[str, Any]:
    cy = Codeyard(repo, root / "data")
    kinds = ("plain", "create_worktree", "prepare", "tracker")
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    quiet: list[dict[str, float]] = []
    async with cy.app.router.lifespan_context(cy.app):
        await cy.register()
        # Warm-up, not measured: the pack and git itself into the page cache.
        plain(repo, root / "warm-plain", 0)
        plain_remove(repo, root / "warm-plain", 0)
        for i in range(1, repeat + 1):
            quiet.append(wait_quiet())
            for kind in ("plain", "codeyard") if i % 2 else ("codeyard", "plain"):
                if kind == "plain":
                    dest = root / f"plain-{i}"
                    times["plain"].append(plain(repo, dest, i))
                    plain_remove(repo, dest, i)
                else:
                    create, prep, track, run = await cy.ready(i)
                    times["create_worktree"].append(create)
                    times["prepare"].append(prep)
                    times["tracker"].append(track)
                    await cy.remove(run)
            print(
                f"  round {i}: plain {times['plain'][-1]:.3f} s; codeyard create_worktree "
                f"{times['create_worktree'][-1]:.3f} s, prepare_worktrees "
                f"{times['prepare'][-1]:.3f} s, tracker {times['tracker'][-1]:.3f} s",
                flush=True,
            )
    times["ready"] = [p + t for p, t in zip(times["prepare"], times["tracker"], strict=True)]
    base = median(times["plain"])
    ratios = {
        kind: {
            "ratio_of_medians": round(median(times[kind]) / base, 3),
            "median_of_pair_ratios": round(
                median([c / p for c, p in zip(times[kind], times["plain"], strict=True)]), 3
            ),
        }
        for kind in ("create_worktree", "prepare", "ready")
    }
    return {
        "seconds": {k: [round(v, 4) for v in vs] for k, vs in times.items()},
        "median_s": {k: round(median(vs), 4) for k, vs in times.items()},
        "ratios": ratios,
        "quiet": quiet,
    }


def table(result: dict[str, Any]) -> str:
    med, ratios = result["median_s"], result["ratios"]
    rows = [
        "| path | median s | ratio (medians) | ratio (median of pairs) | target ≤ 1.10 |",
        "|---|---:|---:|---:|---|",
        f"| plain `git worktree add -b … HEAD` | {med['plain']:.3f} | 1.00 | 1.00 | |",
    ]
    labels = {
        "create_worktree": "`create_worktree` (bare)",
        "prepare": "`prepare_worktrees`",
        "ready": "`prepare_worktrees` + `ChangeTracker.start()` (ready for the agent)",
    }
    for kind, label in labels.items():
        r = ratios[kind]
        met = "met" if r["ratio_of_medians"] <= TARGET else "not met"
        rows.append(
            f"| {label} | {med[kind]:.3f} | {r['ratio_of_medians']:.2f} | "
            f"{r['median_of_pair_ratios']:.2f} | {met} |"
        )
    rows.append(f"| (of which `ChangeTracker.start()`) | {med['tracker']:.3f} | | | |")
    return "\n".join(rows)


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--mb", type=float, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path, default=OUT / "worktree.json")
    args = parser.parse_args()

    root = fresh_dir("worktree")
    repo = root / "repo"
    print(f"generating {args.files} files, ~{args.mb:g} MB ...", flush=True)
    made = generate(repo, args.files, args.mb)
    print(
        f"  {made['bytes'] / 1e6:.0f} MB in {made['files']} files, pack "
        f"{made['pack_bytes'] / 1e6:.0f} MB, {made['generate_s']} s",
        flush=True,
    )
    result = await measure(root, repo, args.repeat)
    print(f"\nmedian of {args.repeat} rounds:\n")
    print(table(result))
    write_json(
        args.json,
        {
            "machine": machine(),
            "git": sh(repo, "version"),
            "repo": made,
            "repeat": args.repeat,
            "target_ratio": TARGET,
            **result,
        },
    )
    shutil.rmtree(root)


if __name__ == "__main__":
    asyncio.run(main())
