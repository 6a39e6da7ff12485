"""A work queue's budget and ETA, end to end with the script provider: a spent budget pauses
the queue before its next ticket with the reason, a raised one resumes it, each run it starts
gets the budget that is left, and the ETA comes from how long landed tickets took."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Api
from tests.integration.test_ticket_work import assign, profile, show, wait_for
from tests.integration.test_tickets import make_project, ticket

#: Two queues of scripted runs landing in git: > 20 s on a loaded machine.
pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def test_a_spent_budget_pauses_the_queue_and_a_raised_one_resumes_it(
    sqlite_api: Api, git_repo: Path
) -> None:
    api = sqlite_api
    await make_project(api, git_repo)
    costly = [{"write": {"path": "a.txt", "content": "one\n"}}, {"usage": {"cost_usd": 0.6}}]
    cheap = [{"write": {"path": "b.txt", "content": "two\n"}}, {"usage": {"cost_usd": 0.1}}]
    await ticket(api, "shop", title="First", kind="feature")
    await ticket(api, "shop", title="Second", kind="feature", blocked_by=[1])
    await assign(api, 1, await profile(api, "costly", *costly))
    await assign(api, 2, await profile(api, "cheap", *cheap))

    made = await api.post(
        "/api/projects/shop/discover/queues",
        json={"name": "capped", "tickets": [1, 2], "budget_usd": 0.5},
    )
    assert made.status_code == 201, made.text
    queue = made.json()
    assert queue["budget_usd"] == 0.5 and queue["spent_usd"] == 0
    assert queue["eta"] == {"remaining": 2, "seconds": None, "samples": 0}  # no history yet
    base = f"/api/projects/shop/discover/queues/{queue['id']}"

    await api.post(f"{base}/start")
    paused = await wait_for(api, base, "status", "paused", "done", timeout=60)
    assert paused["status"] == "paused", paused
    assert "budget of $0.5 is spent" in paused["paused_reason"]
    assert [i["state"] for i in paused["items"]] == ["done", "pending"]  # #1 landed, #2 waits
    assert paused["spent_usd"] == pytest.approx(0.6)
    first_run = (await api.get(f"/api/runs/{paused['items'][0]['run_id']}")).json()
    assert first_run["budget_usd"] == pytest.approx(0.5)  # the whole budget was left
    assert paused["eta"]["samples"] == 1 and paused["eta"]["remaining"] == 1
    assert paused["eta"]["seconds"] is not None and paused["eta"]["seconds"] >= 0

    raised = await api.request("PATCH", base, json={"budget_usd": 2.0})
    assert raised.status_code == 200 and raised.json()["budget_usd"] == 2.0
    await api.post(f"{base}/start")
    done = await wait_for(api, base, "status", "done", "paused", timeout=60)
    assert done["status"] == "done", done
    assert done["spent_usd"] == pytest.approx(0.7)
    assert done["eta"] == {"remaining": 0, "seconds": 0.0, "samples": 0}
    second_run = (await api.get(f"/api/runs/{done['items'][1]['run_id']}")).json()
    assert second_run["budget_usd"] == pytest.approx(1.4)  # 2.0 less the 0.6 spent
    assert show(git_repo, "main:b.txt") == "two\n"
