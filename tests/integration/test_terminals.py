"""Terminals over HTTP (ASGI): a real PTY in the run's worktree, driven by text, keys and the
screen model; ownership; close. The WebSocket and restart behaviour are in
``test_terminals_live.py`` against a real server process."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from codeyard.config import Settings
from codeyard.preview import leases
from tests.conftest import TOKEN, Api, make_repo, open_api
from tests.support.auth import add_user, bearer, token_of
from tests.support.waits import eventually

pytestmark = pytest.mark.anyio
BASH = ["bash", "--norc", "--noprofile", "-i"]


async def ready_run(api: Api, repo: Path, client: Any = None) -> dict[str, Any]:
    body = {
        "prompt": "Make a file",
        "repo_path": str(repo),
        "provider": "script",
        "agent_options": {"scenario": {"steps": [{"write": {"path": "made.txt", "content": "x"}}]}},
    }
    resp = await (client or api.client).post("/api/runs", json=body)
    assert resp.status_code == 201, resp.text
    done = await api.wait_status(resp.json()["id"], "review", "failed")
    assert done["status"] == "review", done["status_reason"]
    return done


async def screen_until(api: Api, term_id: str, needle: str, timeout: float = 30) -> list[str]:
    lines: list[str] = []
    for _ in range(int(timeout / 0.05)):
        resp = await api.get(f"/api/terminals/{term_id}/output")
        assert resp.status_code == 200, resp.text
        lines = resp.json()["lines"]
        if any(line.startswith(needle) for line in lines):
            return lines
        await asyncio.sleep(0.05)
    raise AssertionError(f"{needle!r} never appeared on the screen: {lines}")


async def _until_not_live(api: Api, term_id: str) -> dict[str, Any]:
    """The terminal once it is no longer live (30 s at most)."""
    body: dict[str, Any] = {}

    async def ended() -> bool:
        nonlocal body
        body = (await api.get(f"/api/terminals/{term_id}")).json()
        return bool(body["status"] != "live")

    await eventually(ended, timeout=30)
    return body


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "site", {"README.md": "# site\n", "app.py": "x = 1\n"})


async def test_a_run_terminal_is_a_shell_in_its_worktree_with_its_ports(
    sqlite_api: Api, repo: Path
) -> None:
    api = sqlite_api
    run = await ready_run(api, repo)
    resp = await api.post(
        "/api/terminals",
        json={"run_id": str(run["number"]), "cols": 100, "rows": 30, "command": BASH},
    )
    assert resp.status_code == 201, resp.text
    term = resp.json()
    assert term["status"] == "live" and term["run_id"] == run["id"]
    assert Path(term["cwd"]).parent.parent.parent.name == "worktrees"
    assert (Path(term["cwd"]) / "made.txt").is_file()

    await api.post(
        f"/api/terminals/{term['id']}/text", json={"text": "ls; echo PORTS=$PORT/$CODEYARD_PORT_9"}
    )
    await api.post(f"/api/terminals/{term['id']}/keys", json={"keys": ["enter"]})
    lines = await screen_until(api, term["id"], "PORTS=")
    shown = "\n".join(lines)
    assert "README.md" in shown and "made.txt" in shown  # the run's worktree, with its change
    ports = next(line for line in lines if line.startswith("PORTS="))[len("PORTS=") :]
    first, last = (int(p) for p in ports.split("/"))
    assert last == first + 9 and first >= 1024

    # Inside the run's sandbox: the data directory (the database, keys) is not there.
    data_dir = api.services.settings.data_dir
    probe = f"test -e {data_dir}/codeyard.db && echo DB=VISIBLE || echo DB=HIDDEN\r"
    await api.post(f"/api/terminals/{term['id']}/text", json={"text": probe})
    lines = await screen_until(api, term["id"], "DB=")
    assert "DB=HIDDEN" in lines and (data_dir / "codeyard.db").exists()

    listed = (await api.get(f"/api/runs/{run['number']}/terminals")).json()["data"]
    assert [t["id"] for t in listed] == [term["id"]]

    # ctrl+c interrupts the foreground program (the PTY is its controlling terminal)
    await api.post(f"/api/terminals/{term['id']}/text", json={"text": "sleep 30; echo AFTER\r"})
    await asyncio.sleep(0.3)
    await api.post(f"/api/terminals/{term['id']}/keys", json={"keys": ["ctrl+c"]})
    await api.post(f"/api/terminals/{term['id']}/text", json={"text": "echo INTERRUPTED\r"})
    lines = await screen_until(api, term["id"], "INTERRUPTED", timeout=20)  # sooner than AFTER
    assert not any(line == "AFTER" for line in lines)

    closed = await api.delete(f"/api/terminals/{term['id']}")
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    # the scrollback outlives the program
    again = await api.get(f"/api/terminals/{term['id']}/output")
    assert any("INTERRUPTED" in line for line in again.json()["lines"])
    refused = await api.post(f"/api/terminals/{term['id']}/text", json={"text": "x"})
    assert refused.status_code == 409 and "Open a new terminal" in refused.json()["detail"]


async def test_bad_input_is_refused_before_anything_is_started(
    sqlite_api: Api, repo: Path, tmp_path: Path
) -> None:
    api = sqlite_api
    both = await api.post("/api/terminals", json={"run_id": "1", "cwd": str(tmp_path)})
    assert both.status_code == 400 and "not both" in both.json()["detail"]
    missing = await api.post("/api/terminals", json={"cwd": str(tmp_path / "nope")})
    assert missing.status_code == 400 and "existing absolute directory" in missing.json()["detail"]
    nobody = await api.post("/api/terminals", json={"cwd": "~no-such-user-here/x"})  # was a 500
    assert nobody.status_code == 400 and "existing absolute directory" in nobody.json()["detail"]
    huge = await api.post("/api/terminals", json={"cwd": str(tmp_path), "cols": 5000})
    assert huge.status_code == 422
    assert (await api.get("/api/terminals")).json()["data"] == []

    term = (await api.post("/api/terminals", json={"cwd": str(tmp_path), "command": BASH})).json()
    bad_key = await api.post(f"/api/terminals/{term['id']}/keys", json={"keys": ["enter", "hyper"]})
    assert bad_key.status_code == 400 and "ctrl+<letter>" in bad_key.json()["detail"]
    unknown = await api.get("/api/terminals/term_doesnotexist")
    assert unknown.status_code == 404
    await api.delete(f"/api/terminals/{term['id']}")


async def test_members_use_only_their_own_runs_terminals(
    sqlite_api: Api, repo: Path, tmp_path: Path
) -> None:
    api = sqlite_api
    admins_run = await ready_run(api, repo)
    await add_user(api, "mia", "member")
    token = await token_of(api, "mia", ["runs:read", "runs:write", "runs:control"])
    admin_term = (
        await api.post("/api/terminals", json={"run_id": admins_run["id"], "command": BASH})
    ).json()
    async with bearer(api, token) as mia:
        other = await mia.post("/api/terminals", json={"run_id": admins_run["id"]})
        assert other.status_code == 403, other.text
        ephemeral = await mia.post("/api/terminals", json={"cwd": str(tmp_path)})
        assert ephemeral.status_code == 403 and "admins" in ephemeral.json()["detail"]
        typed = await mia.post(f"/api/terminals/{admin_term['id']}/text", json={"text": "id\r"})
        assert typed.status_code == 403
        assert (await mia.get(f"/api/terminals/{admin_term['id']}/output")).status_code == 403
        assert (await mia.get("/api/terminals")).json()["data"] == []

        own_run = await ready_run(api, repo, mia)
        mine = await mia.post("/api/terminals", json={"run_id": own_run["id"], "command": BASH})
        assert mine.status_code == 201, mine.text
        assert [t["id"] for t in (await mia.get("/api/terminals")).json()["data"]] == [
            mine.json()["id"]
        ]
    await api.delete(f"/api/terminals/{admin_term['id']}")
    await api.delete(f"/api/terminals/{mine.json()['id']}")


async def test_discarding_the_run_closes_its_terminals(sqlite_api: Api, repo: Path) -> None:
    api = sqlite_api
    run = await ready_run(api, repo)
    term = (await api.post("/api/terminals", json={"run_id": run["id"], "command": BASH})).json()
    resp = await api.post(f"/api/runs/{run['id']}/resolve", json={"action": "discard"})
    assert resp.status_code == 200, resp.text
    body = await _until_not_live(api, term["id"])
    assert body["status"] == "closed" and body["close_reason"] == "the run was discarded"
    # …and its port block is released (not leased again for a finished run)
    released = await api.get(f"/api/runs/{run['id']}/preview")
    assert released.status_code == 409 and "released" in released.json()["detail"]

    async def released_lease() -> bool:
        async with api.services.engine.connect() as conn:
            return await leases.find(conn, run["id"]) is None

    assert await eventually(released_lease, timeout=30)


async def test_the_agent_and_setup_script_get_the_runs_ports(
    sqlite_api: Api, tmp_path: Path
) -> None:
    """No collisions between parallel worktrees: each run's processes see its own block."""
    api = sqlite_api
    repo = make_repo(tmp_path / "svc", {"README.md": "# svc\n"})
    project = await api.post("/api/projects", json={"name": "svc", "repos": [{"path": str(repo)}]})
    repo_id = project.json()["repos"][0]["id"]
    script = "echo $PORT $CODEYARD_PORT_3 > .setup-ports"
    patched = await api.request("PATCH", f"/api/repos/{repo_id}", json={"setup_script": script})
    assert patched.status_code == 200, patched.text
    seen: list[list[int]] = []
    for _ in range(2):
        body = {
            "prompt": "ports",
            "repo_path": str(repo),
            "provider": "script",
            "agent_options": {
                "scenario": {"steps": [{"bash": "echo $PORT $CODEYARD_PORT_9 > .agent-ports"}]}
            },
        }
        run = (await api.post("/api/runs", json=body)).json()
        done = await api.wait_status(run["id"], "review", "failed")
        assert done["status"] == "review", done["status_reason"]
        lease = (await api.get(f"/api/runs/{run['id']}/preview")).json()
        terminal = await api.post("/api/terminals", json={"run_id": run["id"], "command": ["pwd"]})
        worktree = Path(terminal.json()["cwd"])
        setup = [int(p) for p in (worktree / ".setup-ports").read_text().split()]
        agent = [int(p) for p in (worktree / ".agent-ports").read_text().split()]
        assert setup == [lease["base_port"], lease["base_port"] + 3]
        assert agent == [lease["base_port"], lease["base_port"] + 9]
        seen.append(lease["ports"])
    assert not set(seen[0]) & set(seen[1])


async def test_idle_terminals_close_but_watched_ones_stay(tmp_path: Path) -> None:
    # Idle after 2 s: the busy one's output every 0.1 s keeps it open on a loaded machine too
    # (with 0.6 s a starved sh could look idle).
    settings = Settings(data_dir=tmp_path / "data", admin_token=TOKEN, terminal_idle_minutes=2 / 60)
    async for api in open_api(settings):
        idle = await api.post("/api/terminals", json={"cwd": str(tmp_path), "command": BASH})
        busy = await api.post(
            "/api/terminals",
            json={
                "cwd": str(tmp_path),
                "command": ["sh", "-c", "while :; do echo tick; sleep 0.1; done"],
            },
        )
        idle_id, busy_id = idle.json()["id"], busy.json()["id"]
        body = await _until_not_live(api, idle_id)
        assert body["status"] == "closed" and "without viewers or output" in body["close_reason"]
        assert (await api.get(f"/api/terminals/{busy_id}")).json()["status"] == "live"
        await api.delete(f"/api/terminals/{busy_id}")
