"""Landing exactly once across a crash: intent first, then the branch moves, then the record.

Landing moves the target branches (git) and then records the run as completed (database): two
stores, no shared transaction. A server killed between the two left the work landed and the
run in ``review``; landing again then answered "nothing to land" and the run could never be
completed (squash would not even say that much on another day). So, before any branch moves,
the run row records the landing's intent (``workspace_intent.landing``: strategy, and per
repository the target branch and the commit it pointed at). A later landing of the same run
first looks whether that one already happened: every target moved on from its recorded
commit to exactly the tree this landing would make. Then nothing moves again; the caller
records the landing as it would have (``git.merged`` with the commit the target holds).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from codeyard import crashpoints
from codeyard.store import runs
from codeyard.store.writer import Writer
from codeyard.workspace import landing
from codeyard.workspace.branches import is_ancestor
from codeyard.workspace.git import git, resolve_commit

__all__ = ["land_once"]


async def land_once(
    writer: Writer,
    run: dict[str, Any],
    repo_ids: Sequence[str],
    requests: Sequence[landing.LandingRequest],
    strategy: str,
) -> list[landing.LandingPlan | None]:
    """``landing.land_all(requests)`` (``repo_ids`` in the same order), unless an earlier
    landing of this run with ``strategy`` already moved every target: then its plans, as
    found in git. The caller clears the intent when it records the landing."""
    done = await _already_landed(run, repo_ids, requests, strategy)
    if done is not None:
        return done
    before = {}
    for repo_id, req in zip(repo_ids, requests, strict=True):
        tip = await resolve_commit(req.repo, f"refs/heads/{req.target_branch}")
        before[repo_id] = {"target": req.target_branch, "before": tip}
    intent = {"landing": {"strategy": strategy, "repos": before}}
    await writer.run(lambda tx: runs.update_fields(tx, run["id"], workspace_intent=intent))
    plans = await landing.land_all(requests)
    crashpoints.reached("land:moved")
    return plans


async def _already_landed(
    run: dict[str, Any],
    repo_ids: Sequence[str],
    requests: Sequence[landing.LandingRequest],
    strategy: str,
) -> list[landing.LandingPlan | None] | None:
    intent = (run.get("workspace_intent") or {}).get("landing")
    if not intent or intent.get("strategy") != strategy:
        return None
    recorded: dict[str, Any] = intent.get("repos") or {}
    plans: list[landing.LandingPlan | None] = []
    for repo_id, req in zip(repo_ids, requests, strict=True):
        mark = recorded.get(repo_id)
        if mark is None or mark.get("target") != req.target_branch or not mark.get("before"):
            return None
        plan = await _landed(req, str(mark["before"]))
        if plan is None:
            return None
        plans.append(plan)
    return plans


async def _landed(req: landing.LandingRequest, before: str) -> landing.LandingPlan | None:
    """The landing of ``req`` onto ``before`` as the target holds it now, or None when the
    target does not hold it (unmoved, moved elsewhere, or to another tree)."""
    tip = await resolve_commit(req.repo, f"refs/heads/{req.target_branch}")
    source = await resolve_commit(req.repo, req.source)
    if tip is None or source is None or tip == before:
        return None
    if not await is_ancestor(req.repo, before, tip):
        return None
    merged = await git("merge-tree", "--write-tree", before, source, cwd=req.repo, check=False)
    if merged.returncode != 0:
        return None
    want = merged.stdout.split()[0]
    have = (await git("rev-parse", f"{tip}^{{tree}}", cwd=req.repo)).stdout.strip()
    if want != have:
        return None
    return landing.LandingPlan(
        Path(req.repo), req.target_branch, before, tip, source, req.strategy, tip == source
    )
