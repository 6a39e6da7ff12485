"""Routes built for seed parity (issue 22): artifacts, run files, command detail with download
links, per-run policy, dry-run validation, safe mode, provider enable/disable, project pull and
project checkpoints, version. Real git, real SQLite, the ``script`` agent through the executor.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from codeyard.services import run_files
from tests.conftest import Api, make_repo

pytestmark = pytest.mark.anyio


async def run_script(
    api: Api, repo: Path, steps: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    body = {
        "prompt": "Work",
        "repo_path": str(repo),
        "provider": "script",
        "agent_options": {"scenario": {"steps": steps}, "permission_mode": "auto"},
        **extra,
    }
    resp = await api.post("/api/runs", json=body)
    assert resp.status_code == 201, resp.text
    return await api.wait_status(resp.json()["id"], "review", "failed")


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout.strip()


async def test_files_and_one_file_with_its_diff(sqlite_api: Api, git_repo: Path) -> None:
    run = await run_script(
        sqlite_api,
        git_repo,
        [
            {"write": {"path": "src/a.py", "content": "x = 1\n"}},
            {"edit": {"path": "README.md", "old": "# demo", "new": "# demo app"}},
        ],
    )
    assert run["status"] == "review", run
    listed = (await sqlite_api.get(f"/api/runs/{run['id']}/files")).json()
    by_path = {f["path"]: f for f in listed["data"]}
    assert set(by_path) == {"src/a.py", "README.md"}
    assert by_path["src/a.py"]["status"] == "added" and by_path["src/a.py"]["additions"] == 1
    assert "hunks" not in by_path["README.md"]
    one = (await sqlite_api.get(f"/api/runs/{run['id']}/files/src/a.py")).json()
    assert one["path"] == "src/a.py" and "+x = 1" in one["patch"] and one["hunks"]
    missing = await sqlite_api.get(f"/api/runs/{run['id']}/files/nope.txt")
    assert missing.status_code == 404 and "did not change" in missing.json()["detail"]


async def test_command_detail_and_signed_expiring_download(
    sqlite_api: Api, git_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = "\n".join(f"line {i}" for i in range(3000))
    (git_repo / "big.txt").write_text(lines + "\n")
    git(git_repo, "add", "big.txt")
    git(git_repo, "commit", "-qm", "big")
    run = await run_script(sqlite_api, git_repo, [{"bash": "cat big.txt; echo done"}])
    commands = (await sqlite_api.get(f"/api/runs/{run['id']}/commands")).json()["data"]
    (cmd,) = commands
    detail = (await sqlite_api.get(f"/api/runs/{run['id']}/commands/{cmd['call_id']}")).json()
    assert detail["command"] == "cat big.txt; echo done" and detail["exit_code"] == 0
    # The event log keeps the end of a long output, and says so.
    assert detail["output"].endswith("line 2999\ndone\n") and detail["output_truncated"]
    link = detail["downloads"]["output"]
    assert link.startswith("/api/command-output/")
    # The link needs no token…
    got = await sqlite_api.client.get(link, headers={"Authorization": ""})
    assert got.status_code == 200 and got.text == detail["output"]
    assert "attachment" in got.headers["content-disposition"]
    # …cannot be altered…
    token = link.rsplit("/", 1)[1]
    forged = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]
    bad = await sqlite_api.client.get(
        f"/api/command-output/{forged}", headers={"Authorization": ""}
    )
    assert bad.status_code == 403
    # …and expires.
    monkeypatch.setattr(run_files, "LINK_SECONDS", -1)
    stale = (await sqlite_api.get(f"/api/runs/{run['id']}/commands/{cmd['call_id']}")).json()
    expired = await sqlite_api.client.get(
        stale["downloads"]["output"], headers={"Authorization": ""}
    )
    assert expired.status_code == 403 and "expired" in expired.json()["detail"]
    unknown = await sqlite_api.get(f"/api/runs/{run['id']}/commands/nope")
    assert unknown.status_code == 404


async def test_artifacts_collected_registered_typed_and_tracked(
    sqlite_api: Api, git_repo: Path
) -> None:
    run = await run_script(
        sqlite_api,
        git_repo,
        [
            {"write": {"path": ".codeyard/artifacts/report.md", "content": "# Report\n"}},
            {"write": {"path": "out/data.json", "content": '{"a": 1}\n'}},
        ],
    )
    api = sqlite_api
    listed = (await api.get(f"/api/runs/{run['id']}/artifacts")).json()["data"]
    assert [(a["path"], a["content_type"], a["source"]) for a in listed] == [
        (".codeyard/artifacts/report.md", "text/markdown", "agent")
    ]
    made = await api.post(f"/api/runs/{run['id']}/artifacts", json={"path": "out/data.json"})
    assert made.status_code == 201, made.text
    art = made.json()
    assert art["content_type"] == "application/json" and art["size"] == 9
    outside = await api.post(f"/api/runs/{run['id']}/artifacts", json={"path": "../x"})
    assert outside.status_code == 400
    assert len((await api.get(f"/api/runs/{run['id']}/artifacts")).json()["data"]) == 2
    detail = (await api.get(f"/api/artifacts/{art['id']}")).json()
    assert detail["available"] and detail["changed"] is False
    content = await api.get(detail["content_url"])
    assert content.headers["content-type"].startswith("application/json")
    assert content.content == b'{"a": 1}\n'
    worktree = await _worktree(api, run["id"])
    (worktree / "out/data.json").write_text('{"a": 2}\n')
    assert (await api.get(f"/api/artifacts/{art['id']}")).json()["changed"] is True
    assert (await api.get("/api/artifacts/art_nope")).status_code == 404


async def _worktree(api: Api, run_id: str) -> Path:
    from codeyard.store import runs

    async with api.services.engine.connect() as conn:
        row = await runs.get(conn, run_id)
    return Path(next(iter(row["worktrees"].values())))


async def test_run_policy_get_put_applies_and_validates(sqlite_api: Api, git_repo: Path) -> None:
    api = sqlite_api
    created = await api.post(
        "/api/runs",
        json={"prompt": "p", "repo_path": str(git_repo), "provider": "script", "draft": True},
    )
    run_id = created.json()["id"]
    empty = (await api.get(f"/api/runs/{run_id}/policy")).json()
    assert empty == {"run_id": run_id, "policy_set_ids": [], "rules": [], "remembered": []}
    rules = [{"tool": "Bash", "command": "rm *", "action": "deny", "reason": "no deleting"}]
    put = await api.request("PUT", f"/api/runs/{run_id}/policy", json={"rules": rules})
    assert put.status_code == 200, put.text
    assert put.json()["rules"] == rules
    effective = (await api.get(f"/api/runs/{run_id}/effective-policies")).json()
    assert any(r.get("reason") == "no deleting" for r in effective["rules"]), effective
    bad = await api.request(
        "PUT", f"/api/runs/{run_id}/policy", json={"rules": [{"tool": "Bash", "action": "maybe"}]}
    )
    assert bad.status_code == 422
    unknown = await api.request("PUT", f"/api/runs/{run_id}/policy", json={"policy_set_ids": ["x"]})
    assert unknown.status_code == 422 and "Unknown policy sets" in unknown.json()["detail"]
    assert (await api.get(f"/api/runs/{run_id}/policy")).json()["rules"] == rules  # unchanged


async def test_validate_writes_nothing_and_names_the_problem(
    sqlite_api: Api, git_repo: Path
) -> None:
    api = sqlite_api
    body = {
        "prompt": "p",
        "repo_path": str(git_repo),
        "provider": "script",
        "agent_options": {"scenario": {"steps": []}},
    }
    ok = await api.post("/api/runs/validate", json=body)
    assert ok.status_code == 200, ok.text
    assert ok.json()["valid"] and ok.json()["registers_project"]
    assert ok.json()["base_commits"] and ok.json()["provider"] == "script"
    assert (await api.get("/api/runs")).json()["data"] == []
    assert (await api.get("/api/projects")).json()["data"] == []
    bad_ref = await api.post("/api/runs/validate", json={**body, "source_ref": "nope"})
    assert bad_ref.status_code == 400 and "source_ref 'nope'" in bad_ref.json()["detail"]
    bad_provider = await api.post("/api/runs/validate", json={**body, "provider": "nope"})
    assert bad_provider.status_code in (404, 422)


async def test_provider_disable_refuses_new_runs_until_enabled(
    sqlite_api: Api, git_repo: Path
) -> None:
    api = sqlite_api
    off = await api.request("PUT", "/api/settings/providers/script", json={"enabled": False})
    assert off.status_code == 200 and off.json()["enabled"] is False
    listed = {p["name"]: p for p in (await api.get("/api/settings/providers")).json()["data"]}
    assert listed["script"]["enabled"] is False and listed["claude-code"]["enabled"] is True
    body = {
        "prompt": "p",
        "repo_path": str(git_repo),
        "provider": "script",
        "agent_options": {"scenario": {"steps": []}},
    }
    refused = await api.post("/api/runs", json=body)
    assert refused.status_code == 409 and "PUT /api/settings/providers/script" in refused.text
    assert (await api.get("/api/runs")).json()["data"] == []
    on = await api.request("PUT", "/api/settings/providers/script", json={"enabled": True})
    assert on.json()["enabled"] is True
    assert (await api.post("/api/runs", json=body)).status_code == 201
    unknown = await api.request("PUT", "/api/settings/providers/nope", json={"enabled": True})
    assert unknown.status_code == 404


async def test_safe_mode_denies_writes_and_asks_before_commands(
    sqlite_api: Api, git_repo: Path
) -> None:
    api = sqlite_api
    body = {
        "prompt": "Look around",
        "repo_path": str(git_repo),
        "provider": "script",
        "safe_mode": True,
        "agent_options": {
            "permission_mode": "auto",  # safe mode wins over this
            "scenario": {"steps": [{"write": {"path": "x.txt", "content": "x"}}, {"bash": "ls"}]},
        },
    }
    created = await api.post("/api/runs", json=body)
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    waiting = await api.wait_status(run_id, "waiting")
    assert waiting["pending_approvals"] == 1  # the command waits for a person
    evs = (await api.get(f"/api/runs/{run_id}/events?types=policy.decision")).json()["data"]
    assert [e["data"]["decision"] for e in evs] == ["deny", "ask"]
    assert not (await _worktree(api, run_id) / "x.txt").exists()
    cancelled = await api.post(f"/api/runs/{run_id}/cancel")
    assert cancelled.status_code == 200


async def test_project_pull_fast_forwards_and_project_checkpoints(
    sqlite_api: Api, tmp_path: Path
) -> None:
    api = sqlite_api
    upstream = make_repo(tmp_path / "upstream")
    local = tmp_path / "local"
    subprocess.run(["git", "clone", "-q", str(upstream), str(local)], check=True)
    made = await api.post("/api/projects", json={"name": "demo", "repos": [{"path": str(local)}]})
    assert made.status_code == 201, made.text
    project = made.json()
    same = (await api.post(f"/api/projects/{project['id']}/pull")).json()
    assert [r["status"] for r in same["repos"]] == ["up_to_date"]
    (upstream / "NEW.md").write_text("new\n")
    git(upstream, "add", "NEW.md")
    git(upstream, "commit", "-qm", "new upstream commit")
    pulled = (await api.post(f"/api/projects/{project['id']}/pull")).json()
    (repo,) = pulled["repos"]
    assert repo["status"] == "updated" and repo["after"] == git(upstream, "rev-parse", "HEAD")
    assert (local / "NEW.md").read_text() == "new\n"  # the checked-out branch moved along

    run = await run_script(
        api, local, [{"write": {"path": "f.txt", "content": "f"}}], project_id=project["id"]
    )
    cps = (await api.get(f"/api/projects/{project['id']}/checkpoints")).json()["data"]
    assert cps and cps[0]["run_id"] == run["id"] and cps[0]["run_number"] == run["number"]


async def test_version(sqlite_api: Api) -> None:
    body = (await sqlite_api.get("/api/version")).json()
    assert body["version"] and body["database"] == "sqlite" and body["python"].startswith("3.")


async def test_policy_set_membership_and_settings_defaults(sqlite_api: Api) -> None:
    api = sqlite_api
    a = (await api.post("/api/policies", json={"name": "a", "rules": []})).json()["id"]
    b = (await api.post("/api/policies", json={"name": "b", "rules": []})).json()["id"]
    pset = (await api.post("/api/policy-sets", json={"name": "s", "policy_ids": [a]})).json()
    added = await api.post(f"/api/policy-sets/{pset['id']}/policies", json={"policy_id": b})
    assert added.status_code == 200 and added.json()["policy_ids"] == [a, b]
    again = await api.post(f"/api/policy-sets/{pset['id']}/policies", json={"policy_id": a})
    assert again.json()["policy_ids"] == [a, b]  # already a member: unchanged
    unknown = await api.post(f"/api/policy-sets/{pset['id']}/policies", json={"policy_id": "x"})
    assert unknown.status_code == 404
    removed = await api.delete(f"/api/policy-sets/{pset['id']}/policies/{a}")
    assert removed.status_code == 200 and removed.json()["policy_ids"] == [b]
    assert (await api.get(f"/api/policies/{a}")).status_code == 200  # the policy stays
    await api.request("PUT", "/api/settings", json={"approval_timeout_hours": 2})
    defaults = (await api.get("/api/settings/defaults")).json()
    assert defaults["approval_timeout_hours"] == 10.0 and defaults["sandbox"] == "on"


async def test_auth_sessions_lists_the_callers_sessions(sqlite_api: Api) -> None:
    from tests.support.auth import add_user, sign_in

    await add_user(sqlite_api, "ana", "member")
    async with sign_in(sqlite_api, "ana") as first, sign_in(sqlite_api, "ana") as second:
        listed = (await second.get("/api/auth/sessions")).json()["data"]
        assert len(listed) == 2 and [s["current"] for s in listed].count(True) == 1
        assert not {"secret_hash", "csrf_hash"} & set(listed[0])
        assert (await second.delete("/api/auth/sessions")).status_code == 204  # revoke all
        assert (await first.get("/api/auth/sessions")).status_code == 401
        assert (await second.get("/api/auth/sessions")).status_code == 401
    admin = (await sqlite_api.get("/api/auth/sessions")).json()["data"]
    assert admin == []  # the admin token has no sessions; ana's are not listed


async def test_project_clone_again_restores_a_lost_clone(sqlite_api: Api, tmp_path: Path) -> None:
    import shutil

    from tests.support.git_http import git_http_server

    api = sqlite_api
    upstream = make_repo(tmp_path / "upstream", {"lib.py": "x = 1\n"})
    local = make_repo(tmp_path / "local")
    with git_http_server(tmp_path / "served") as remote:
        url = remote.publish(upstream, "lib")
        made = await api.post(
            "/api/projects",
            json={"name": "c", "repos": [{"url": url, "name": "lib"}, {"path": str(local)}]},
        )
        assert made.status_code == 201, made.text
        project = made.json()
        cloned = Path(project["repos"][0]["path"])
        present = (await api.post(f"/api/projects/{project['id']}/clone")).json()["repos"]
        assert [r["status"] for r in present] == ["present", "skipped"]
        shutil.rmtree(cloned)
        again = (await api.post(f"/api/projects/{project['id']}/clone")).json()["repos"]
        assert [r["status"] for r in again] == ["cloned", "skipped"]
    assert (cloned / "lib.py").read_text() == "x = 1\n"
