"""The CLI's output: the event transcript, the run views, error printing and exit codes.

The command tests here mock the server's HTTP with ``httpx.MockTransport`` (through
``codeyard.cli.testing.invoke``) to pin exact answers, problems and failures; the integration
tests run the same commands against a real server.
"""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console, RenderableType

from codeyard.cli.render import Transcript, tool_title
from codeyard.cli.testing import invoke
from codeyard.cli.views import run_panel, run_table

RUN: dict[str, Any] = {
    "id": "run_abc",
    "number": 7,
    "title": "Add input validation",
    "prompt": "Validate input",
    "provider": "script",
    "model": None,
    "status": "review",
    "status_reason": "end_turn",
    "branch": "codeyard/7-add-input-validation",
    "turns": 1,
    "pending_approvals": 0,
    "usage": {
        "input_tokens": 1200,
        "output_tokens": 340,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "cost_usd": 0.0123,
    },
    "diff_stats": {"files": 2, "insertions": 10, "deletions": 3},
    "archived": False,
    "labels": [],
    "created_at": "2026-11-22T08:00:00Z",
    "updated_at": "2026-11-22T08:05:00Z",
}


def text_of(*renderables: RenderableType | None) -> str:
    console = Console(record=True, width=120, color_system=None, file=io.StringIO())
    for renderable in renderables:
        if renderable is not None:
            console.print(renderable)
    return console.export_text()


def render(kind: str, **data: Any) -> str:
    return text_of(Transcript().render({"id": 1, "type": kind, "data": data}))


# -- the transcript, one event type at a time ------------------------------------------------------


def test_messages_thinking_and_user_messages() -> None:
    assert render("agent.message", message_id="m1", text="Done.\n") == "● Done.\n"
    assert render("agent.thinking", text="Let me look.") == "✻ Let me look.\n"
    assert render("user.message", text="go on", author="admin") == "» admin: go on\n"


def test_status_turns_and_session() -> None:
    status = render("run.status", **{"from": "running", "to": "review", "reason": "end_turn"})
    assert status == "◆ status running → review (end_turn)\n"
    assert render("turn.started", turn=2, source="message") == "▶ turn 2 (message)\n"
    done = render(
        "turn.completed",
        turn=1,
        stop_reason="end_turn",
        duration_ms=12300,
        cost_usd=0.0123,
        usage={"input_tokens": 1234, "output_tokens": 567, "cache_read_tokens": 100},
    )
    assert (
        done == "■ turn 1 finished · end_turn · 12.3s · 1,234 in / 567 out · 100 cached · $0.0123\n"
    )
    session = render("agent.session", provider="claude-code", cli_version="2.1", model="sonnet")
    assert session == "session claude-code · 2.1 · sonnet\n"
    created = render("run.created", run={"number": 7, "provider": "script", "branch": "b"})
    assert created == "Run #7 created · script · b\n"


@pytest.mark.parametrize(
    ("data", "title"),
    [
        ({"kind": "bash", "tool": "Bash", "input": {"command": "pytest -q"}}, "$ pytest -q"),
        ({"kind": "bash", "input": {"command": ["git", "log", "-1 x"]}}, "$ git log '-1 x'"),
        ({"kind": "bash", "input": {"command": "a\nb"}}, "$ a…"),
        ({"kind": "write", "input": {"path": "src/a.py", "content": "x"}}, "write src/a.py"),
        ({"kind": "edit", "input": {"file_path": "b.py"}}, "edit b.py"),
        ({"kind": "search", "input": {"pattern": "TODO", "path": "src"}}, "search TODO in src"),
        ({"kind": "fetch", "input": {"url": "https://x.test"}}, "fetch https://x.test"),
        ({"kind": "mcp", "tool": "mcp__db__query", "title": "Query the db"}, "Query the db"),
        ({"kind": "other", "tool": "Weird", "input": "not a dict"}, "Weird"),
    ],
)
def test_tool_titles(data: dict[str, Any], title: str) -> None:
    assert tool_title(data) == title


def test_tool_calls_and_results() -> None:
    t = Transcript()
    call = {"call_id": "c1", "tool": "Bash", "kind": "bash", "input": {"command": "pytest -q"}}
    output = "\n".join(f"line {i}" for i in range(1, 8))
    result = {
        "call_id": "c1",
        "ok": False,
        "output": output,
        "error": "exit code 1",  # says no more than exit_code: not repeated
        "exit_code": 1,
        "duration_ms": 1500,
    }
    text = text_of(
        t.render({"type": "tool.call", "data": call}),
        t.render({"type": "tool.result", "data": result}),
    )
    assert text.splitlines() == [
        "→ $ pytest -q",
        "  ✗ failed · exit 1 · 1.5s",  # right after its call, the title is not repeated
        "    … 3 more lines",
        "    line 4",
        "    line 5",
        "    line 6",
        "    line 7",
    ]


