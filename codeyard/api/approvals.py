"""Approvals, trust, policies, policy sets and the decision audit log."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Response

from codeyard.api.auth import Caller, require_scope
from codeyard.api.deps import Cursor, Limit, Svc, listing
from codeyard.api.project_views import (
    DecisionView,
    EffectivePoliciesView,
    PolicySetView,
    PolicyView,
)
from codeyard.api.schemas import ApprovalResolve, PolicyBody, PolicySetBody
from codeyard.api.views import ApprovalView, Page, RunView
from codeyard.services import approvals, policies
from codeyard.store import policies as store
from codeyard.store import runs

router = APIRouter(tags=["approvals and policies"])
Status = Literal["pending", "approved", "rejected", "expired"]


@router.get(
    "/approvals", dependencies=[require_scope("runs:read")], response_model=Page[ApprovalView]
)
async def list_approvals(
    svc: Svc,
    status: Status | None = None,
    run_id: str | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Approvals across runs, newest first (``?status=pending`` for the inbox)."""
    rows, next_cursor = await approvals.list_approvals(
        svc, status=status, run_id=run_id, limit=limit, cursor=cursor
    )
    return listing([r.public() for r in rows], next_cursor)


@router.get(
    "/runs/{run_ref}/approvals",
    dependencies=[require_scope("runs:read")],
    response_model=Page[ApprovalView],
)
async def run_approvals(
    run_ref: str, svc: Svc, status: Status | None = None, limit: Limit = 50, cursor: Cursor = None
) -> dict[str, Any]:
    rows, next_cursor = await approvals.list_approvals(
        svc, status=status, run_id=run_ref, limit=limit, cursor=cursor
    )
    return listing([r.public() for r in rows], next_cursor)


@router.post(
    "/approvals/{approval_id}/resolve",
    dependencies=[require_scope("approvals:resolve")],
    response_model=ApprovalView,
)
async def resolve_approval(
    approval_id: str, body: ApprovalResolve, svc: Svc, principal: Caller
) -> dict[str, Any]:
    """Approve or reject; ``remember`` adds an allow rule for the run or the project. 409 twice.

    ``decided_by`` records the deciding user's name (``admin`` for the admin token).
    """
    return await approvals.resolve(
        svc, approval_id, body.decision, body.reason, body.remember, decided_by=principal.name
    )


@router.post(
    "/runs/{run_ref}/trust",
    dependencies=[require_scope("approvals:resolve")],
    response_model=RunView,
)
async def trust_run(run_ref: str, svc: Svc) -> dict[str, Any]:
    """Auto-approve this run's pending and future asks (hard gates still ask)."""
    return await approvals.trust(svc, run_ref)


@router.get(
    "/runs/{run_ref}/effective-policies",
    dependencies=[require_scope("runs:read")],
    response_model=EffectivePoliciesView,
)
async def effective_policies(run_ref: str, svc: Svc) -> dict[str, Any]:
    """The merged rule list for a run, in the order the engine applies it."""
    return await policies.effective(svc, run_ref)


@router.get(
    "/policy-decisions",
    dependencies=[require_scope("runs:read")],
    response_model=Page[DecisionView],
)
async def policy_decisions(
    svc: Svc, run_id: str | None = None, limit: Limit = 50, cursor: Cursor = None
) -> dict[str, Any]:
    """The audit log: every decision with the rule that made it, newest first."""
    async with svc.engine.connect() as conn:
        if run_id:
            run_id = (await runs.get(conn, run_id))["id"]
        rows, next_cursor = await store.list_decisions(
            conn, run_id=run_id, limit=limit, cursor=cursor
        )
    return listing(list(rows), next_cursor)


@router.get(
    "/policies", dependencies=[require_scope("settings:read")], response_model=Page[PolicyView]
)
async def list_policies(svc: Svc) -> dict[str, Any]:
    async with svc.engine.connect() as conn:
        return listing(list(await store.list_policies(conn)), None)


@router.post(
    "/policies",
    dependencies=[require_scope("settings:write")],
    status_code=201,
    response_model=PolicyView,
)
async def create_policy(body: PolicyBody, svc: Svc) -> dict[str, Any]:
    """Rules: ``{tool?, command?, path?, action, reason?}``; invalid regex or glob → 422."""
    return await policies.create_policy(svc, body.model_dump())


@router.get(
    "/policies/{policy_id}",
    dependencies=[require_scope("settings:read")],
    response_model=PolicyView,
)
async def get_policy(policy_id: str, svc: Svc) -> dict[str, Any]:
    async with svc.engine.connect() as conn:
        return await store.get_policy(conn, policy_id)


@router.put(
    "/policies/{policy_id}",
    dependencies=[require_scope("settings:write")],
    response_model=PolicyView,
)
async def replace_policy(policy_id: str, body: PolicyBody, svc: Svc) -> dict[str, Any]:
    return await policies.replace_policy(svc, policy_id, body.model_dump())


@router.delete(
    "/policies/{policy_id}", dependencies=[require_scope("settings:write")], status_code=204
)
async def delete_policy(policy_id: str, svc: Svc) -> Response:
    async with svc.engine.connect() as conn:
        await store.get_policy(conn, policy_id)
    await svc.writer.run(lambda tx: store.delete_policy(tx, policy_id))
    return Response(status_code=204)


@router.get(
    "/policy-sets",
    dependencies=[require_scope("settings:read")],
    response_model=Page[PolicySetView],
)
async def list_sets(svc: Svc) -> dict[str, Any]:
    async with svc.engine.connect() as conn:
        return listing(list(await store.list_sets(conn)), None)


@router.post(
    "/policy-sets",
    dependencies=[require_scope("settings:write")],
    status_code=201,
    response_model=PolicySetView,
)
async def create_set(body: PolicySetBody, svc: Svc) -> dict[str, Any]:
    """A named list of policies, assignable to agent profiles, projects and runs."""
    return await policies.create_set(svc, body.model_dump())


@router.get(
    "/policy-sets/{set_id}",
    dependencies=[require_scope("settings:read")],
    response_model=PolicySetView,
)
async def get_set(set_id: str, svc: Svc) -> dict[str, Any]:
    async with svc.engine.connect() as conn:
        return await store.get_set(conn, set_id)


@router.put(
    "/policy-sets/{set_id}",
    dependencies=[require_scope("settings:write")],
    response_model=PolicySetView,
)
async def replace_set(set_id: str, body: PolicySetBody, svc: Svc) -> dict[str, Any]:
    return await policies.replace_set(svc, set_id, body.model_dump())


@router.delete(
    "/policy-sets/{set_id}", dependencies=[require_scope("settings:write")], status_code=204
)
async def delete_set(set_id: str, svc: Svc) -> Response:
    async with svc.engine.connect() as conn:
        await store.get_set(conn, set_id)
    await svc.writer.run(lambda tx: store.delete_set(tx, set_id))
    return Response(status_code=204)
