"""One decision path for every tool call: policies, asks that wait durably, trust, expiry.

Uses the `script` provider, whose tool steps go through exactly the path real agents use.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import anyio
import pytest

from codeyard.config import Settings
from codeyard.store import runs
from codeyard.store import settings as settings_store
from tests.conftest import TOKEN, Api, open_api

pytestmark = pytest.mark.anyio


async def start(
    api: Api, repo: Path, *steps: dict[str, Any], mode: str = "default", **extra: Any
) -> dict[str, Any]:
    body = {
        "prompt": "Work",
        "repo_path": str(repo),
        "provider": "script",
        "agent_options": {"scenario": {"steps": list(steps)}, "permission_mode": mode},
        **extra,
    }
    resp = await api.post("/api/runs", json=body)
    assert resp.status_code == 201, resp.text
    return resp.json()


async def pending(api: Api, run_id: str, count: int = 1) -> list[dict[str, Any]]:
    with anyio.fail_after(20):
        while True:
            rows = (await api.get(f"/api/approvals?status=pending&run_id={run_id}")).json()["data"]
            if len(rows) >= count:
                return rows
            await anyio.sleep(0.02)


async def results(api: Api, run_id: str) -> list[dict[str, Any]]:
    evs = (await api.get(f"/api/runs/{run_id}/events?types=tool.result&limit=500")).json()["data"]
    return [e["data"] for e in evs]


async def policy_set(api: Api, *rules: dict[str, Any], priority: int = 0) -> str:
    pol = await api.post(
        "/api/policies", json={"name": "p", "priority": priority, "rules": list(rules)}
    )
    assert pol.status_code == 201, pol.text
    pset = await api.post("/api/policy-sets", json={"name": "s", "policy_ids": [pol.json()["id"]]})
    return str(pset.json()["id"])


async def test_default_mode_asks_and_approve_lets_the_call_run(
    sqlite_api: Api, git_repo: Path
) -> None:
    api = sqlite_api
    run = await start(api, git_repo, {"bash": "echo hi > hi.txt"}, {"say": "done"})
    (approval,) = await pending(api, run["id"])
    waiting = (await api.get(f"/api/runs/{run['id']}")).json()
    assert waiting["status"] == "waiting" and waiting["status_reason"] == "approval"
    assert waiting["pending_approvals"] == 1
    assert approval["tool"] == "Bash" and approval["title"] == "echo hi > hi.txt"
    assert approval["rule"] == "mode:default" and approval["expires_at"] > approval["created_at"]
    requested = (await api.get(f"/api/runs/{run['id']}/events?types=approval.requested")).json()[
        "data"
    ]
    assert requested[0]["data"]["run_title"] == "Work"  # what a phone needs to show it
    order = (await api.get(f"/api/runs/{run['id']}/events?limit=500")).json()["data"]
    types = [e["type"] for e in order]
    assert (
        types.index("tool.call")
        < types.index("policy.decision")
        < types.index("approval.requested")
    )
    resp = await api.post(f"/api/approvals/{approval['id']}/resolve", json={"decision": "approved"})
    assert resp.status_code == 200 and resp.json()["status"] == "approved"
    done = await api.wait_status(run["id"], "review")
    assert done["pending_approvals"] == 0
    assert (await results(api, run["id"]))[0]["ok"] is True
    again = await api.post(
        f"/api/approvals/{approval['id']}/resolve", json={"decision": "rejected"}
    )
    assert again.status_code == 409 and again.json()["current_status"] == "approved"


async def test_reject_reaches_the_agent_as_a_denial_it_understands(
    sqlite_api: Api, git_repo: Path
) -> None:
    api = sqlite_api
    run = await start(
        api, git_repo, {"write": {"path": "x.txt", "content": "x"}}, {"say": "adapted"}
    )
    (approval,) = await pending(api, run["id"])
    await api.post(
        f"/api/approvals/{approval['id']}/resolve",
        json={"decision": "rejected", "reason": "not that file"},
    )
    await api.wait_status(run["id"], "review")
    (result,) = await results(api, run["id"])
    assert result["ok"] is False and "not that file" in result["error"]
    assert not list(Path(api.services.settings.worktree_root).rglob("x.txt"))


async def test_policies_allow_and_deny_before_the_mode_default(
    sqlite_api: Api, git_repo: Path
) -> None:
    api = sqlite_api
    set_id = await policy_set(
        api,
        {"tool": "Bash", "command": "^echo ", "action": "allow"},
        {"tool": "Bash", "command": "curl", "action": "deny", "reason": "no network"},
    )
    run = await start(
        api,
        git_repo,
        {"bash": "echo ok"},
        {"bash": "echo a && curl http://x"},
        policy_set_ids=[set_id],
    )
    await api.wait_status(run["id"], "review")
    first, second = await results(api, run["id"])
    assert first["ok"] is True
    assert second["ok"] is False and "no network" in second["error"]
    decisions = (await api.get(f"/api/policy-decisions?run_id={run['id']}")).json()["data"]
    assert [d["decision"] for d in reversed(decisions)] == ["allow", "deny"]
    assert decisions[0]["rule"].startswith("policy:")
    effective = (await api.get(f"/api/runs/{run['id']}/effective-policies")).json()
    assert [r["action"] for r in effective["rules"]] == ["allow", "deny"]


async def test_remember_for_the_run_skips_the_next_identical_ask(
    sqlite_api: Api, git_repo: Path
) -> None:
    api = sqlite_api
    run = await start(
        api, git_repo, {"bash": "echo same"}, {"bash": "echo same"}, {"bash": "echo other"}
    )
    (first,) = await pending(api, run["id"])
    await api.post(
        f"/api/approvals/{first['id']}/resolve", json={"decision": "approved", "remember": "run"}
    )
    rows = await pending(api, run["id"])  # only the different command asks
    assert [r["title"] for r in rows] == ["echo other"]
    await api.post(f"/api/approvals/{rows[0]['id']}/resolve", json={"decision": "approved"})
    await api.wait_status(run["id"], "review")
    all_rows = (await api.get(f"/api/runs/{run['id']}/approvals")).json()["data"]
    assert len(all_rows) == 2


async def test_trust_approves_pending_and_future_asks_but_not_gates(
    sqlite_api: Api, git_repo: Path, tmp_path: Path
) -> None:
    api = sqlite_api
    outside = tmp_path / "outside.txt"
    run = await start(
        api,
        git_repo,
        {"bash": "echo one"},
        {"bash": "echo two"},
        {"write": {"path": str(outside), "content": "x"}},
    )
    await pending(api, run["id"])
    trusted = await api.post(f"/api/runs/{run['id']}/trust")
    assert trusted.status_code == 200
    (gate,) = await pending(api, run["id"])  # the write outside the worktree still asks
    assert gate["rule"].startswith("gate:") and gate["title"].endswith("outside.txt")
    await api.post(f"/api/approvals/{gate['id']}/resolve", json={"decision": "rejected"})
    await api.wait_status(run["id"], "review")
    oks = [r["ok"] for r in await results(api, run["id"])]
    assert oks == [True, True, False] and not outside.exists()
    decided = {
        r["decided_by"] for r in (await api.get(f"/api/runs/{run['id']}/approvals")).json()["data"]
    }
    assert "trust" in decided


async def test_expiry_interrupts_and_resume_asks_again(sqlite_api: Api, git_repo: Path) -> None:
    api = sqlite_api
    resp = await api.request("PUT", "/api/settings", json={"approval_timeout_hours": 0.0003})
    assert resp.status_code == 200, resp.text
    run = await start(api, git_repo, {"bash": "echo late"})
    (approval,) = await pending(api, run["id"])
    stopped = await api.wait_status(run["id"], "interrupted", timeout=20)
    assert "expired" in stopped["status_reason"]
    row = (await api.get(f"/api/runs/{run['id']}/approvals")).json()["data"][0]
    assert row["id"] == approval["id"] and row["status"] == "expired"
    await api.request("PUT", "/api/settings", json={"approval_timeout_hours": 10})
    await api.post(f"/api/runs/{run['id']}/resume", json={})
    rows = await pending(api, run["id"])
    assert rows[0]["id"] != approval["id"] and rows[0]["title"] == "echo late"
    await api.post(f"/api/approvals/{rows[0]['id']}/resolve", json={"decision": "approved"})
    await api.wait_status(run["id"], "review")


@pytest.mark.postgres
@pytest.mark.slow
async def test_pending_approval_across_a_restart(
    tmp_path: Path, git_repo: Path, database_url: str
) -> None:
    """The contract: pending approvals survive a restart; an answer given while the run is
    interrupted is used by the resumed agent's identical call, which is not asked again."""
    settings = Settings(data_dir=tmp_path / "data", admin_token=TOKEN, database_url=database_url)
    async for api in open_api(settings):
        run = await start(api, git_repo, {"bash": "echo after-restart"})
        (approval,) = await pending(api, run["id"])
    async for api in open_api(settings):
        after = (await api.get(f"/api/runs/{run['id']}")).json()
        assert after["status"] == "interrupted" and after["pending_approvals"] == 1
        row = (await api.get(f"/api/runs/{run['id']}/approvals")).json()["data"][0]
        assert row["id"] == approval["id"] and row["status"] == "pending"
        answered = await api.post(
            f"/api/approvals/{approval['id']}/resolve", json={"decision": "approved"}
        )
        assert answered.status_code == 200, answered.text
        assert (await api.get(f"/api/runs/{run['id']}")).json()["pending_approvals"] == 0
        await api.post(f"/api/runs/{run['id']}/resume", json={})
        await api.wait_status(run["id"], "review")
        assert (await results(api, run["id"]))[-1]["ok"] is True
        rows = (await api.get(f"/api/runs/{run['id']}/approvals")).json()["data"]
        assert [r["id"] for r in rows] == [approval["id"]]  # never asked twice


