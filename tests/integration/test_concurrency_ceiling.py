"""``max_concurrent_runs`` may be stored up to the ceiling one host was measured to hold
(bench/runs_scale.py: 1,000 live runs), and not beyond."""

from __future__ import annotations

import pytest

from codeyard.config import MAX_CONCURRENT_RUNS
from tests.conftest import Api

pytestmark = pytest.mark.anyio


async def test_a_thousand_concurrent_runs_may_be_stored(sqlite_api: Api) -> None:
    resp = await sqlite_api.request("PUT", "/api/settings", json={"max_concurrent_runs": 1000})
    assert resp.status_code == 200, resp.text
    assert (await sqlite_api.get("/api/settings")).json()["max_concurrent_runs"] == 1000


async def test_beyond_the_ceiling_is_a_problem_naming_it(sqlite_api: Api) -> None:
    body = {"max_concurrent_runs": MAX_CONCURRENT_RUNS + 1}
    resp = await sqlite_api.request("PUT", "/api/settings", json=body)
    assert resp.status_code == 422, resp.text
    problem = resp.json()
    assert "max_concurrent_runs" in problem["detail"]
    assert str(MAX_CONCURRENT_RUNS) in resp.text
    assert (await sqlite_api.get("/api/settings")).json()["max_concurrent_runs"] == 4
