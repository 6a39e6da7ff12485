"""Response models of the server's own state: health, providers, models, spend, disk and
browsing files (a run's worktree or a commit of a repository)."""

from __future__ import annotations

from typing import Literal

from codeyard.api.views import UsageView, View


class HealthView(View):
    status: Literal["ok"]
    version: str
    #: ``sqlite`` or ``postgresql``.
    database: str
    setup_required: bool


class ProviderView(View):
    name: str
    available: bool
    version: str | None
    path: str | None
    #: What the provider can do (approvals, resume, interrupt, …).
    capabilities: dict[str, bool]
    #: Why it cannot run here, naming the fix.
    problem: str | None


class ModelView(View):
    """One model of the vendored price map; costs are US dollars per token."""

    id: str
    provider: str
    input_cost_per_token: float
    output_cost_per_token: float
    cache_read_input_token_cost: float | None
    cache_creation_input_token_cost: float | None
    max_input_tokens: int | None
    max_output_tokens: int | None
    aliases: list[str]


class UsageTotalsView(View):
    period: Literal["day", "month"]
    since: str
    cap_usd: float | None
    total: UsageView
    #: By model name.
    models: dict[str, UsageView]
    #: By project id.
    projects: dict[str, UsageView]


class RunDiskView(View):
    run_id: str
    number: int
    status: str
    bytes: int
    finished_at: str | None
    #: The next retention pass frees it.
    reclaimable: bool


class ProjectDiskView(View):
    project_id: str
    slug: str
    bytes: int
    runs: list[RunDiskView]


class DiskUsageView(View):
    total_bytes: int
    reclaimable_bytes: int
    retention_days: int | None
    cutoff: str | None
    worktree_root: str
    projects: list[ProjectDiskView]


class BranchRef(View):
    repo_id: str
    branch: str


class ReclaimedRunView(View):
    run_id: str
    number: int
    project_id: str
    status: str
    finished_at: str | None
    bytes: int
    #: Unmerged branches are kept; merged ones are deleted with the worktree.
    branches_kept: list[BranchRef]
    branches_deleted: list[BranchRef]


class GcErrorView(View):
    run_id: str
    message: str


class GcView(View):
    retention_days: int | None
    cutoff: str | None
    dry_run: bool
    freed_bytes: int
    runs: list[ReclaimedRunView]
    errors: list[GcErrorView]


class TreeEntryView(View):
    path: str
    #: ``file``, ``dir``, ``symlink``, ``submodule`` or ``other``.
    type: str
    size: int | None


class WorkspaceListingView(View):
    run_id: str
    repo_id: str
    path: str
    depth: int
    entries: list[TreeEntryView]
    #: More entries than one answer holds.
    truncated: bool


class WorkspaceFileView(View):
    run_id: str
    repo_id: str
    path: str
    size: int
    truncated: bool
    binary: bool
    #: ``utf-8`` for text, ``base64`` for binary content.
    encoding: str
    content: str


class RepoTreeView(View):
    repo_id: str
    ref: str
    commit: str
    path: str
    entries: list[TreeEntryView]


class RepoBlobView(View):
    repo_id: str
    ref: str
    commit: str
    path: str
    size: int
    truncated: bool
    binary: bool
    encoding: str
    content: str
