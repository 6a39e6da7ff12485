"""Inputs that once answered 500 (found by schemathesis and around it); each now gets a 4xx."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Api

pytestmark = pytest.mark.anyio


async def test_non_ascii_digits_are_not_run_numbers(sqlite_api: Api) -> None:
    for ref in ("¹", "٣", "\uff11\uff12"):  # superscript, Arabic-Indic, full-width
        resp = await sqlite_api.get(f"/api/runs/{ref}")
        assert resp.status_code == 404, resp.text


async def test_event_ids_past_a_bigint_are_refused(sqlite_api: Api, git_repo: Path) -> None:
    run = await sqlite_api.post(
        "/api/runs",
        json={"prompt": "x", "repo_path": str(git_repo), "provider": "script", "draft": True},
    )
    assert run.status_code == 201, run.text
    huge = 10**30
    events = await sqlite_api.get(f"/api/runs/{run.json()['id']}/events?after={huge}")
    assert events.status_code == 422, events.text
    stream = await sqlite_api.get(f"/api/events/stream?after={huge}")
    assert stream.status_code == 422, stream.text
    at_limit = await sqlite_api.get(f"/api/runs/{run.json()['id']}/events?after={2**63 - 1}")
    assert at_limit.status_code == 200 and at_limit.json()["data"] == []
