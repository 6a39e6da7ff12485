"""Recursion-safe delegation: agents that start governed sub-runs through Codeyard's MCP server.

A run whose profile opts in gets a *run token* for the MCP endpoint. The token is the run id
sealed with the data dir's key (AES-GCM, never stored): it is valid only while that run is
active, and it acts as the run's creator with fewer scopes (no landing, no pushing, no
settings). What such a caller may do is narrowed here, in one place:

* a sub-run records its parent and depth, inherits the parent's policy sets (run, profile and
  project sets, resolved at creation), its agent options (environment, permission mode, the
  offer of this MCP server) and its repositories, and draws a slice of the parent's budget;
* depth and fan-out are limited (``CODEYARD_MCP_MAX_DEPTH`` / ``_MAX_CHILDREN``);
* the agent sees and acts on its own descendants only, and may decide an approval only when a
  descendant asked it: never its own, a sibling's or an ancestor's.
"""

from __future__ import annotations

from typing import Any

from codeyard.auth.principal import Principal
from codeyard.auth.scopes import effective
from codeyard.crypto import SecretBox, SecretsUnavailable, secret_box
from codeyard.domain import delegation as rules
from codeyard.domain.errors import Forbidden, Unauthorized
from codeyard.domain.status import ACTIVE, RunStatus
from codeyard.policy import context as policy_context
from codeyard.services import runs as run_service
from codeyard.services import workspaces as workspace_service
from codeyard.services.context import Services
from codeyard.store import lineage, policies, runs, users

RUN_TOKEN_PREFIX = "cy_run_"
_AAD = "codeyard-mcp-run-token"
#: The agent option that offers Codeyard's MCP server to a run's agent (``mcp_server.offer``).
OPT_IN = "codeyard_mcp"
#: Options a sub-run with another agent than its parent's still inherits: how it is governed
#: and contained, and whether it may delegate further.
INHERITED_OPTIONS = ("permission_mode", "network", OPT_IN)
#: What an agent may do through MCP, at most (further narrowed by its creator's role).
AGENT_SCOPES = ("runs:read", "runs:write", "runs:control", "approvals:resolve")


def mint_run_token(box: SecretBox, run_id: str) -> str:
    """A bearer token that speaks for ``run_id`` at ``/mcp`` while the run is active."""
    return RUN_TOKEN_PREFIX + box.encrypt(run_id.encode(), _AAD)


def limits(svc: Services) -> rules.Limits:
    s = svc.settings
    return rules.Limits(s.mcp_max_depth, s.mcp_max_children, s.mcp_budget_share)


async def principal_for_run_token(svc: Services, token: str) -> tuple[Principal, str]:
    """(the caller, the agent's run id) for a run token; 401 when forged or the run has rested."""
    invalid = Unauthorized(
        "The run token is not valid: it was not issued by this server, or its run no longer exists."
    )
    box = secret_box(svc.settings.secret_key_path)
    try:
        run_id = box.decrypt(token[len(RUN_TOKEN_PREFIX) :], _AAD).decode()
    except (SecretsUnavailable, UnicodeDecodeError):
        raise invalid from None
    async with svc.engine.connect() as conn:
        run = await runs.find(conn, run_id)
        if run is None:
            raise invalid
        role = "admin"
        if run["created_by"] is not None:
            user = await users.find(conn, run["created_by"])
            if user is None:
                raise invalid
            role = user["role"]
    if RunStatus(run["status"]) not in ACTIVE:
        raise Unauthorized(
            f"Run {run['number']} is {run['status']}: its run token only works while it runs."
        )
    principal = Principal(
        "run",
        f"run #{run['number']}",
        effective(AGENT_SCOPES, role),
        user_id=run["created_by"],
        role=role,
    )
    return principal, run_id