@pytest.mark.slow
async def test_an_approval_still_pending_at_resume_is_the_one_the_agent_waits_on(
    tmp_path: Path, git_repo: Path
) -> None:
    settings = Settings(data_dir=tmp_path / "data", admin_token=TOKEN)
    async for api in open_api(settings):
        run = await start(api, git_repo, {"bash": "echo bound"})
        (approval,) = await pending(api, run["id"])
    async for api in open_api(settings):
        await api.post(f"/api/runs/{run['id']}/resume", json={})
        waiting = await api.wait_status(run["id"], "waiting")
        assert waiting["pending_approvals"] == 1
        (again,) = await pending(api, run["id"])
        assert again["id"] == approval["id"]  # bound, not asked anew
        resp = await api.post(
            f"/api/approvals/{approval['id']}/resolve", json={"decision": "approved"}
        )
        assert resp.status_code == 200, resp.text
        await api.wait_status(run["id"], "review")
        assert (await results(api, run["id"]))[-1]["ok"] is True
        rows = (await api.get(f"/api/runs/{run['id']}/approvals")).json()["data"]
        assert [r["id"] for r in rows] == [approval["id"]]


async def test_one_door_recounts_pending_approvals_and_refuses_status_on_the_side(
    sqlite_api: Api, git_repo: Path
) -> None:
    """The approvals door recomputes ``pending_approvals`` from the table (a drifted counter
    cannot keep a run waiting), checks the transition, and emits one ``approval.resolved``
    shape; run status never travels in free-form run values."""
    api = sqlite_api
    run = await start(api, git_repo, {"bash": "echo one"}, {"bash": "echo two"})
    (first,) = await pending(api, run["id"])
    with pytest.raises(ValueError, match="set_status"):
        await api.services.writer.append(run["id"], [], {"status": "running"})
    # A counter kept by hand would now say 6 after the answer, and the run would stay waiting.
    await api.services.writer.run(lambda tx: runs.update_fields(tx, run["id"], pending_approvals=7))
    resp = await api.post(f"/api/approvals/{first['id']}/resolve", json={"decision": "approved"})
    assert resp.status_code == 200, resp.text
    with anyio.fail_after(20):
        while not (rows := [a for a in await pending(api, run["id"]) if a["id"] != first["id"]]):
            await anyio.sleep(0.02)
    waiting = (await api.get(f"/api/runs/{run['id']}")).json()
    assert waiting["status"] == "waiting" and waiting["pending_approvals"] == 1
    resp = await api.post(f"/api/approvals/{rows[0]['id']}/resolve", json={"decision": "rejected"})
    assert resp.status_code == 200, resp.text
    again = await api.post(f"/api/approvals/{rows[0]['id']}/resolve", json={"decision": "approved"})
    assert again.status_code == 409 and again.json()["current_status"] == "rejected"
    done = await api.wait_status(run["id"], "review")
    assert done["pending_approvals"] == 0
    resolved = (await api.get(f"/api/runs/{run['id']}/events?types=approval.resolved")).json()
    shapes = {tuple(sorted(e["data"])) for e in resolved["data"]}
    assert shapes == {("approval_id", "decided_by", "decision", "reason", "remembered_policy_id")}


