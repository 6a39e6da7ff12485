"""Run use cases: control (start/cancel/pause/resume), messages, delete, archive, follow-ups
and retries. Creating a run is ``services.run_creation``; :func:`create` is re-exported here
for the callers (routes, delegation, discovery, workflows) that reach every use case through
this module."""

from __future__ import annotations

from typing import Any

from codeyard.agents import script
from codeyard.auth.principal import Principal
from codeyard.domain import events as ev
from codeyard.domain.errors import InvalidTransition, ValidationFailed
from codeyard.domain.status import RunStatus, check_action, pull_request_open
from codeyard.executor.interface import Cancel, Message, Pause
from codeyard.run_workspace.checkpointing import delete_run_refs
from codeyard.run_workspace.removal import remove_run_worktrees
from codeyard.services import message_images
from codeyard.services import sandbox as sandbox_service
from codeyard.services import workspaces as workspace_service
from codeyard.services.context import Services
from codeyard.services.run_creation import create
from codeyard.store import runs
from codeyard.store.records import RunRecord
from codeyard.store.writer import Tx

__all__ = [
    "cancel",
    "create",
    "delete",
    "follow_up",
    "get",
    "get_record",
    "message",
    "pause",
    "resume",
    "retry",
    "set_archived",
    "start",
]

S = RunStatus


async def get(svc: Services, ref: str) -> dict[str, Any]:
    async with svc.engine.connect() as conn:
        return await runs.get(conn, ref)


async def get_record(svc: Services, ref: str) -> RunRecord:
    """A run by id or number, typed, for read paths that only show it."""
    async with svc.engine.connect() as conn:
        return await runs.get_record(conn, ref)


async def _transition(
    svc: Services, run_id: str, to: RunStatus, reason: str | None, **values: Any
) -> dict[str, Any]:
    async def job(tx: Tx) -> dict[str, Any]:
        return await runs.set_status(tx, run_id, to, reason, **values)

    return await svc.writer.run(job)


async def start(svc: Services, ref: str) -> dict[str, Any]:
    run = await get(svc, ref)
    check_action("start", S(run["status"]))
    if run["provider"] == script.NAME:
        script.require_scenario(run["agent_options"] or {})
    run = await _transition(svc, run["id"], S.QUEUED, "started")
    await svc.executor.submit(run["id"])
    return runs.public(run)


async def _stop(svc: Services, ref: str, signal: Cancel | Pause, to: RunStatus) -> dict[str, Any]:
    """Stop the live attempt through the executor, or (none live) move the row through the door."""
    action, reason = signal.kind, signal.reason
    run = await get(svc, ref)
    check_action(action, S(run["status"]))
    if not await svc.executor.signal(run["id"], signal):
        await _transition(svc, run["id"], to, reason)
    return runs.public(await get(svc, run["id"]))


async def cancel(svc: Services, ref: str) -> dict[str, Any]:
    return await _stop(svc, ref, Cancel(), S.CANCELLED)


async def pause(svc: Services, ref: str) -> dict[str, Any]:
    return await _stop(svc, ref, Pause(), S.PAUSED)


async def resume(svc: Services, ref: str, message: str | None) -> dict[str, Any]:
    run = await get(svc, ref)
    check_action("resume", S(run["status"]))

    async def job(tx: Tx) -> dict[str, Any]:
        current = await runs.lock(tx, run["id"])
        pending = list(current["pending_messages"])
        if message:
            pending.append(message)
            await tx.emit_one(run["id"], ev.UserMessage(text=message, author="operator"))
        return await runs.set_status(
            tx, run["id"], S.QUEUED, "resumed", pending_messages=pending, resume_at_start=False
        )

    updated = await svc.writer.run(job)
    await svc.executor.submit(run["id"])
    return runs.public(updated)


