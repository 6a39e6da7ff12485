"""Runs for writer tests: one project and draft runs inserted through the writer itself."""

from __future__ import annotations

from typing import Any

from codeyard.domain.events import utc_now
from codeyard.store import projects, runs
from codeyard.store.writer import Tx, Writer

PROJECT = "prj_commit0000000000000000000"


def run_row(run_id: str, number: int) -> dict[str, Any]:
    """A draft run's row in ``PROJECT``, as ``store.runs.insert`` takes it."""
    now = utc_now()
    return {
        "id": run_id,
        "number": number,
        "title": "t",
        "prompt": "p",
        "project_id": PROJECT,
        "repo_ids": [],
        "provider": "script",
        "agent_options": {},
        "status": "draft",
        "source_ref": "HEAD",
        "base_commits": {},
        "worktrees": {},
        "agent_state": {},
        "turns": 0,
        "usage": dict(runs.EMPTY_USAGE),
        "pending_approvals": 0,
        "pending_messages": [],
        "diff_stats": {"files": 0, "insertions": 0, "deletions": 0},
        "archived": False,
        "labels": [],
        "last_seq": 0,
        "created_at": now,
        "updated_at": now,
    }


async def add_runs(writer: Writer, *run_ids: str) -> None:
    """``PROJECT`` and one draft run per id (numbered 1, 2, …), in one writer job."""

    async def job(tx: Tx) -> None:
        now = utc_now()
        await projects.insert_project(
            tx, {"id": PROJECT, "name": "p", "slug": "p", "created_at": now, "updated_at": now}
        )
        for k, run_id in enumerate(run_ids):
            await runs.insert(tx, run_row(run_id, k + 1))

    await writer.run(job)


def approval_row(run_id: str, key: str) -> dict[str, Any]:
    """A pending approval of ``run_id`` for writing ``<key>.txt`` (``apr_<key>``, ``call_<key>``),
    as the approvals door opens it."""
    return {
        "id": f"apr_{key}",
        "run_id": run_id,
        "call_id": f"call_{key}",
        "tool": "Write",
        "kind": "edit",
        "input": {"file_path": f"{key}.txt"},
        "title": f"Write {key}.txt",
        "rule": "mode:default",
        "reason": "asks",
        "status": "pending",
        "decided_by": None,
        "remember": None,
        "created_at": utc_now(),
        "resolved_at": None,
        "expires_at": "2099-01-01T00:00:00.000Z",
        "fingerprint": f"fp_{key}",
        "used_at": None,
    }
