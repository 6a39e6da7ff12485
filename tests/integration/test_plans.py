"""Plans over the API against ``codeyard fake-llm`` (OpenAI-compatible, over loopback): a goal
becomes a proposal (a malformed first answer is retried with the reason), the draft is edited
under the same rules, and accepting creates every ticket with its blockers, or none."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from codeyard.testing.fake_llm import FakeLLM
from codeyard.testing.fake_llm.script import parse_replies
from codeyard.tickets import store as ticket_store
from tests.conftest import Api
from tests.integration.test_tickets import make_project, ticket
from tests.integration.test_utility_model import configure
from tests.support.auth import add_user, bearer, token_of

pytestmark = pytest.mark.anyio


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


def plan_answer(**extra: Any) -> dict[str, Any]:
    return {
        "title": "CSV export",
        "summary": "Export reports as CSV; the column order needs a decision.",
        "tickets": [
            {
                "ref": "t3",
                "title": "Add an export button",
                "kind": "feature",
                "blocked_by": ["t1", "t2"],
            },
            {
                "ref": "t1",
                "title": "Write the CSV encoder",
                "body": "With tests.",
                "priority": "high",
                "blocked_by_tickets": [1],
            },
            {"ref": "t2", "title": "Stream large reports", "kind": "task", "blocked_by": ["t1"]},
        ],
        **extra,
    }


async def propose(api: Api, fake: FakeLLM, *answers: dict[str, Any]) -> dict[str, Any]:
    fake.script(parse_replies([{"text": json.dumps(a)} for a in answers])[0])
    resp = await api.post("/api/projects/shop/plans", json={"goal": "Let users export CSV"})
    assert resp.status_code == 201, resp.text
    plan: dict[str, Any] = resp.json()
    return plan


async def test_a_goal_becomes_tickets_with_their_blockers(
    sqlite_api: Api, fake: FakeLLM, git_repo: Path
) -> None:
    api = sqlite_api
    await make_project(api, git_repo)
    await ticket(api, "shop", title="Reports page loads slowly")  # #1, open: shown to the model

    unconfigured = await api.post("/api/projects/shop/plans", json={"goal": "x"})
    assert unconfigured.status_code == 409 and "utility-model" in unconfigured.json()["detail"]

    await configure(api, fake)
    # The first answer names a blocker that is not in the plan: refused, asked once more.
    broken = plan_answer()
    broken["tickets"][0]["blocked_by"] = ["t9"]
    plan = await propose(api, fake, broken, plan_answer())
    assert plan["status"] == "draft" and plan["attempts"] == 2
    assert plan["input_tokens"] > 0 and plan["output_tokens"] > 0
    assert [t["ref"] for t in plan["tickets"]] == ["t3", "t1", "t2"]
    calls = fake.model_calls()
    assert len(calls) == 2
    first = json.dumps(calls[0].body)
    assert "Let users export CSV" in first and "#1 [inbox] Reports page loads slowly" in first
    assert "t9" in json.dumps(calls[1].body)  # the retry names what was wrong
    spent = (await api.get("/api/settings/utility-model")).json()["usage"]
    assert spent["calls"] == 2

    # Edits follow the same rules: a cycle is refused and nothing changes.
    edited = {**plan_answer(), "title": "CSV export, v2"}
    cyclic = json.loads(json.dumps(edited))
    cyclic["tickets"][1]["blocked_by"] = ["t2"]
    bad = await api.request("PUT", f"/api/projects/shop/plans/{plan['id']}", json=cyclic)
    assert bad.status_code == 422 and "cycle" in bad.text
    unknown = json.loads(json.dumps(edited))
    unknown["tickets"][1]["blocked_by_tickets"] = [42]
    bad = await api.request("PUT", f"/api/projects/shop/plans/{plan['id']}", json=unknown)
    assert bad.status_code == 422 and "#42" in bad.json()["detail"]
    assert (await api.get(f"/api/projects/shop/plans/{plan['id']}")).json()["title"] == "CSV export"
    ok = await api.request("PUT", f"/api/projects/shop/plans/{plan['id']}", json=edited)
    assert ok.status_code == 200 and ok.json()["title"] == "CSV export, v2"

    accepted = await api.post(f"/api/projects/shop/plans/{plan['id']}/accept")
    assert accepted.status_code == 200, accepted.text
    body = accepted.json()
    assert body["plan"]["status"] == "accepted"
    # Blockers first: t1 → #2, t2 → #3, t3 → #4.
    assert body["plan"]["ticket_numbers"] == {"t1": 2, "t2": 3, "t3": 4}
    made = {t["number"]: t for t in body["tickets"]}
    assert made[2]["blocked_by"] == [1] and made[2]["priority"] == "high"
    assert made[3]["blocked_by"] == [2] and made[4]["blocked_by"] == [2, 3]
    assert made[4]["kind"] == "feature" and all(t["status"] == "backlog" for t in made.values())
    listed = (await api.get("/api/projects/shop/tickets")).json()["data"]
    assert sorted(t["number"] for t in listed) == [1, 2, 3, 4]

    again = await api.post(f"/api/projects/shop/plans/{plan['id']}/accept")
    assert again.status_code == 409 and "#2" in again.json()["detail"]
    late = await api.request("PUT", f"/api/projects/shop/plans/{plan['id']}", json=edited)
    assert late.status_code == 409
    assert len((await api.get("/api/projects/shop/tickets")).json()["data"]) == 4

    plans = (await api.get("/api/projects/shop/plans")).json()["data"]
    assert [p["id"] for p in plans] == [plan["id"]]
    gone = await api.delete(f"/api/projects/shop/plans/{plan['id']}")
    assert gone.status_code == 204
    assert (await api.get(f"/api/projects/shop/plans/{plan['id']}")).status_code == 404
    assert len((await api.get("/api/projects/shop/tickets")).json()["data"]) == 4


async def test_twice_wrong_is_a_409_and_no_plan(
    sqlite_api: Api, fake: FakeLLM, git_repo: Path
) -> None:
    api = sqlite_api
    await make_project(api, git_repo)
    await configure(api, fake)
    invented = plan_answer()  # blocked by #1, which this project does not have
    fake.script(parse_replies([{"text": json.dumps(invented)}, {"text": "not json"}])[0])
    resp = await api.post("/api/projects/shop/plans", json={"goal": "Let users export CSV"})
    assert resp.status_code == 409 and "twice" in resp.json()["detail"]
    assert "#1" in json.dumps(fake.model_calls()[1].body)
    assert (await api.get("/api/projects/shop/plans")).json()["data"] == []


async def test_accepting_is_all_or_none(
    sqlite_api: Api, fake: FakeLLM, git_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = sqlite_api
    await make_project(api, git_repo)
    await ticket(api, "shop", title="Existing")
    await configure(api, fake)
    plan = await propose(api, fake, plan_answer())

    # A storage failure on the second insert cannot be provoked through SQLite here, so the
    # insert is replaced by one that fails the second time: the first ticket must roll back.
    real_insert = ticket_store.insert_ticket
    inserted: list[str] = []

    async def failing(tx: Any, values: dict[str, Any]) -> None:
        if inserted:
            raise RuntimeError("disk full")
        inserted.append(values["title"])
        await real_insert(tx, values)

    monkeypatch.setattr(ticket_store, "insert_ticket", failing)
    try:
        resp = await api.post(f"/api/projects/shop/plans/{plan['id']}/accept")
        assert resp.status_code == 500
    except RuntimeError:
        pass  # the transport re-raises the app's unhandled error
    monkeypatch.setattr(ticket_store, "insert_ticket", real_insert)
    assert inserted == ["Write the CSV encoder"]
    listed = (await api.get("/api/projects/shop/tickets")).json()["data"]
    assert [t["title"] for t in listed] == ["Existing"]
    assert (await api.get(f"/api/projects/shop/plans/{plan['id']}")).json()["status"] == "draft"

    retried = await api.post(f"/api/projects/shop/plans/{plan['id']}/accept")
    assert retried.status_code == 200
    assert len((await api.get("/api/projects/shop/tickets")).json()["data"]) == 4


async def test_only_project_managers_plan_and_readers_read(
    sqlite_api: Api, fake: FakeLLM, git_repo: Path
) -> None:
    api = sqlite_api
    await make_project(api, git_repo)
    await ticket(api, "shop", title="Existing")
    await configure(api, fake)
    plan = await propose(api, fake, plan_answer())
    await add_user(api, "mallory", "member")
    await add_user(api, "victor", "viewer")
    mallory = bearer(api, await token_of(api, "mallory", ["runs:read", "runs:write"]))
    victor = bearer(api, await token_of(api, "victor", ["runs:read"]))
    async with mallory, victor:
        url = f"/api/projects/shop/plans/{plan['id']}"
        assert (await victor.get(url)).status_code == 200
        assert (await victor.post(f"{url}/accept")).status_code == 403
        denied = await mallory.post(f"{url}/accept")
        assert denied.status_code == 403 and "member_ids" in denied.json()["detail"]
        assert (
            await mallory.post("/api/projects/shop/plans", json={"goal": "x"})
        ).status_code == 403
        assert (await mallory.delete(url)).status_code == 403
    assert len(fake.model_calls()) == 1  # refused before the model was asked
    assert (await api.get(url)).json()["status"] == "draft"