def test_a_result_after_other_calls_names_its_call() -> None:
    t = Transcript()
    calls = [{"call_id": c, "kind": "write", "input": {"path": f"{c}.txt"}} for c in ("c1", "c2")]
    rendered = [t.render({"type": "tool.call", "data": c}) for c in calls]
    rendered.append(
        t.render({"type": "tool.result", "data": {"call_id": "c1", "ok": True, "output": ""}})
    )
    assert text_of(*rendered).splitlines()[-1] == "  ✓ ok · write c1.txt"


def test_a_failed_result_shows_its_error() -> None:
    denied = {"call_id": "c9", "ok": False, "output": "", "error": "Denied: rm is not allowed"}
    assert render("tool.result", **denied) == "  ✗ failed\n    Denied: rm is not allowed\n"


def test_files_tasks_and_checkpoints() -> None:
    assert render("file.changed", path="a.py", change="added") == "  + added a.py\n"
    assert render("file.changed", path="b.py", change="deleted") == "  - deleted b.py\n"
    tasks = render(
        "task.updated",
        tasks=[
            {"content": "write", "status": "completed"},
            {"content": "test", "status": "in_progress"},
            {"content": "ship"},
        ],
    )
    assert tasks == "☰ tasks\n  ✓ write\n  ▸ test\n  ○ ship\n"
    checkpoint = render("checkpoint.created", checkpoint={"id": "chk_1", "description": "turn 1"})
    assert checkpoint == "⚑ checkpoint chk_1 turn 1\n"


def test_approvals_and_policy() -> None:
    asked = render("approval.requested", approval={"id": "apr_1", "title": "$ rm -rf build"})
    assert asked.startswith("⏸ approval needed: $ rm -rf build  → codeyard approve apr_1")
    resolved = render("approval.resolved", decision="rejected", decided_by="admin", reason="no")
    assert resolved == "  approval rejected by admin (no)\n"
    denied = render("policy.decision", call_id="c", tool="Bash", decision="deny", rule="no rm")
    assert denied == "  ⛔ policy denied Bash (no rm)\n"
    assert render("policy.decision", tool="Bash", decision="allow") == ""


def test_git_events_and_errors() -> None:
    assert render("git.committed", sha="0123456789abcdef", message="wip") == (
        "⎇ committed 0123456789 wip\n"
    )
    assert render("git.merged", target="main", sha="abc", strategy="squash") == (
        "⎇ merged into main (squash) abc\n"
    )
    assert render("git.pushed", branch="b", remote="origin") == "⎇ pushed b → origin\n"
    assert (
        render("pr.created", url="https://x/pr/3", number=3) == "⎇ pull request #3 https://x/pr/3\n"
    )
    error = render("error", message="agent crashed", detail="Traceback\nBoom")
    assert error == "✗ error: agent crashed\n    Traceback\n    Boom\n"


def test_quiet_and_unknown_events() -> None:
    assert render("usage", input_tokens=1, output_tokens=2, cost_usd=0.1) == ""
    assert render("log", text="raw") == ""
    assert render("something.new", a=1) == 'something.new {"a": 1}\n'


def test_deltas_without_a_full_message_are_flushed() -> None:
    t = Transcript()
    for piece in ("Hel", "lo"):
        assert t.render({"type": "agent.delta", "data": {"message_id": "m", "text": piece}}) is None
    status = t.render({"type": "run.status", "data": {"from": "running", "to": "interrupted"}})
    assert text_of(status) == "● Hello (incomplete)\n◆ status running → interrupted\n"
    # Deltas closed by their full message are not shown twice.
    t.render({"type": "agent.delta", "data": {"message_id": "n", "text": "Hi"}})
    shown = t.render({"type": "agent.message", "data": {"message_id": "n", "text": "Hi there"}})
    assert text_of(shown) == "● Hi there\n"
    assert t.flush() is None


# -- run views ------------------------------------------------------------------------------------


