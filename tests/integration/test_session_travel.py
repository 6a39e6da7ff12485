"""Agent session files that travel with a run's checkpoints between worker hosts (issue 16).

The file handling runs on real directories laid out the way Claude Code and Codex lay them out;
the archive goes through the app's real database (SQLite and PostgreSQL), fenced on the attempt.
The end-to-end case (a real Claude Code run moved off a killed worker) is in
``test_temporal_scale_out.py``.
"""

from __future__ import annotations

import asyncio
import io
import tarfile
from pathlib import Path
from typing import Any

import pytest

from codeyard.executor.handle import RunHandle
from codeyard.store import fencing, runs
from codeyard.temporal import failover, sessions
from codeyard.temporal.host import HostConfig, HostRuntime
from tests.conftest import Api

pytestmark = pytest.mark.anyio

SID = "541b5df0-98de-427f-a541-edd03ce4f0d2"


def _claude_home(home: Path, cwd: Path) -> Path:
    project = home / ".claude" / "projects" / sessions.claude_slug(str(cwd))
    (project / SID / "subagents").mkdir(parents=True)
    (project / f"{SID}.jsonl").write_text('{"type":"user","message":"first"}\n')
    (project / SID / "subagents" / "agent-1.jsonl").write_text('{"type":"assistant"}\n')
    (project / "other-session.jsonl").write_text("not this run's\n")
    return project


def test_claude_slug_is_the_cli_s_directory_name() -> None:
    assert sessions.claude_slug("/tmp/h6/bt4/test_pause0/data/worktrees/repo-1/repo") == (
        "-tmp-h6-bt4-test-pause0-data-worktrees-repo-1-repo"
    )
    # Over 200 characters: cut, then the path's Java-style string hash in base 36. The
    # expected value is what Claude Code's own function gives (evaluated once with node).
    long = "/w/" + "é" * 10 + "x" * 240
    slug = sessions.claude_slug(long)
    assert slug == "-w-" + "-" * 10 + "x" * 187 + "-" + LONG_HASH


#: ``Math.abs(hash("/w/" + "é".repeat(10) + "x".repeat(240))).toString(36)`` in Claude Code.
LONG_HASH = "mv41yf"


def test_claude_session_files_move_to_the_new_worktree_s_directory(tmp_path: Path) -> None:
    old_cwd, new_cwd = tmp_path / "h1" / "wt" / "repo", tmp_path / "h2" / "wt" / "repo"
    old_cwd.mkdir(parents=True)
    new_cwd.mkdir(parents=True)
    _claude_home(tmp_path / "home1", old_cwd)
    files = sessions.collect("claude-code", SID, {"HOME": str(tmp_path / "home1")}, old_cwd)
    assert sorted(files) == [f"{SID}.jsonl", f"{SID}/subagents/agent-1.jsonl"]
    archive = sessions.pack(files)

    config = tmp_path / "config2"  # the new host names the directory by CLAUDE_CONFIG_DIR
    written = sessions.restore("claude-code", archive, {"CLAUDE_CONFIG_DIR": str(config)}, new_cwd)
    project = config / "projects" / sessions.claude_slug(str(new_cwd))
    assert set(written) == {
        project / f"{SID}.jsonl",
        project / SID / "subagents" / "agent-1.jsonl",
    }
    assert (project / f"{SID}.jsonl").read_text() == '{"type":"user","message":"first"}\n'
    assert not (project / "other-session.jsonl").exists()


def test_a_claude_session_the_cli_kept_under_another_path_is_still_found(tmp_path: Path) -> None:
    """A worktree reached through a symlink: the CLI names the directory by the path it saw."""
    _claude_home(tmp_path / "home", tmp_path / "seen" / "by" / "cli")
    files = sessions.collect("claude-code", SID, {"HOME": str(tmp_path / "home")}, tmp_path / "x")
    assert f"{SID}.jsonl" in files


def test_codex_rollouts_keep_their_place_under_codex_home(tmp_path: Path) -> None:
    day = tmp_path / "codex1" / "sessions" / "2026" / "12" / "04"
    day.mkdir(parents=True)
    (day / f"rollout-2026-12-04T01-02-03-{SID}.jsonl").write_text("rollout\n")
    (day / "rollout-2026-12-04T01-02-03-someone-else.jsonl").write_text("no\n")
    files = sessions.collect("codex", SID, {"CODEX_HOME": str(tmp_path / "codex1")}, tmp_path)
    assert list(files) == [f"sessions/2026/12/04/rollout-2026-12-04T01-02-03-{SID}.jsonl"]
    target = {"CODEX_HOME": str(tmp_path / "codex2")}
    sessions.restore("codex", sessions.pack(files), target, tmp_path)
    assert (tmp_path / "codex2" / next(iter(files))).read_text() == "rollout\n"


