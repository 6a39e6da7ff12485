"""Typed records of the rows the main read paths return (runs, approvals).

The store's older functions hand out mappings (``dict[str, Any]``), which mypy cannot check:
a misspelt key is found in production. Reads that feed the API go through these frozen models
instead. They are built from a row with the columns they name, so a column another feature
adds to the table does not break them; ``tests/unit/test_records.py`` checks that each field is
a column and that a run record holds every field the API shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from pydantic import BaseModel, ConfigDict

from codeyard.domain.status import RunStatus


class Record(BaseModel):
    # Validators are built with the first record read, not at start-up (issue 15).
    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> Self:
        """The record of a row (a ``Row._mapping`` or a dict of its columns)."""
        return cls.model_validate(dict(row))


class RunRecord(Record):
    """A run as the API shows it; internals (worktree intent, agent state, queued messages…)
    stay in the mapping-returning functions the executor uses."""

    id: str
    number: int
    title: str
    prompt: str
    project_id: str
    repo_ids: list[str]
    agent_id: str | None
    provider: str
    model: str | None
    status: RunStatus
    status_reason: str | None
    resolution: str | None
    source_ref: str
    base_commits: dict[str, str]
    branch: str | None
    worktrees: dict[str, str]
    parent_run_id: str | None
    delegation: dict[str, Any] | None
    session_id: str | None
    turns: int
    usage: dict[str, Any]
    budget_usd: float | None
    pending_approvals: int
    diff_stats: dict[str, int]
    pull_request: dict[str, Any] | None
    archived: bool
    labels: list[str]
    created_by: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    updated_at: str
    #: The workspace the run was started in (issue 22); None: none.
    workspace_id: str | None = None


class ApprovalRecord(Record):
    """An approval row, with the binding columns the API does not show."""

    id: str
    run_id: str
    call_id: str
    tool: str
    kind: str
    input: dict[str, Any]
    title: str
    rule: str | None
    status: str
    decided_by: str | None
    reason: str | None
    remember: str | None
    created_at: str
    resolved_at: str | None
    expires_at: str
    #: Hash of the tool and its normalized input: a resumed agent's identical call binds here.
    fingerprint: str | None
    #: When the answer was handed to an agent, and the call it answered.
    used_at: str | None
    used_by: str | None

    def public(self) -> dict[str, Any]:
        """What the API shows (``store.approvals.PUBLIC_KEYS``)."""
        return self.model_dump(exclude={"fingerprint", "used_at", "used_by"})
