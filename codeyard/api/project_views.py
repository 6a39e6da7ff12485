"""Response models of projects, their repositories, agent profiles, policies and policy sets."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, create_model

from codeyard.api.settings import SettingsView
from codeyard.api.views import View


class RepoView(View):
    id: str
    project_id: str
    name: str
    #: The local clone every run's worktree is made from.
    path: str
    #: Where it was cloned from (credentials removed), ``null`` for a local work tree.
    url: str | None
    default_branch: str | None
    setup_script: str | None
    cleanup_script: str | None
    #: Files copied from the clone into each new worktree (``.env`` and the like).
    copy_files: list[str]
    created_at: str
    updated_at: str


class ProjectView(View):
    id: str
    name: str
    slug: str
    policy_set_ids: list[str] | None
    created_at: str
    updated_at: str
    #: Who created it (``null``: the admin token, or made before owners existed).
    owner_id: str | None
    #: Users who may change it like its owner, not delete it.
    member_ids: list[str] | None
    repos: list[RepoView]


class AgentView(View):
    """An agent profile: a provider with its model, instructions, tools and options."""

    id: str
    name: str
    provider: str
    model: str | None
    instructions: str | None
    allowed_tools: list[str]
    disallowed_tools: list[str]
    max_turns: int | None
    permission_mode: Literal["default", "plan", "auto"]
    policy_set_ids: list[str]
    env_set_ids: list[str]
    #: Provider options; ``env`` values are shown masked.
    provider_config: dict[str, Any]
    created_at: str
    updated_at: str


class RuleView(View):
    """``{tool?, command?, path?, action, reason?}`` as it was written."""

    model_config = ConfigDict(frozen=True, extra="allow")

    action: Literal["allow", "ask", "deny"]
    tool: str | None = None
    command: str | None = None
    path: str | None = None
    reason: str | None = None


class PolicyView(View):
    id: str
    name: str
    enabled: bool
    priority: int
    rules: list[RuleView]
    #: Set for the allow rules an approval's ``remember: "run"`` added: that run only.
    scope_run_id: str | None
    created_at: str
    updated_at: str


class PolicySetView(View):
    id: str
    name: str
    policy_ids: list[str] = Field(description="Members, in evaluation order.")
    created_at: str
    updated_at: str


class EffectiveRuleView(RuleView):
    #: ``policy:<id>#<index>``, or a built-in rule's id.
    rule: str
    policy_id: str
    #: The policy's name (``null`` for built-in rules).
    policy: str | None
    priority: int | None


class EffectivePoliciesView(View):
    run_id: str
    trusted: bool
    permission_mode: str
    #: In the order the engine applies them.
    rules: list[EffectiveRuleView]


class DecisionView(View):
    id: int
    run_id: str
    call_id: str
    tool: str
    #: ``allow``, ``ask`` or ``deny``.
    decision: str
    rule: str | None
    reason: str | None
    created_at: str


#: The stored settings as they are when nobody changed them: ``SettingsView`` without what is
#: never stored (``worktree_root`` comes from the config, ``sandbox_status`` is probed), so a
#: setting added there is declared here too.
_STORED: dict[str, Any] = {
    name: (field.annotation, field)
    for name, field in SettingsView.model_fields.items()
    if name not in ("worktree_root", "sandbox_status")
}
SettingsDefaultsView = create_model("SettingsDefaultsView", __base__=View, **_STORED)
