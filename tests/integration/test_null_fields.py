"""An explicit ``null`` for any field of a change body is a 2xx or a 4xx problem, never a 500.

schemathesis found ``PATCH …/tickets/{n}`` with ``{"status": null}`` answering 500 in CI; this
walks every field of every change body whose object a test can create, so the next one is
found here first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from codeyard.api.schemas import AgentUpdate, ProjectUpdate, RepoUpdate
from codeyard.api.ticket_models import QueueUpdate, TicketUpdate
from tests.conftest import Api

pytestmark = pytest.mark.anyio


async def _created(api: Api, path: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = await api.post(path, json=body)
    assert resp.status_code == 201, resp.text
    made: dict[str, Any] = resp.json()
    return made


async def _each_field_null(api: Api, path: str, model: type[BaseModel]) -> None:
    for field in model.model_fields:
        resp = await api.request("PATCH", path, json={field: None})
        assert resp.status_code < 500, (path, field, resp.text)
        if resp.status_code >= 400:
            assert resp.headers["content-type"].startswith("application/problem+json"), resp.text
            assert resp.json()["detail"], resp.text


async def test_null_in_any_change_body_is_never_a_server_error(
    sqlite_api: Api, git_repo: Path
) -> None:
    api = sqlite_api
    project = await _created(
        api, "/api/projects", {"name": "Shop", "slug": "shop", "repos": [{"path": str(git_repo)}]}
    )
    agent = await _created(api, "/api/agents", {"name": "helper", "provider": "script"})
    await _created(api, "/api/projects/shop/tickets", {"title": "One"})
    queue = await _created(api, "/api/projects/shop/discover/queues", {"name": "q", "tickets": [1]})

    await _each_field_null(api, "/api/projects/shop/tickets/1", TicketUpdate)
    await _each_field_null(api, f"/api/projects/shop/discover/queues/{queue['id']}", QueueUpdate)
    await _each_field_null(api, f"/api/repos/{project['repos'][0]['id']}", RepoUpdate)
    await _each_field_null(api, f"/api/agents/{agent['id']}", AgentUpdate)
    await _each_field_null(api, "/api/projects/shop", ProjectUpdate)

    named = await api.request(
        "PATCH", f"/api/projects/shop/discover/queues/{queue['id']}", json={"name": None}
    )
    assert named.status_code == 422 and "leave the field out" in named.text, named.text

    # Nothing was damaged on the way: every object still reads back whole.
    for path in (
        "/api/projects/shop",
        "/api/projects/shop/tickets/1",
        f"/api/agents/{agent['id']}",
        f"/api/projects/shop/discover/queues/{queue['id']}",
    ):
        assert (await api.get(path)).status_code == 200, path
