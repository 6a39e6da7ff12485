"""Response models of reviewing and landing a run: diffs, checkpoint restores, git actions,
pull requests and branches."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from codeyard.api.views import CheckpointView, DiffStatsView, View


def _absent(value: object) -> bool:
    return value is None


def omitted() -> Any:
    """A field left out of the answer when it has no value (as git's diff leaves it out)."""
    return Field(default=None, exclude_if=_absent)


class DiffLineView(View):
    type: Literal["context", "add", "del"]
    text: str
    old_line: int | None = omitted()
    new_line: int | None = omitted()
    #: git's "\ No newline at end of file" follows this line.
    no_newline: bool | None = omitted()


class DiffHunkView(View):
    old_start: int
    old_lines: int
    new_start: int
    new_lines: int
    header: str
    lines: list[DiffLineView]


class DiffFileView(View):
    path: str
    old_path: str | None
    #: ``added``, ``modified``, ``deleted``, ``renamed``, ``copied`` or ``type_changed``.
    status: str
    additions: int
    deletions: int
    binary: bool
    hunks: list[DiffHunkView]
    #: Which repository, when the run spans several.
    repo_id: str | None = omitted()


#: ``?format=text`` (the default) answers a unified diff instead of JSON.
DIFF_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/x-diff": {"schema": {"type": "string"}}}}
}


class RestoredView(View):
    restored: CheckpointView
    #: Taken just before the restore: restore it to undo.
    undo_checkpoint: CheckpointView
    diff_stats: DiffStatsView


class CommitsView(View):
    #: The new commit per repository id (repositories without changes are left out).
    commits: dict[str, str]


class PushedView(View):
    branch: str
    remote: str
    pushed: bool


class RebasedView(View):
    #: The rebased branch head per repository id.
    heads: dict[str, str]


class CheckView(View):
    name: str
    #: ``queued``, ``in_progress`` or ``completed``.
    status: str
    conclusion: str | None


class PullRequestView(View):
    """A pull request as its host reports it now."""

    url: str
    number: int
    state: Literal["open", "closed", "merged"]
    draft: bool
    title: str
    head: str
    base: str
    checks: list[CheckView]
    review_state: Literal["approved", "changes_requested", "commented", "pending"] | None
    head_sha: str | None = None
    mergeable: bool | None = None
    #: Check names the base branch's protection requires (``null``: the host cannot tell).
    required_checks: list[str] | None = None
    #: Required checks not passed on the head, each ``name: why``; merging waits for them.
    waiting_on: list[str] = Field(default_factory=list)


class BranchView(View):
    repo_id: str
    name: str
    head: str
    #: Commits against the default branch (``null`` when unrelated).
    ahead: int | None
    behind: int | None
    pushed: bool
    #: The run whose branch this is.
    run_id: str | None
    pull_request: dict[str, Any] | None