def test_run_table_and_panel() -> None:
    now = datetime(2026, 11, 22, 8, 10, tzinfo=UTC)
    table = text_of(
        run_table([RUN, {**RUN, "number": 6, "status": "failed", "usage": {}}], now=now)
    )
    lines = table.splitlines()
    assert lines[0].split() == ["#", "status", "provider", "title", "branch", "cost", "updated"]
    assert lines[1].split()[:3] == ["7", "review", "script"]
    assert "codeyard/7-add-input-validation" in lines[1] and "$0.0123" in lines[1]
    assert lines[1].endswith("5m ago")
    assert lines[2].split()[:2] == ["6", "failed"]
    panel = text_of(run_panel(RUN))
    for expected in (
        "Run #7 · Add input validation",
        "review — end_turn",
        "2 files +10 -3",
        "1,200 in / 340 out · $0.0123",
        "Validate input",
    ):
        assert expected in panel


# -- commands against a mocked server -------------------------------------------------------------

Routes = dict[tuple[str, str], Any]


def server(routes: Routes, seen: list[httpx.Request] | None = None) -> httpx.MockTransport:
    """Answers ``(method, path)`` with a Response, or JSON (200) for anything else."""

    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        answer = routes.get((request.method, request.url.path))
        if answer is None:
            return httpx.Response(
                404,
                json={
                    "title": "Not Found",
                    "status": 404,
                    "detail": f"no route {request.url.path}",
                },
            )
        if isinstance(answer, Exception):
            raise answer
        return answer if isinstance(answer, httpx.Response) else httpx.Response(200, json=answer)

    return httpx.MockTransport(handler)


def cli(args: list[str], routes: Routes, seen: list[httpx.Request] | None = None) -> Any:
    return invoke(args, server="http://cy.test", token="tok", transport=server(routes, seen))


def test_a_409_problem_prints_detail_and_current_status() -> None:
    problem = {
        "type": "about:blank",
        "title": "Conflict",
        "status": 409,
        "detail": "Cannot pause a run in status 'review'.",
        "current_status": "review",
    }
    result = cli(["pause", "7"], {("POST", "/api/runs/7/pause"): httpx.Response(409, json=problem)})
    assert result.exit_code == 1
    assert (
        result.stderr == "Error: Cannot pause a run in status 'review'.\n  current status: review\n"
    )
    assert "Traceback" not in result.output


def test_a_422_problem_lists_the_errors(tmp_path: Path) -> None:
    problem = {
        "title": "Unprocessable",
        "status": 422,
        "detail": "The request is not valid.",
        "errors": [{"loc": ["body", "budget_usd"], "msg": "must be >= 0"}, "plain"],
    }
    seen: list[httpx.Request] = []
    result = cli(
        ["run", "do it", "--repo", str(tmp_path), "--provider", "script", "--budget", "1.5"],
        {("POST", "/api/runs"): httpx.Response(422, json=problem)},
        seen,
    )
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "Error: The request is not valid.",
        "  - budget_usd: must be >= 0",
        "  - plain",
    ]
    body = json.loads(seen[0].content)
    assert body == {
        "prompt": "do it",
        "repo_path": str(tmp_path.resolve()),
        "provider": "script",
        "budget_usd": 1.5,
    }
    assert seen[0].headers["authorization"] == "Bearer tok"


def test_a_non_json_error_is_still_readable() -> None:
    answer = httpx.Response(502, text="<html>Bad Gateway</html>")
    result = cli(["show", "7"], {("GET", "/api/runs/7"): answer})
    assert result.exit_code == 1
    assert result.stderr == "Error: HTTP 502 Bad Gateway: <html>Bad Gateway</html>\n"


def test_connection_refused() -> None:
    refused = httpx.ConnectError("[Errno 111] Connection refused")
    result = cli(["ls"], {("GET", "/api/runs"): refused})
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        "Error: Cannot reach Codeyard at http://cy.test — is `codeyard serve` running?"
    )


def stream_of(*events: dict[str, Any]) -> httpx.Response:
    frames = "".join(
        f"id: {e['id']}\nevent: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events
    )
    return httpx.Response(200, text=": ping\n\n" + frames)


@pytest.mark.parametrize(("final", "code"), [("review", 0), ("completed", 0), ("failed", 1)])
def test_run_follow_exit_code(tmp_path: Path, final: str, code: int) -> None:
    scenario = tmp_path / "s.json"
    scenario.write_text('{"steps": [{"say": "hi"}]}')
    events = [
        {"id": 1, "type": "run.status", "data": {"from": "queued", "to": "running"}},
        {"id": 2, "type": "agent.message", "data": {"message_id": "m", "text": "hi"}},
        {"id": 3, "type": "run.status", "data": {"from": "running", "to": final}},
    ]
    seen: list[httpx.Request] = []
    routes: Routes = {
        ("POST", "/api/runs"): httpx.Response(201, json={**RUN, "status": "queued"}),
        ("GET", "/api/runs/run_abc/events/stream"): stream_of(*events),
        ("GET", "/api/runs/run_abc"): {**RUN, "status": final},
    }
    result = cli(
        ["run", "hi", "--repo", str(tmp_path), "--scenario", str(scenario), "-f"], routes, seen
    )
    assert result.exit_code == code, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "Created run #7 · run_abc · codeyard/7-add-input-validation · queued"
    assert lines[1:4] == ["◆ status queued → running", "● hi", f"◆ status running → {final}"]
    assert lines[4].startswith(f"Run #7 {final}")
    body = json.loads(seen[0].content)
    assert body["provider"] == "script"  # implied by --scenario
    assert body["agent_options"] == {"scenario": {"steps": [{"say": "hi"}]}}


