"""Checkpoints that outlive their host: pushed to a shared bare repository at every turn end,
restored into a new worktree on the host that takes a run over after its host was lost; and the
notice that tells the resumed turn what happened (``cut_off_notice``).

One shared bare repository holds the checkpoints of every project's repositories; refs are
namespaced by repository id and run id (``refs/codeyard-shared/<repo-id>/<run-id>/<n>``), so
repositories that are unrelated never share a ref. A checkpoint commit's parent is the run
branch's HEAD when it was taken, so restoring needs nothing else: the new worktree's branch
starts at that parent and its files are the checkpoint's tree (uncommitted changes included).
Files ignored by ``.gitignore`` are not in checkpoints and do not travel.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from codeyard.domain.events import StoredEvent
from codeyard.store import events, fencing
from codeyard.workspace.git import GitError, git
from codeyard.workspace.repo_lock import repo_lock

log = logging.getLogger(__name__)


def shared_ref(repo_id: str, run_id: str, number: int) -> str:
    return f"refs/codeyard-shared/{repo_id}/{run_id}/{number}"


async def ensure_remote(remote: Path) -> None:
    """Create the shared bare repository if it does not exist yet (idempotent)."""
    if (remote / "HEAD").exists():
        return
    remote.mkdir(parents=True, exist_ok=True)
    await git("init", "--bare", "--quiet", str(remote), cwd=remote)


async def push_checkpoint(
    remote: Path, worktree: Path, repo_id: str, run_id: str, number: int, commit: str
) -> None:
    """Push one checkpoint commit of one repository to the shared remote."""
    await git(
        "push", "--quiet", "--no-verify", str(remote),
        f"+{commit}:{shared_ref(repo_id, run_id, number)}",
        cwd=worktree,
    )  # fmt: skip


async def push_fenced(
    engine: AsyncEngine,
    remote: Path,
    worktrees: dict[str, str],
    run_id: str,
    fence: fencing.Fence | None,
    number: int,
    commits: dict[str, str],
) -> None:
    """Push a committed checkpoint's commits, unless the attempt that took it lost the run.

    The row was fenced when it committed, but the push comes after: a host that lost its run
    in between (its heartbeat timed out, another host took the run and pushes its own
    checkpoints) must not write into the run's shared refs. Raises ``StaleAttempt``, pushing
    nothing, when the run's attempt moved past ``fence`` (None: written outside an attempt,
    not fenced)."""
    for repo_id, sha in commits.items():
        path = worktrees.get(repo_id)
        if path is None:
            continue
        await fencing.verify(engine, fence)
        await push_checkpoint(remote, Path(path), repo_id, run_id, number, sha)


async def fetch_checkpoint(
    remote: Path, repo: Path, repo_id: str, run_id: str, number: int
) -> str | None:
    """Fetch a pushed checkpoint into ``repo``; its commit id, or None if it was never pushed."""
    ref = shared_ref(repo_id, run_id, number)
    local = f"refs/codeyard/{run_id}/{number}"
    try:
        await git("fetch", "--quiet", "--no-tags", str(remote), f"+{ref}:{local}", cwd=repo)
    except GitError as exc:
        log.info("checkpoint %s of run %s is not on the shared remote: %s", number, run_id, exc)
        return None
    return (await git("rev-parse", "--verify", f"{local}^{{commit}}", cwd=repo)).stdout.strip()


async def restore_worktree(
    repo: Path, dest: Path, branch: str, start: str, tree: str | None
) -> None:
    """Make ``dest`` a worktree of ``repo`` on ``branch`` at ``start``, holding ``tree``'s files.

    ``start`` is the branch's commit (the checkpoint's parent, or the run's base commit when no
    checkpoint was pushed); ``tree`` the checkpoint commit whose state the files take (None:
    the files of ``start``). The index stays at ``start``: the restored changes show as the
    uncommitted changes they were. The lost host's worktree may still be registered on the
    same branch (shared storage): it is stale, and git is told to ignore it.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    async with repo_lock(repo):  # other workers on this host may be adding worktrees to it
        await git("worktree", "prune", cwd=repo, check=False)
        await git("worktree", "add", "--quiet", "--force", "--detach", str(dest), start, cwd=repo)
    await git("checkout", "--quiet", "--ignore-other-worktrees", "-B", branch, start, cwd=dest)
    if tree is not None and tree != start:
        await git("read-tree", "-m", "-u", "HEAD", tree, cwd=dest)
        await git("reset", "--quiet", "--mixed", "HEAD", cwd=dest)


async def parent_of(repo: Path, commit: str) -> str:
    return (await git("rev-parse", "--verify", f"{commit}^", cwd=repo)).stdout.strip()


# -- telling the resumed turn what the cut-off attempt did ----------------------------------------

#: Tool calls listed in the notice (the first few and the latest; the rest are counted), the
#: characters kept of each call's title and output, and the changed files named.
NOTICE_CALLS = 20
NOTICE_FIRST = 5
NOTICE_TITLE = 160
NOTICE_OUTPUT = 240
NOTICE_FILES = 20
#: Events of the cut-off attempt read at most (a turn with more tool calls is summarized
#: from its first ones and says so).
NOTICE_EVENTS = 4000
_NOTICE_TYPES = frozenset({"tool.call", "tool.result", "file.changed"})


def _clip(text: str, limit: int) -> str:
    one = " ".join(text.split())
    return one if len(one) <= limit else one[: limit - 1] + "…"