def test_providers_without_carried_sessions_and_unsafe_ids_collect_nothing(tmp_path: Path) -> None:
    _claude_home(tmp_path / "home", tmp_path)
    env = {"HOME": str(tmp_path / "home")}
    assert sessions.collect("gemini", SID, env, tmp_path) == {}
    assert sessions.collect("claude-code", "../../etc", env, tmp_path) == {}
    assert sessions.collect("claude-code", "no-such-session", env, tmp_path) == {}
    assert sessions.restore("gemini", sessions.pack({}), env, tmp_path) == []


def test_an_archive_cannot_write_outside_its_directory(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in ("../escaped.jsonl", "/abs/olute.jsonl", "ok/fine.jsonl"):
            info = tarfile.TarInfo(name)
            info.size = 2
            tar.addfile(info, io.BytesIO(b"x\n"))
        link = tarfile.TarInfo("link.jsonl")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    root = tmp_path / "root"
    written = sessions.unpack(buffer.getvalue(), root)
    assert written == [root / "ok" / "fine.jsonl"]
    assert not (tmp_path / "escaped.jsonl").exists() and not (root / "link.jsonl").exists()


async def _draft(api: Api, repo: Path) -> dict[str, Any]:
    body = {"prompt": "travel", "repo_path": str(repo), "provider": "script", "draft": True}
    resp = await api.post("/api/runs", json=body)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


async def test_the_archive_is_stored_fenced_replaced_and_deleted_with_its_run(
    api: Api, git_repo: Path
) -> None:
    writer, engine = api.services.writer, api.services.engine
    run_id = (await _draft(api, git_repo))["id"]
    first = await writer.run(lambda tx: runs.begin_attempt(tx, run_id))
    one = sessions.Saved("claude-code", SID, 1, b"\x1f\x8b one")

    async def save_as(attempt: int, saved: sessions.Saved) -> None:
        token = fencing.current.set(fencing.Fence(run_id, attempt))
        try:
            await writer.run(lambda tx: sessions.save(tx, run_id, saved))
        finally:
            fencing.current.reset(token)

    await save_as(first, one)
    two = sessions.Saved("claude-code", SID, 2, b"\x1f\x8b two" * 1000)
    await save_as(first, two)  # the next checkpoint replaces it
    async with engine.connect() as conn:
        assert await sessions.load(conn, run_id) == two

    # Another host took the run: the lost attempt's session must not overwrite the new one's.
    await writer.run(lambda tx: runs.begin_attempt(tx, run_id))
    with pytest.raises(fencing.StaleAttempt):
        await save_as(first, one)
    async with engine.connect() as conn:
        assert await sessions.load(conn, run_id) == two

    assert (await api.delete(f"/api/runs/{run_id}")).status_code in (200, 204)
    async with engine.connect() as conn:
        assert await sessions.load(conn, run_id) is None


async def test_a_checkpoints_session_is_saved_once_the_turns_agent_has_exited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A turn's end may be recorded while its CLI exits (``TurnEnd.exiting``), and Claude Code
    writes its session file on its way out: the push of that checkpoint saves the session only
    once the CLI is gone (``RunHandle.exiting``)."""
    config = HostConfig(
        host="h1",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}",
        worktree_root=tmp_path / "worktrees",
        logs_root=tmp_path / "logs",
        secrets_key=tmp_path / "secret.key",
        shared_remote=tmp_path / "shared.git",
    )
    runtime = HostRuntime(config)
    done: list[str] = []

    async def push_fenced(*args: Any) -> None:
        done.append("pushed")

    async def save_session(engine: Any, writer: Any, run_id: str, fence: Any, turn: int) -> None:
        done.append(f"session of turn {turn} saved")

    monkeypatch.setattr(failover, "push_fenced", push_fenced)
    monkeypatch.setattr(runtime.sessions, "save", save_session)
    monkeypatch.setattr(HostRuntime, "engine", property(lambda _: None))  # not started
    monkeypatch.setattr(HostRuntime, "writer", property(lambda _: None))
    try:
        handle = RunHandle("r1")
        handle.observe({"id": "r1", "status": "review", "worktrees": {"repo": str(tmp_path)}})
        handle.exiting = asyncio.get_running_loop().create_future()
        runtime.handles["r1"] = handle
        pushing = asyncio.ensure_future(runtime._push("r1", None, 1, {"repo": "c0ffee"}, 1))
        async with asyncio.timeout(10):
            while not done:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        assert done == ["pushed"] and not pushing.done()  # the CLI still exits
        handle.exiting.set_result(None)
        await asyncio.wait_for(pushing, 10)
        assert done == ["pushed", "session of turn 1 saved"]
    finally:
        runtime._loop.close()