def test_ls_show_and_actions() -> None:
    routes: Routes = {
        ("GET", "/api/runs"): {"data": [RUN], "next_cursor": None},
        ("GET", "/api/runs/7"): RUN,
        ("POST", "/api/runs/7/cancel"): {**RUN, "status": "cancelled"},
        ("POST", "/api/runs/7/messages"): {"delivered": "next_turn"},
    }
    seen: list[httpx.Request] = []
    listed = cli(["ls", "--status", "review", "-n", "5"], routes, seen)
    assert listed.exit_code == 0 and "Add input validation" in listed.stdout
    assert dict(seen[0].url.params) == {"limit": "5", "status": "review", "archived": "false"}
    assert "Run #7 · Add input validation" in cli(["show", "#7"], routes).stdout
    assert cli(["cancel", "7"], routes).stdout == "Run #7 is now cancelled.\n"
    assert cli(["msg", "7", "go on"], routes).stdout == "Message sent to run #7.\n"


def test_usage_errors_exit_1_without_a_request(tmp_path: Path) -> None:
    result = cli(["run", "x", "--repo", str(tmp_path), "--provider", "a", "--agent", "b"], {})
    assert result.exit_code == 1
    assert result.stderr == "Error: Use either --provider or --agent, not both.\n"


def test_discovery_reads_server_json_and_admin_token(tmp_path: Path) -> None:
    (tmp_path / "server.json").write_text('{"url": "http://found.test:9000", "pid": 1}')
    (tmp_path / "admin.token").write_text("cy_secret\n")
    seen: list[httpx.Request] = []
    transport = server({("GET", "/api/runs"): {"data": [], "next_cursor": None}}, seen)
    env = {
        "CODEYARD_HOME": str(tmp_path),
        "CODEYARD_DATA_DIR": None,
        "CODEYARD_SERVER": None,
        "CODEYARD_TOKEN": None,
        "CODEYARD_ADMIN_TOKEN": None,
    }
    result = invoke(["ls"], transport=transport, env=env)
    assert result.exit_code == 0
    assert result.stdout.startswith("No runs yet.")
    assert str(seen[0].url).startswith("http://found.test:9000/api/runs?")
    assert seen[0].headers["authorization"] == "Bearer cy_secret"


def test_doctor_reports_a_stopped_server(tmp_path: Path) -> None:
    env = {"CODEYARD_HOME": str(tmp_path), "CODEYARD_DATA_DIR": None, "CODEYARD_DATABASE_URL": None}
    refused = httpx.ConnectError("[Errno 111] Connection refused")
    transport = server({("GET", "/api/health"): refused})
    result = invoke(["doctor"], server="http://cy.test", transport=transport, env=env)
    assert result.exit_code == 1
    assert "✗ server   server not running at http://cy.test (from --server)" in result.stdout
    assert "fix: Start it with `codeyard serve`." in result.stdout
    assert f"✓ data dir {tmp_path}" in result.stdout
    assert "1 problem found." in result.stdout


def test_doctor_lists_providers(tmp_path: Path) -> None:
    providers = [
        {"name": "script", "available": True, "version": "1"},
        {"name": "codex", "available": False, "problem": "codex not found: npm i -g …"},
    ]
    routes: Routes = {
        ("GET", "/api/health"): {"status": "ok", "version": "0.1.0", "database": "sqlite"},
        ("GET", "/api/providers"): {"data": providers, "next_cursor": None},
    }
    result = invoke(
        ["doctor"],
        server="http://cy.test",
        token="tok",
        transport=server(routes),
        env={"CODEYARD_HOME": str(tmp_path), "CODEYARD_DATA_DIR": None},
    )
    assert result.exit_code == 0, result.output
    assert re.search(r"✓ providers +1 available: script", result.stdout), result.stdout
    assert "codex   no         —        —     codex not found: npm i -g …" in result.stdout