def _when(ts: str) -> str:
    """``2026-12-04T15:40:02.123456Z`` → ``2026-12-04 15:40:02 UTC`` (as given otherwise)."""
    return f"{ts[:10]} {ts[11:19]} UTC" if len(ts) >= 19 and ts[10] == "T" else ts


def _call_line(call: dict[str, Any], result: dict[str, Any] | None) -> str:
    title = _clip(str(call.get("title") or call.get("tool") or "a tool call"), NOTICE_TITLE)
    line = f"- {call.get('tool') or 'tool'}: {title}"
    if result is None:
        return f"{line} → no result recorded (it ran when the host was lost, or had just ended)"
    said = str(result.get("output") or result.get("error") or "").strip()
    outcome = "ok" if result.get("ok") else "failed"
    return f"{line} → {outcome}" + (f": {_clip(said, NOTICE_OUTPUT)}" if said else "")


def cut_off_summary(events: list[StoredEvent], truncated: bool = False) -> str:
    """What a cut-off attempt did, from its ``tool.call``/``tool.result``/``file.changed``
    events in order: the tool calls (bounded, each with its outcome) and the files it changed.
    Pure; "" when it did neither."""
    calls: list[dict[str, Any]] = []
    results: dict[str, dict[str, Any]] = {}
    files: list[str] = []
    for event in events:
        data = event.data
        if event.type == "tool.call":
            calls.append(data)
        elif event.type == "tool.result":
            results[str(data.get("call_id"))] = data
        elif event.type == "file.changed":
            path = str(data.get("path") or "")
            if path and path not in files:
                files.append(path)
    parts: list[str] = []
    if calls:
        lines = [_call_line(c, results.get(str(c.get("call_id")))) for c in calls]
        if len(lines) > NOTICE_CALLS:
            last = NOTICE_CALLS - NOTICE_FIRST
            hidden = len(lines) - NOTICE_CALLS
            lines = [*lines[:NOTICE_FIRST], f"- … {hidden} more tool calls …", *lines[-last:]]
        more = " (and more, not listed)" if truncated else ""
        parts.append(f"These tool calls had run in it{more}:\n" + "\n".join(lines))
    if files:
        named = ", ".join(_clip(path, NOTICE_TITLE) for path in files[:NOTICE_FILES])
        if len(files) > NOTICE_FILES:
            named += f" and {len(files) - NOTICE_FILES} more"
        parts.append(f"Files it had changed (now back as they were at the checkpoint): {named}.")
    return "\n\n".join(parts)


async def take_over_order(
    conn: AsyncConnection, run_id: str, rows: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The run's checkpoint rows in the order a take-over tries them (newest first), and the
    checkpoint after which the cut-off attempt's work is told (None: the one restored). When
    the newest is a restore's undo checkpoint (none taken since), the files were put back to
    the restored checkpoint: it comes first, and the work is told from the undo on."""
    order = sorted(rows, key=lambda r: int(r["number"]), reverse=True)
    if not order or order[0]["kind"] != "pre_restore":
        return order, None
    restores = await events.read_all(conn, run_id, frozenset({"checkpoint.restored"}))
    last = restores[-1].data if restores else {}
    back = next((r for r in order if r["id"] == last.get("checkpoint_id")), None)
    if back is None or last.get("undo_checkpoint_id") != order[0]["id"]:
        return order, None
    return [back, *(r for r in order if r is not back)], order[0]


async def cut_off_notice(
    conn: AsyncConnection,
    run_id: str,
    lost_host: str,
    new_host: str,
    restored: dict[str, Any] | None,
    since: dict[str, Any] | None = None,
) -> str:
    """The notice a run's resumed turn starts with after its host was lost mid-turn: where and
    when the attempt was cut off, what the workspace is now (``restored``: the checkpoint row
    the worktrees were restored from; None: the run's base commits), and what the cut-off
    attempt had done since (its tool calls and changed files, from the event log: everything
    after that checkpoint, or after ``since``: a restore's undo checkpoint, see
    :func:`take_over_order`). The resumed turn's request follows it (``executor.turns``)."""
    after = 0
    anchor = since or restored
    if anchor is not None:
        made = await events.read_all(conn, run_id, frozenset({"checkpoint.created"}))
        after = next(
            (
                e.id
                for e in reversed(made)
                if (e.data.get("checkpoint") or {}).get("number") == anchor["number"]
            ),
            0,
        )
    done = await events.read(
        conn, run_id=run_id, types=_NOTICE_TYPES, after=after, limit=NOTICE_EVENTS
    )
    tail = await events.read_tail(conn, run_id, 1)
    at = f" (the last thing it recorded was at {_when(tail[0].ts)})" if tail else ""
    if restored is None:
        files = "The files are back at the run's base commit (no checkpoint of the run was saved)"
    else:
        files = (
            f"The files are as of checkpoint {restored['number']} (turn {restored['turn']}, "
            f"{_when(str(restored['created_at']))})"
        )
    summary = cut_off_summary(done, truncated=len(done) >= NOTICE_EVENTS)
    return "\n\n".join(
        (
            f"[Codeyard] Your previous turn was cut off: worker host {lost_host}, which ran it, "
            f"was lost{at}, and the run now continues on worker host {new_host}. {files}: every "
            "change the cut-off attempt made to files after that was lost, while what its "
            "commands did outside the workspace may remain.",
            summary or "It had run no tool calls.",
            "Check the files for what is already done, then redo what is needed to finish that "
            "turn's request, which was:",
        )
    )
