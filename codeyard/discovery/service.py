"""Discovery use cases: start a conversation (a read-only run), follow up, read the actions
the agent proposed, accept or reject each one.

Starting, following up and deciding are for the project's owner, members and admins (a
follow-up also only by the run's creator or an admin, as for any run); reading follows
tickets. An accepted ``create_ticket`` becomes the ticket in the same transaction that marks
it accepted; an accepted ``start_run`` is claimed first, so two clicks cannot start two runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from codeyard.auth.principal import Principal
from codeyard.discovery import domain
from codeyard.discovery import store as ds
from codeyard.domain import fold
from codeyard.domain.errors import Conflict, Forbidden, NotFound
from codeyard.domain.events import utc_now
from codeyard.domain.ids import new_id
from codeyard.domain.status import ACTIVE, RunStatus
from codeyard.services import runs as run_service
from codeyard.services.context import Services
from codeyard.store import events
from codeyard.store.writer import Tx
from codeyard.tickets import service as tickets
from codeyard.tickets import store as ts

PROMPT = (Path(__file__).parent / "prompt.md").read_text(encoding="utf-8")
#: Run options a caller may choose for the discovery agent (never its permission mode).
AGENT_FIELDS = ("agent_id", "provider", "model", "budget_usd")


def _view(row: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    return {**row, "run_status": run["status"], "run_number": run["number"]}


async def start(
    svc: Services, principal: Principal, project_ref: str, body: dict[str, Any]
) -> dict[str, Any]:
    """A read-only run (``safe_mode``) of the project's repositories answering ``question``."""
    project = await tickets.managed_project(svc, principal, project_ref, "explore it")
    question = str(body["question"]).strip()
    run_body: dict[str, Any] = {k: body[k] for k in AGENT_FIELDS if body.get(k) is not None}
    run_body |= {
        "prompt": f"{PROMPT}\n{question}",
        "title": f"Discover: {question}"[:300],
        "project_id": project["id"],
        "labels": ["discovery"],
        "safe_mode": True,
    }
    if body.get("agent_options"):
        options = dict(body["agent_options"])
        options.pop("permission_mode", None)  # read-only is the point; never widened
        run_body["agent_options"] = options
    run = await run_service.create(svc, run_body, principal)
    now = utc_now()
    values = {
        "id": new_id("disc"),
        "project_id": project["id"],
        "run_id": run["id"],
        "question": question,
        "actions": [],
        "read_turn": 0,
        "actions_error": None,
        "created_by": principal.user_id,
        "created_at": now,
        "updated_at": now,
    }
    await svc.writer.run(lambda tx: ds.insert(tx, values))
    return _view(values, run)


async def _final_answer(svc: Services, run_id: str) -> str | None:
    async with svc.engine.connect() as conn:
        msgs = await events.read_all(conn, run_id, frozenset({"agent.message"}))
    final: str | None = fold.summary([e.to_dict() for e in msgs])["final_message"]
    return final


async def _read(
    svc: Services, project: dict[str, Any], conversation_id: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The conversation with the actions of its run's newest finished turn read in (once per
    turn: actions still ``proposed`` are replaced, decided ones stay)."""
    async with svc.engine.connect() as conn:
        row = await ds.get_conversation(conn, project, conversation_id)
    run = await run_service.get(svc, row["run_id"])
    if run["turns"] <= row["read_turn"] or RunStatus(run["status"]) in ACTIVE:
        return row, run
    actions, error = domain.read_actions(await _final_answer(svc, run["id"]))

    async def job(tx: Tx) -> dict[str, Any]:
        fresh = await ds.get_conversation(tx.conn, project, conversation_id)
        if fresh["read_turn"] >= run["turns"]:
            return fresh  # another request read this turn first
        kept = [a for a in fresh["actions"] if a["state"] != domain.PROPOSED]
        new = [
            {"id": new_id("act"), **a.model_dump(), "state": domain.PROPOSED}
            | {"ticket_number": None, "run_id": None}
            for a in actions
        ]
        changes = {"actions": kept + new, "read_turn": run["turns"], "actions_error": error}
        await ds.update_conversation(tx, conversation_id, changes)
        return {**fresh, **changes}

    return await svc.writer.run(job), run


async def get(svc: Services, project_ref: str, conversation_id: str) -> dict[str, Any]:
    project = await tickets.project_of(svc, project_ref)
    return _view(*await _read(svc, project, conversation_id))


async def list_page(
    svc: Services, project_ref: str, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Rows as stored (actions read in by ``get`` and the action routes)."""
    project = await tickets.project_of(svc, project_ref)
    async with svc.engine.connect() as conn:
        rows, next_cursor = await ds.list_conversations(conn, project["id"], limit, cursor)
    out = []
    for row in rows:
        run = await run_service.get(svc, row["run_id"])
        out.append(_view(row, run))
    return out, next_cursor