async def test_invalid_rule_is_422_naming_it(sqlite_api: Api) -> None:
    resp = await sqlite_api.post(
        "/api/policies",
        json={
            "name": "broken",
            "rules": [{"tool": "Bash", "action": "allow"}, {"command": "([", "action": "deny"}],
        },
    )
    body = resp.json()
    assert resp.status_code == 422 and "broken" in body["detail"]
    assert any(1 in e["loc"] for e in body["errors"])
    assert (await sqlite_api.get("/api/policies")).json()["data"] == []


async def test_run_budget_stops_at_the_next_tool_call_and_continues_when_raised(
    sqlite_api: Api, git_repo: Path
) -> None:
    api = sqlite_api
    run = await start(
        api,
        git_repo,
        {"usage": {"input_tokens": 1000, "output_tokens": 100, "cost_usd": 0.6}},
        {"bash": "echo first"},
        {"usage": {"input_tokens": 1000, "output_tokens": 100, "cost_usd": 0.6}},
        {"bash": "echo second"},
        mode="auto",
        budget_usd=1.0,
    )
    (stop,) = await pending(api, run["id"])
    waiting = (await api.get(f"/api/runs/{run['id']}")).json()
    assert waiting["status"] == "waiting" and waiting["status_reason"] == "budget"
    assert stop["kind"] == "budget" and stop["input"]["cap"] == "run"
    assert stop["input"]["spent_usd"] == pytest.approx(1.2) and "$1.00" in stop["title"]
    assert [r["output"].strip() for r in await results(api, run["id"])] == ["first"]
    await api.post(f"/api/approvals/{stop['id']}/resolve", json={"decision": "approved"})
    done = await api.wait_status(run["id"], "review")
    assert done["budget_usd"] == pytest.approx(2.2)
    assert [r["output"].strip() for r in await results(api, run["id"])] == ["first", "second"]


