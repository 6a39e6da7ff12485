"""Tickets and comments over the API: numbering, moves, links, search, roles and ownership."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api
from tests.support.auth import add_user, bearer, token_of

pytestmark = pytest.mark.anyio


async def make_project(api: Api, repo: Path, slug: str = "shop") -> dict[str, Any]:
    body = {"name": "Shop", "slug": slug, "repos": [{"path": str(repo)}]}
    resp = await api.post("/api/projects", json=body)
    assert resp.status_code == 201, resp.text
    project: dict[str, Any] = resp.json()
    return project


async def ticket(api: Api, slug: str, **body: Any) -> dict[str, Any]:
    resp = await api.post(f"/api/projects/{slug}/tickets", json=body)
    assert resp.status_code == 201, resp.text
    created: dict[str, Any] = resp.json()
    return created


async def test_tickets_are_numbered_moved_linked_and_listed(
    sqlite_api: Api, git_repo: Path
) -> None:
    api = sqlite_api
    await make_project(api, git_repo)
    first = await ticket(api, "shop", title="Cart total is wrong", kind="bug", priority="high")
    second = await ticket(api, "shop", title="Add coupons", blocked_by=[1], labels=["money"])
    assert (first["number"], second["number"]) == (1, 2)
    assert first["status"] == "inbox" and second["blocked_by"] == [1]

    # A blocker that does not exist, and a cycle, are refused with the fix named.
    bad = await api.post("/api/projects/shop/tickets", json={"title": "x", "blocked_by": [9]})
    assert bad.status_code == 422 and "#9" in bad.json()["detail"]
    cycle = await api.request("PATCH", "/api/projects/shop/tickets/1", json={"blocked_by": [2]})
    assert cycle.status_code == 422 and "wait for itself" in cycle.json()["detail"]
    assert (await api.get("/api/projects/shop/tickets/1")).json()["blocked_by"] == []

    # An explicit null for a field that always has a value is refused (it was a 500 for status),
    # while `parent: null` still detaches.
    for field in ("status", "kind", "priority", "title", "body"):
        null = await api.request("PATCH", "/api/projects/shop/tickets/2", json={field: None})
        assert null.status_code == 422, (field, null.text)
        assert "leave the field out" in null.text, null.text
    kept = await api.request("PATCH", "/api/projects/shop/tickets/2", json={"parent": None})
    assert kept.status_code == 200 and kept.json()["status"] == "inbox"

    moved = await api.request(
        "PATCH", "/api/projects/shop/tickets/1/status", json={"status": "done"}
    )
    assert moved.status_code == 200 and moved.json()["status"] == "done"
    back = await api.request(
        "PATCH", "/api/projects/shop/tickets/1/status", json={"status": "in_review"}
    )
    assert back.status_code == 409 and "backlog" in back.json()["detail"]

    done = await api.get("/api/projects/shop/tickets", params={"status": "done"})
    assert [t["number"] for t in done.json()["data"]] == [1]
    page1 = (await api.get("/api/projects/shop/tickets", params={"limit": 1})).json()
    assert [t["number"] for t in page1["data"]] == [2]
    page2 = await api.get(
        "/api/projects/shop/tickets", params={"limit": 1, "cursor": page1["next_cursor"]}
    )
    assert [t["number"] for t in page2.json()["data"]] == [1]
    assert page2.json()["next_cursor"] is None

    missing = await api.get("/api/projects/shop/tickets/7")
    assert (
        missing.status_code == 404 and "GET /api/projects/shop/tickets" in missing.json()["detail"]
    )


async def test_search_ranks_title_matches_first(api: Api, git_repo: Path) -> None:
    await make_project(api, git_repo)
    await ticket(api, "shop", title="Refactor logging", body="The checkout flow logs too much")
    await ticket(api, "shop", title="Checkout button misaligned", body="On phones")
    await ticket(api, "shop", title="Unrelated", body="nothing here")
    found = await api.get("/api/projects/shop/tickets/search", params={"q": "checkout"})
    assert found.status_code == 200, found.text
    hits = found.json()["data"]
    assert [h["number"] for h in hits] == [2, 1]
    assert hits[0]["score"] > hits[1]["score"]
    prefix = await api.get("/api/projects/shop/tickets/search", params={"q": "misalig phone"})
    assert [h["number"] for h in prefix.json()["data"]] == [2]
    # Query syntax is never interpreted: quotes and operators are just dropped.
    odd = await api.get("/api/projects/shop/tickets/search", params={"q": '"checkout*) ('})
    assert [h["number"] for h in odd.json()["data"]] == [2, 1]
    empty = await api.get("/api/projects/shop/tickets/search", params={"q": "?!"})
    assert empty.status_code == 422
    # Edits reach the index.
    await api.request("PATCH", "/api/projects/shop/tickets/3", json={"title": "Checkout copy"})
    again = await api.get("/api/projects/shop/tickets/search", params={"q": "checkout copy"})
    assert [h["number"] for h in again.json()["data"]] == [3]


async def test_comments_assignments_and_who_may_change(sqlite_api: Api, git_repo: Path) -> None:
    api = sqlite_api
    owner = await add_user(api, "olga", "member")
    await add_user(api, "victor", "viewer")
    await add_user(api, "mallory", "member")
    olga = bearer(api, await token_of(api, "olga", ["runs:read", "runs:write", "settings:write"]))
    victor = bearer(api, await token_of(api, "victor", ["runs:read"]))
    mallory = bearer(api, await token_of(api, "mallory", ["runs:read", "runs:write"]))
    async with olga, victor, mallory:
        body = {"name": "Olga's", "slug": "olgas", "repos": [{"path": str(git_repo)}]}
        assert (await olga.post("/api/projects", json=body)).status_code == 201
        made = await olga.post("/api/projects/olgas/tickets", json={"title": "Write docs"})
        assert made.status_code == 201 and made.json()["created_by"] == owner["id"]

        said = await olga.post(
            "/api/projects/olgas/tickets/1/comments",
            json={"body": "Ask @victor and @mallory, not `@code`."},
        )
        assert said.status_code == 201 and said.json()["mentions"] == ["victor", "mallory"]
        listed = await victor.get("/api/projects/olgas/tickets/1/comments")
        assert [c["body"] for c in listed.json()["data"]] == [said.json()["body"]]

        # A viewer cannot write; another member cannot change a project that is not shared.
        assert (
            await victor.post("/api/projects/olgas/tickets", json={"title": "x"})
        ).status_code == 403
        foreign = await mallory.request(
            "PATCH", "/api/projects/olgas/tickets/1/status", json={"status": "backlog"}
        )
        assert foreign.status_code == 403 and "member_ids" in foreign.json()["detail"]
        assert (await mallory.get("/api/projects/olgas/tickets/1")).json()["status"] == "inbox"

        agent = await api.post("/api/agents", json={"name": "bot", "provider": "script"})
        assigned = await olga.request(
            "PATCH",
            "/api/projects/olgas/tickets/1/assign",
            json={"user_id": owner["id"], "agent_id": agent.json()["id"]},
        )
        assert assigned.status_code == 200, assigned.text
        assert assigned.json()["assignee_agent_id"] == agent.json()["id"]
        unknown = await olga.request(
            "PATCH", "/api/projects/olgas/tickets/1/assign", json={"user_id": "usr_nobody"}
        )
        assert unknown.status_code == 422
