"""Request bodies. Unknown fields are refused (422), so a typo never silently does nothing."""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

T = TypeVar("T")


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def data(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


def _refuse_null(value: T | None) -> T:
    # Validators run only on values the client sent, so a left-out field never gets here.
    if value is None:
        raise ValueError("cannot be null: leave the field out to keep its current value")
    return value


#: A change-body field that may be left out but never sent as ``null`` (its column always has a
#: value); the OpenAPI schema does not advertise null, and a null gets a 422 naming the fix.
NonNull = Annotated[T | SkipJsonSchema[None], AfterValidator(_refuse_null)]


class RepoSpec(Body):
    path: str | None = None
    url: str | None = None
    name: str | None = Field(default=None, max_length=200)
    default_branch: str | None = None


class ProjectCreate(Body):
    name: str = Field(min_length=1, max_length=200)
    slug: str | None = Field(default=None, max_length=100)
    repos: list[RepoSpec] = Field(default_factory=list)


class ProjectUpdate(Body):
    name: NonNull[Annotated[str, Field(min_length=1, max_length=200)]] = None
    policy_set_ids: NonNull[list[str]] = None
    member_ids: list[str] | None = Field(
        default=None,
        max_length=200,
        description="Users (usr_…) who may change the project like its owner, not delete it. "
        "Only the owner or an admin may set this.",
    )


class RepoUpdate(Body):
    default_branch: str | None = None
    setup_script: str | None = None
    cleanup_script: str | None = None
    copy_files: NonNull[list[str]] = None


PermissionMode = Literal["default", "plan", "auto"]


class AgentCreate(Body):
    name: str = Field(min_length=1, max_length=200)
    provider: str
    model: str | None = None
    instructions: str | None = None
    allowed_tools: list[str] = Field(default_factory=list)
    disallowed_tools: list[str] = Field(default_factory=list)
    max_turns: int | None = Field(default=None, ge=1)
    permission_mode: PermissionMode = "default"
    policy_set_ids: list[str] = Field(default_factory=list)
    env_set_ids: list[str] = Field(default_factory=list)
    provider_config: dict[str, Any] = Field(default_factory=dict)


class AgentUpdate(Body):
    name: NonNull[Annotated[str, Field(min_length=1, max_length=200)]] = None
    provider: NonNull[str] = None
    model: str | None = None
    instructions: str | None = None
    allowed_tools: NonNull[list[str]] = None
    disallowed_tools: NonNull[list[str]] = None
    max_turns: int | None = Field(default=None, ge=1)
    permission_mode: NonNull[PermissionMode] = None
    policy_set_ids: NonNull[list[str]] = None
    env_set_ids: NonNull[list[str]] = None
    provider_config: NonNull[dict[str, Any]] = None


class RunCreate(Body):
    prompt: str = Field(min_length=1, max_length=200_000)
    title: str | None = Field(default=None, max_length=300)
    project_id: str | None = None
    repo_path: str | None = None
    repo_ids: list[str] | None = None
    agent_id: str | None = None
    provider: str | None = None
    model: str | None = None
    agent_options: dict[str, Any] = Field(default_factory=dict)
    source_ref: str = Field(default="HEAD", min_length=1, max_length=250)
    draft: bool = False
    budget_usd: float | None = Field(default=None, ge=0)
    labels: list[str] = Field(default_factory=list)
    parent_run_id: str | None = None
    policy_set_ids: list[str] = Field(default_factory=list)
    rag_enabled: bool = Field(
        default=False,
        description="Add the code index's most relevant snippets for the prompt to the agent's "
        "instructions (POST /api/projects/{id}/index-rag first); recorded as 'context.added'.",
    )
    safe_mode: bool = Field(
        default=False,
        description="Read-only run: file writes and edits are denied and every command asks a "
        "person first (permission mode 'plan', whatever the profile or options say).",
    )
    env_set_ids: list[str] = Field(
        default_factory=list,
        description="Env sets for the agent's environment (after the agent profile's).",
    )
    workspace_id: str | None = Field(
        default=None,
        max_length=40,
        description="Start the run in this workspace: one of its projects, and its defaults "
        "(profile or provider and model, env sets, policy sets, budget) for what is left out.",
    )


class ResumeBody(Body):
    message: str | None = None


class MessageBody(Body):
    text: str = Field(min_length=1, max_length=200_000)
    images: list[str] = Field(
        default_factory=list,
        max_length=5,
        description="Data URLs (data:image/png;base64,…) of PNG, JPEG, GIF or WebP images, "
        "5 MB each, for providers that take images (Claude Code, Codex); a new turn only.",
    )


class FollowUpBody(Body):
    prompt: str = Field(min_length=1, max_length=200_000)
    agent_id: str | None = None
    provider: str | None = None
    model: str | None = None
    agent_options: dict[str, Any] | None = None


class CheckpointCreate(Body):
    description: str | None = Field(default=None, max_length=2000)


class ResolveBody(Body):
    action: Literal["merge", "squash", "rebase", "create_pr", "discard", "agent_merge"]
    target_branch: str | None = Field(default=None, min_length=1, max_length=250)
    message: str | None = Field(default=None, max_length=20_000)
    title: str | None = Field(default=None, max_length=300)
    body: str | None = Field(default=None, max_length=60_000)
    draft: bool = False


class CommitBody(Body):
    message: str | None = Field(default=None, max_length=20_000)


class PushBody(Body):
    force: bool = False


class RebaseBody(Body):
    onto: str | None = Field(default=None, min_length=1, max_length=250)


class RenameBranchBody(Body):
    name: str = Field(min_length=1, max_length=250)


class ApprovalResolve(Body):
    decision: Literal["approved", "rejected"]
    reason: str | None = Field(default=None, max_length=2000)
    remember: Literal["run", "project"] | None = None


class PolicyBody(Body):
    name: str = Field(min_length=1, max_length=200)
    enabled: bool = True
    priority: int = Field(default=0, ge=-1_000_000, le=1_000_000)
    rules: list[dict[str, Any]] = Field(default_factory=list, max_length=5000)


class PolicySetBody(Body):
    name: str = Field(min_length=1, max_length=200)
    policy_ids: list[str] = Field(default_factory=list)