async def test_refusing_to_raise_a_daily_cap_interrupts_the_turn(
    sqlite_api: Api, git_repo: Path
) -> None:
    api = sqlite_api
    caps = {"budgets": {"daily_usd": 0.5, "monthly_usd": None}}
    assert (await api.request("PUT", "/api/settings", json=caps)).status_code == 200
    run = await start(
        api, git_repo, {"usage": {"cost_usd": 0.75}}, {"bash": "echo never"}, mode="auto"
    )
    (stop,) = await pending(api, run["id"])
    assert stop["input"]["cap"] == "daily"
    await api.post(f"/api/approvals/{stop['id']}/resolve", json={"decision": "rejected"})
    stopped = await api.wait_status(run["id"], "interrupted")
    assert "budget" in stopped["status_reason"] and await results(api, run["id"]) == []
    today = (await api.get("/api/usage?period=day")).json()
    assert today["total"]["cost_usd"] == pytest.approx(0.75) and today["cap_usd"] == 0.5
    assert today["projects"][run["project_id"]]["cost_usd"] == pytest.approx(0.75)
    month = (await api.get("/api/usage?period=month")).json()
    assert month["total"]["cost_usd"] >= today["total"]["cost_usd"]


async def test_agent_profile_mode_and_policy_sets_apply(sqlite_api: Api, git_repo: Path) -> None:
    """A profile's permission mode and policy sets apply (the tests' server default is auto)."""
    api = sqlite_api
    set_id = await policy_set(api, {"tool": "Write", "action": "allow"})
    scenario = {"steps": [{"write": {"path": "w.txt", "content": "w"}}, {"bash": "echo asks"}]}
    agent = (
        await api.post(
            "/api/agents",
            json={
                "name": "careful",
                "provider": "script",
                "permission_mode": "default",
                "policy_set_ids": [set_id],
                "provider_config": {"scenario": scenario},
            },
        )
    ).json()
    run = (
        await api.post(
            "/api/runs", json={"prompt": "p", "repo_path": str(git_repo), "agent_id": agent["id"]}
        )
    ).json()
    (asked,) = await pending(api, run["id"])
    assert asked["title"] == "echo asks" and asked["rule"] == "mode:default"
    await api.post(f"/api/approvals/{asked['id']}/resolve", json={"decision": "approved"})
    await api.wait_status(run["id"], "review")
    decisions = (await api.get(f"/api/policy-decisions?run_id={run['id']}")).json()["data"]
    assert [d["rule"].split(":")[0] for d in reversed(decisions)] == ["policy", "mode"]


