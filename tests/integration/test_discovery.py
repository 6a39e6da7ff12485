"""Discovery conversations over the API with the script agent: the run is read-only (its file
write is refused and never reaches the worktree, its permission mode cannot be widened), the
actions its answer proposes are read once per turn and carried out by one call each."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api
from tests.integration.test_tickets import make_project
from tests.support.auth import add_user, bearer, token_of

pytestmark = pytest.mark.anyio
BASE = "/api/projects/shop/discover/conversations"

ACTIONS = {
    "actions": [
        {
            "type": "create_ticket",
            "title": "Stream the CSV export",
            "body": "It builds the whole file in memory.",
            "kind": "bug",
            "priority": "high",
        },
        {"type": "start_run", "title": "Profile export", "prompt": "Profile the export"},
    ]
}
ANSWER = "The export is slow because it buffers.\n\n```json\n" + json.dumps(ACTIONS) + "\n```\n"


async def start(api: Api, git_repo: Path) -> dict[str, Any]:
    await make_project(api, git_repo)
    body = {
        "question": "Why is the export slow?",
        "provider": "script",
        "agent_options": {
            "permission_mode": "auto",  # dropped: a discovery is read-only
            "scenario": {
                "steps": [{"write": {"path": "hack.txt", "content": "x"}}, {"say": ANSWER}]
            },
        },
    }
    resp = await api.post(BASE, json=body)
    assert resp.status_code == 201, resp.text
    conversation: dict[str, Any] = resp.json()
    await api.wait_status(conversation["run_id"], "review", "failed")
    return conversation


async def test_a_read_only_run_proposes_actions_accepted_in_one_call(
    sqlite_api: Api, git_repo: Path
) -> None:
    api = sqlite_api
    conversation = await start(api, git_repo)
    assert conversation["actions"] == [] and conversation["read_turn"] == 0
    run = (await api.get(f"/api/runs/{conversation['run_id']}")).json()
    assert run["status"] == "review"
    events = (await api.get(f"/api/runs/{run['id']}/events")).text
    assert "plan mode does not change files" in events  # the write was refused by the policy
    worktree = Path(next(iter(run["worktrees"].values())))
    assert worktree.is_dir() and not (worktree / "hack.txt").exists()

    url = f"{BASE}/{conversation['id']}"
    got = (await api.get(url)).json()
    assert got["actions_error"] is None and got["read_turn"] == 1
    ticket_action, run_action = got["actions"]
    assert ticket_action["type"] == "create_ticket" and ticket_action["state"] == "proposed"
    assert run_action["prompt"] == "Profile the export"
    assert (await api.get(url)).json()["actions"] == got["actions"]  # read once per turn

    made = await api.post(f"{url}/actions/{ticket_action['id']}", json={"decision": "accept"})
    assert made.status_code == 200, made.text
    accepted = made.json()["actions"][0]
    assert accepted["state"] == "accepted" and accepted["ticket_number"] == 1
    ticket = (await api.get("/api/projects/shop/tickets/1")).json()
    assert (ticket["title"], ticket["kind"], ticket["priority"]) == (
        "Stream the CSV export",
        "bug",
        "high",
    )
    twice = await api.post(f"{url}/actions/{ticket_action['id']}", json={"decision": "accept"})
    assert twice.status_code == 409 and "accepted already" in twice.json()["detail"]
    assert len((await api.get("/api/projects/shop/tickets")).json()["data"]) == 1

    started = await api.post(
        f"{url}/actions/{run_action['id']}",
        json={
            "decision": "accept",
            "provider": "script",
            "agent_options": {"scenario": {"steps": [{"say": "profiled"}]}},
        },
    )
    assert started.status_code == 200, started.text
    new_run_id = started.json()["actions"][1]["run_id"]
    new_run = await api.wait_status(new_run_id, "review", "failed")
    assert new_run["prompt"] == "Profile the export"
    assert new_run["labels"] == [f"discovery:{conversation['id']}"]
    assert "profiled" in (await api.get(f"/api/runs/{new_run_id}/events")).text

    # A follow-up whose answer has no JSON block: decided actions stay, the reason is shown.
    follow = await api.post(f"{url}/messages", json={"text": "And the import?"})
    assert follow.status_code == 200, follow.text
    await api.wait_status(conversation["run_id"], "review", "failed")
    after = (await api.get(url)).json()
    assert after["read_turn"] == 2 and "no fenced JSON block" in after["actions_error"]
    assert [a["state"] for a in after["actions"]] == ["accepted", "accepted"]
    listed = (await api.get(BASE)).json()["data"]
    assert [c["id"] for c in listed] == [conversation["id"]]


async def test_malformed_actions_are_reported_and_roles_checked(
    sqlite_api: Api, git_repo: Path
) -> None:
    api = sqlite_api
    await make_project(api, git_repo)
    bad = {"actions": [{"type": "create_ticket", "title": "", "kind": "epic"}]}
    body = {
        "question": "What next?",
        "provider": "script",
        "agent_options": {
            "scenario": {"steps": [{"say": f"Ideas:\n```json\n{json.dumps(bad)}\n```"}]}
        },
    }
    conversation = (await api.post(BASE, json=body)).json()
    await api.wait_status(conversation["run_id"], "review", "failed")
    url = f"{BASE}/{conversation['id']}"
    got = (await api.get(url)).json()
    assert got["actions"] == [] and "do not fit" in got["actions_error"]
    assert "actions.0" in got["actions_error"]
    missing = await api.post(f"{url}/actions/act_nope", json={"decision": "reject"})
    assert missing.status_code == 404 and "GET" in missing.json()["detail"]

    await add_user(api, "mallory", "member")
    await add_user(api, "victor", "viewer")
    mallory = bearer(api, await token_of(api, "mallory", ["runs:read", "runs:write"]))
    victor = bearer(api, await token_of(api, "victor", ["runs:read"]))
    async with mallory, victor:
        assert (await victor.get(url)).status_code == 200
        assert (await victor.post(BASE, json={"question": "x"})).status_code == 403
        denied = await mallory.post(BASE, json={"question": "x", "provider": "script"})
        assert denied.status_code == 403 and "member_ids" in denied.json()["detail"]
        assert (await mallory.post(f"{url}/messages", json={"text": "hi"})).status_code == 403
        assert (await mallory.delete(url)).status_code == 403
    assert (await api.delete(url)).status_code == 204
    assert (await api.get(url)).status_code == 404