async def message(
    svc: Services, principal: Principal, project_ref: str, conversation_id: str, text: str
) -> dict[str, Any]:
    """A follow-up question: the read-only run's next turn (or its answer, if it asked)."""
    project = await tickets.managed_project(svc, principal, project_ref, "explore it")
    row, run = await _read(svc, project, conversation_id)
    if not principal.owns(run["created_by"]):
        raise Forbidden(
            "This conversation's run belongs to another user; only its creator or an admin "
            "may continue it. Start your own with POST …/discover/conversations."
        )
    run = await run_service.message(svc, run["id"], text)
    return _view(row, run)


def _find(row: dict[str, Any], action_id: str) -> dict[str, Any]:
    for action in row["actions"]:
        if action["id"] == action_id:
            return dict(action)
    raise NotFound(
        f"No action '{action_id}' in conversation '{row['id']}'; its actions are listed by "
        f"GET …/discover/conversations/{row['id']}."
    )


async def _set_action(
    tx: Tx, project: dict[str, Any], conversation_id: str, action_id: str, changes: dict[str, Any]
) -> dict[str, Any]:
    """Change one action if it is still proposed (409 naming its state otherwise)."""
    row = await ds.get_conversation(tx.conn, project, conversation_id)
    action = _find(row, action_id)
    if action["state"] != domain.PROPOSED:
        raise Conflict(
            f"Action '{action_id}' was {action['state']} already.", current_state=action["state"]
        )
    action |= changes
    actions = [action if a["id"] == action_id else a for a in row["actions"]]
    await ds.update_conversation(tx, conversation_id, {"actions": actions})
    return {**row, "actions": actions}


async def decide(
    svc: Services,
    principal: Principal,
    project_ref: str,
    conversation_id: str,
    action_id: str,
    accept: bool,
    run_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Accept (carry out) or reject one proposed action; 409 once decided. ``run_options``
    (agent, provider, model, options, budget) are for the run an accepted ``start_run``
    starts."""
    project = await tickets.managed_project(svc, principal, project_ref, "act on its discoveries")
    row, run = await _read(svc, project, conversation_id)
    action = _find(row, action_id)
    if not accept:
        changes = {"state": domain.REJECTED}
        row = await svc.writer.run(
            lambda tx: _set_action(tx, project, conversation_id, action_id, changes)
        )
        return _view(row, run)
    if action["type"] == "create_ticket":

        async def make_ticket(tx: Tx) -> dict[str, Any]:
            ticket = tickets.new_row(project["id"], principal.user_id, action)
            ticket["number"] = await ts.next_number(tx, project["id"])
            changes = {"state": domain.ACCEPTED, "ticket_number": ticket["number"]}
            updated = await _set_action(tx, project, conversation_id, action_id, changes)
            await ts.insert_ticket(tx, ticket)
            return updated

        return _view(await svc.writer.run(make_ticket), run)
    claimed = {"state": domain.ACCEPTED}
    await svc.writer.run(lambda tx: _set_action(tx, project, conversation_id, action_id, claimed))
    body = {
        **(run_options or {}),
        "prompt": action["prompt"],
        "title": action.get("title") or None,
        "project_id": project["id"],
        "labels": [f"discovery:{conversation_id}"],
    }
    try:
        started = await run_service.create(svc, {k: v for k, v in body.items() if v}, principal)
    except Exception:
        await svc.writer.run(lambda tx: _release(tx, project, conversation_id, action_id))
        raise
    done = {"run_id": started["id"]}

    async def link(tx: Tx) -> dict[str, Any]:
        fresh = await ds.get_conversation(tx.conn, project, conversation_id)
        actions = [a | done if a["id"] == action_id else a for a in fresh["actions"]]
        await ds.update_conversation(tx, conversation_id, {"actions": actions})
        return {**fresh, "actions": actions}

    return _view(await svc.writer.run(link), run)


async def _release(tx: Tx, project: dict[str, Any], conversation_id: str, action_id: str) -> None:
    """Undo a claim whose run could not be created: the action is proposed again."""
    row = await ds.get_conversation(tx.conn, project, conversation_id)
    actions = [
        a | {"state": domain.PROPOSED} if a["id"] == action_id else a for a in row["actions"]
    ]
    await ds.update_conversation(tx, conversation_id, {"actions": actions})


async def delete(
    svc: Services, principal: Principal, project_ref: str, conversation_id: str
) -> None:
    """Forget the conversation; its run, and tickets and runs it led to, stay."""
    project = await tickets.managed_project(svc, principal, project_ref, "delete its discoveries")

    async def job(tx: Tx) -> None:
        await ds.get_conversation(tx.conn, project, conversation_id)
        await ds.delete(tx, conversation_id)

    await svc.writer.run(job)