async def message(
    svc: Services,
    ref: str,
    text: str,
    author: str = "operator",
    source: str = "message",
    images: list[str] | None = None,
) -> dict[str, Any]:
    """Deliver an operator message: answer a waiting agent, queue it mid-turn, or start a turn."""
    text = text.strip()
    if not text:
        raise ValidationFailed(
            "The message is empty.", errors=[{"loc": ["body", "text"], "msg": "must not be empty"}]
        )
    run = await get(svc, ref)
    check_action("message", S(run["status"]), pr_open=pull_request_open(run["pull_request"]))
    run_id = run["id"]
    attached = await message_images.attach(svc, run, images or [])
    event = ev.UserMessage(text=text, author=author)

    async def job(tx: Tx) -> dict[str, Any]:
        current = await runs.lock(tx, run_id)
        status = S(current["status"])
        await tx.emit_one(run_id, event)
        if status in (S.RUNNING, S.WAITING):
            # The row says whether the agent asked a question (``waiting``/``question``): then
            # the message is its answer; otherwise it waits in the run's durable queue.
            if not _asked(current):
                pending = [*current["pending_messages"], text]
                await runs.update_fields(tx, run_id, pending_messages=pending)
                current["pending_messages"] = pending
            return current
        reopen = status == S.COMPLETED and pull_request_open(current["pull_request"])
        if status in (S.REVIEW, S.FAILED, S.CANCELLED) or reopen:
            entry: str | dict[str, Any] = (
                text if source == "message" else {"text": text, "source": source}
            )
            if attached:
                entry = {"text": text, "source": source, "images": attached}
            return await runs.set_status(tx, run_id, S.QUEUED, source, pending_messages=[entry])
        raise InvalidTransition(
            f"Cannot message a run in status '{status}'.", current_status=str(status)
        )

    updated = await svc.writer.run(job)
    if S(updated["status"]) == S.QUEUED:
        await svc.executor.submit(run_id)
    elif not _asked(updated):
        await svc.executor.signal(run_id, Message(text=text))
    elif not await svc.executor.signal(run_id, Message(text=text, answer=True)):
        # The question was answered or abandoned meanwhile: keep the message for the agent.
        updated = await svc.writer.run(lambda tx: _queue_message(tx, run_id, text))
        await svc.executor.signal(run_id, Message(text=text))
    return runs.public(updated)


def _asked(run: dict[str, Any]) -> bool:
    """The run's agent waits for an operator's answer to its question (durable, on the row)."""
    return S(run["status"]) == S.WAITING and run.get("status_reason") == "question"


async def _queue_message(tx: Tx, run_id: str, text: str) -> dict[str, Any]:
    current = await runs.lock(tx, run_id)
    pending = [*current["pending_messages"], text]
    await runs.update_fields(tx, run_id, pending_messages=pending)
    current["pending_messages"] = pending
    return current


async def delete(svc: Services, ref: str) -> None:
    run = await get(svc, ref)
    check_action("delete", S(run["status"]))
    await remove_run_worktrees(svc.engine, run, sandbox=await sandbox_service.current(svc))
    await delete_run_refs(svc.engine, run)
    await svc.writer.run(lambda tx: runs.remove(tx, run["id"]))
    (svc.settings.logs_root / f"{run['id']}.log").unlink(missing_ok=True)


async def set_archived(svc: Services, ref: str, archived: bool) -> dict[str, Any]:
    run = await get(svc, ref)

    async def job(tx: Tx) -> dict[str, Any]:
        await runs.update_fields(tx, run["id"], archived=archived)
        return await runs.lock(tx, run["id"])

    return runs.public(await svc.writer.run(job))


async def follow_up(
    svc: Services, ref: str, body: dict[str, Any], principal: Principal
) -> dict[str, Any]:
    """A new run that starts from this run's branch, in the same workspace and under the same
    policy sets (a follow-up continues the work; it is not a way out of its governance)."""
    parent = await get(svc, ref)
    if not parent["branch"]:
        raise InvalidTransition(
            "This run has no branch yet (it never started); start it or use retry.",
            current_status=parent["status"],
        )
    new_body = {
        "prompt": body.get("prompt"),
        "project_id": parent["project_id"],
        "repo_ids": parent["repo_ids"],
        "source_ref": parent["branch"],
        "agent_id": body.get("agent_id") or (None if body.get("provider") else parent["agent_id"]),
        "provider": body.get("provider") or (None if body.get("agent_id") else parent["provider"]),
        "model": body.get("model") or parent["model"],
        "agent_options": body.get("agent_options", parent["agent_options"]),
        "policy_set_ids": list(parent["policy_set_ids"] or []),
        "workspace_id": await workspace_service.kept(svc, parent["workspace_id"]),
    }
    return await create(svc, new_body, principal, parent_run_id=parent["id"])


async def retry(svc: Services, ref: str, principal: Principal) -> dict[str, Any]:
    """A new run with the same prompt, agent, policy sets, workspace and source commits."""
    run = await get(svc, ref)
    body = {
        "prompt": run["prompt"],
        "title": run["title"],
        "project_id": run["project_id"],
        "repo_ids": run["repo_ids"],
        "agent_id": run["agent_id"],
        "provider": run["provider"],
        "model": run["model"],
        "agent_options": run["agent_options"],
        "source_ref": next(iter(run["base_commits"].values()))
        if len(run["base_commits"]) == 1
        else run["source_ref"],
        "budget_usd": run["budget_usd"],
        "labels": run["labels"],
        "policy_set_ids": list(run["policy_set_ids"] or []),
        "workspace_id": await workspace_service.kept(svc, run["workspace_id"]),
    }
    return await create(svc, body, principal, parent_run_id=run["id"])