async def test_a_gate_set_to_deny_denies_without_asking(sqlite_api: Api, git_repo: Path) -> None:
    api = sqlite_api
    bad = await api.request("PUT", "/api/settings", json={"gates": {"no-such-gate": "deny"}})
    assert bad.status_code == 422 and "no-such-gate" in str(bad.json()["errors"])
    null = await api.request("PUT", "/api/settings", json={"gates": None})  # was stored: 500s
    assert null.status_code == 422 and "may not be null" in null.text, null.text
    assert (await api.get("/api/settings")).json()["gates"] == {}
    # A null stored by an older server reads as the defaults instead of breaking every GET.
    await settings_store.save(api.services.writer, {"gates": None})
    assert (await api.get("/api/settings")).json()["gates"] == {}
    ok = await api.request("PUT", "/api/settings", json={"gates": {"git-reset-hard": "deny"}})
    assert ok.status_code == 200 and ok.json()["gates"] == {"git-reset-hard": "deny"}
    run = await start(api, git_repo, {"bash": "git reset --hard HEAD"}, mode="auto")
    await api.wait_status(run["id"], "review")
    (result,) = await results(api, run["id"])
    assert result["ok"] is False and "git reset --hard" in result["error"]
    decision = (await api.get(f"/api/policy-decisions?run_id={run['id']}")).json()["data"][0]
    assert decision["decision"] == "deny" and decision["rule"] == "gate:git-reset-hard"


async def test_an_answer_wakes_the_agent_waiting_here_as_it_commits(
    sqlite_api: Api, git_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The waiting agent is woken from the writer's task right after the answer commits
    (``Tx.after_commit``), not after the request's task is scheduled again to signal it."""
    api = sqlite_api
    executor = api.services.executor
    woken: list[tuple[str | None, bool]] = []
    signalled: list[str] = []
    deliver_now, signal = executor.deliver_now, executor.signal

    def deliver(run_id: str, sig: Any) -> bool:
        done = deliver_now(run_id, sig)
        task = asyncio.current_task()
        woken.append((task.get_name() if task else None, done))
        return done

    async def signal_spy(run_id: str, sig: Any) -> bool:
        signalled.append(sig.kind)
        return await signal(run_id, sig)

    monkeypatch.setattr(executor, "deliver_now", deliver)
    monkeypatch.setattr(executor, "signal", signal_spy)
    run = await start(api, git_repo, {"bash": "echo hi"}, {"say": "done"})
    (approval,) = await pending(api, run["id"])
    resp = await api.post(f"/api/approvals/{approval['id']}/resolve", json={"decision": "approved"})
    assert resp.status_code == 200, resp.text
    await api.wait_status(run["id"], "review")
    assert woken == [("codeyard-writer", True)]
    assert "approval_answer" not in signalled
    assert (await results(api, run["id"]))[0]["ok"] is True