async def check_access(
    svc: Services, principal: Principal, agent_run_id: str | None, run_ref: str, *, acting: bool
) -> dict[str, Any]:
    """The run ``run_ref`` if this caller may read it (``acting``: change it); else 403/404.

    People: reading is open to ``runs:read``; acting on another user's run needs admin (as in
    the REST API). Agents: their own descendants, plus themselves for reading.
    """
    async with svc.engine.connect() as conn:
        run = await runs.get(conn, run_ref)
        if agent_run_id is None:
            if acting and not principal.is_admin and not principal.owns(run["created_by"]):
                raise Forbidden(
                    "This run belongs to another user; only its creator or an admin may change it."
                )
            return run
        if run["id"] == agent_run_id and not acting:
            return run
        if run["id"] not in await lineage.descendant_ids(conn, agent_run_id):
            raise Forbidden(
                f"Run {run['number']} is not a sub-run of this agent's run: an agent may act "
                "only on the runs it started (and theirs)."
            )
    return run


async def agent_runs(svc: Services, agent_run_id: str) -> set[str]:
    """The runs an agent may list: itself and its descendants."""
    async with svc.engine.connect() as conn:
        return {agent_run_id, *(await lineage.descendant_ids(conn, agent_run_id))}


async def check_may_decide(svc: Services, agent_run_id: str, approval_id: str) -> None:
    async with svc.engine.connect() as conn:
        approval = await policies.get_approval(conn, approval_id)
        chain = await lineage.ancestors(conn, approval["run_id"])
    rules.check_may_decide(agent_run_id, chain)


def _spent(run: dict[str, Any]) -> float:
    return float((run.get("usage") or {}).get("cost_usd") or 0.0)


async def start_sub_run(
    svc: Services, principal: Principal, agent_run_id: str, args: dict[str, Any]
) -> dict[str, Any]:
    """Create a sub-run of ``agent_run_id`` under the delegation rules (see the module doc)."""
    lim = limits(svc)
    async with svc.engine.connect() as conn:
        parent = await runs.get(conn, agent_run_id)
        children = await lineage.delegated_children(conn, parent["id"])
        inherited_sets = await policy_context.assigned_set_ids(conn, parent)
    depth = rules.check_depth(int((parent.get("delegation") or {}).get("depth") or 0), lim)
    rules.check_fan_out(len(children), lim)
    reserved = sum(float(c["budget_usd"] or 0.0) for c in children)
    budget = rules.budget_slice(
        parent["budget_usd"], _spent(parent), reserved, args.get("budget_usd"), lim
    )
    provider = args.get("provider")
    agent_id = args.get("agent_id")
    same_agent = (provider is None and agent_id is None) or (
        provider == parent["provider"] and agent_id is None
    )
    parent_options = parent["agent_options"]
    options = (
        dict(parent_options)
        if same_agent
        else {k: parent_options[k] for k in INHERITED_OPTIONS if k in parent_options}
    )
    if not same_agent and options.get(OPT_IN) == "stdio":
        # "stdio" is an ACP agent's way in; another agent takes the offer as it can.
        options[OPT_IN] = True
    body: dict[str, Any] = {
        "prompt": args.get("prompt"),
        "title": args.get("title"),
        "project_id": parent["project_id"],
        "repo_ids": parent["repo_ids"],
        "source_ref": parent["branch"] or parent["source_ref"],
        "agent_id": agent_id or (parent["agent_id"] if same_agent else None),
        "provider": provider or (None if agent_id else parent["provider"]),
        "model": args.get("model") or (parent["model"] if same_agent else None),
        "agent_options": options,
        "budget_usd": budget,
        "policy_set_ids": list(
            dict.fromkeys([*inherited_sets, *(args.get("policy_set_ids") or [])])
        ),
        "labels": list(parent.get("labels") or []),
        # Its parent's workspace: listed with it, and under its defaults and owner check.
        "workspace_id": await workspace_service.kept(svc, parent.get("workspace_id")),
    }
    if body["agent_id"] is not None and body["provider"] == parent["provider"] and not provider:
        body["provider"] = None  # the profile names its provider
    delegation = {
        "via": "mcp",
        "depth": depth,
        "budget_slice_usd": budget,
        "root_run_id": (parent.get("delegation") or {}).get("root_run_id") or parent["id"],
    }
    return await run_service.create(
        svc, body, principal, parent_run_id=parent["id"], delegation=delegation
    )
