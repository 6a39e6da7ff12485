"""Landing without curl: ``diff``, ``checkpoints``, ``restore``, ``land``, ``share``, the new
``run`` options and the small CLI fixes, as a person types them: the real ``codeyard`` binary
against a real ``codeyard serve``, real git repositories, the script agent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from codeyard.cli.client import CliError
from codeyard.cli.runs import agent_options
from tests.conftest import make_repo
from tests.support.server import ServerProcess

CLI = str(Path(sys.executable).parent / "codeyard")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # Runs ask before writes (default mode) unless a test passes --permission-mode auto.
    srv = ServerProcess(
        tmp_path_factory.mktemp("land") / "data",
        env={"CODEYARD_ADMIN_TOKEN": "", "CODEYARD_DEFAULT_PERMISSION_MODE": "default"},
    )
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()


def cli(
    server: ServerProcess, *args: str, cwd: Path | None = None, columns: int = 200
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEYARD_")}
    env.update(CODEYARD_DATA_DIR=str(server.data_dir), COLUMNS=str(columns), NO_COLOR="1")
    return subprocess.run(
        [CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def scenario(path: Path, *steps: dict[str, Any]) -> str:
    path.write_text(json.dumps({"steps": list(steps)}))
    return str(path)


def api(server: ServerProcess, method: str, path: str, **kw: Any) -> Any:
    token = (server.data_dir / "admin.token").read_text().strip()
    resp = httpx.request(
        method, server.url + path, headers={"Authorization": f"Bearer {token}"}, timeout=30, **kw
    )
    assert resp.status_code < 400, resp.text
    return resp.json() if resp.content else None


def number_of(created: str) -> str:
    """The run number from ``Created run #7 · …``."""
    return created.split("Created run #", 1)[1].split()[0]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True
    ).stdout


def wait_status(server: ServerProcess, number: str, *wanted: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        run: dict[str, Any] = api(server, "GET", f"/api/runs/{number}")
        if run["status"] in wanted:
            return run
        assert time.monotonic() < deadline, run
        time.sleep(0.1)


def test_diff_checkpoints_restore_and_land_squash(server: ServerProcess, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    steps = scenario(
        tmp_path / "s.json", {"write": {"path": "notes.md", "content": "# notes\nline two\n"}}
    )
    out = ok(
        cli(
            server,
            "run",
            "Write notes",
            "--scenario",
            steps,
            "--permission-mode",
            "auto",
            "--follow",
            cwd=repo,
        )
    )
    number = number_of(out)
    assert out.count("added notes.md") == 1, out  # not once from the tool and once more

    diff = ok(cli(server, "diff", number))
    assert "+++ b/notes.md" in diff and "+line two" in diff
    assert ok(cli(server, "diff", number, "--stat")).strip() == "1 file +2 -0"
    assert ok(cli(server, "diff", number, "no-such-dir")).strip() == "No changes."

    listing = ok(cli(server, "checkpoints", number))
    assert "turn" in listing and "1 file +2 -0" in listing
    assert f"codeyard restore {number} NUMBER" in listing

    # The person edits the worktree by hand, then thinks better of it.
    run = api(server, "GET", f"/api/runs/{number}")
    tree = server.data_dir / "worktrees"
    notes = next(tree.rglob("notes.md"))
    notes.write_text("scribbled over\n")
    restored = ok(cli(server, "restore", number, "1"))
    assert "Restored checkpoint 1" in restored and f"codeyard restore {number} 2" in restored
    assert notes.read_text() == "# notes\nline two\n"
    after = ok(cli(server, "checkpoints", number))
    assert "pre_restore" in after and "Before restoring checkpoint 1" in after
    missing = cli(server, "restore", number, "9")
    assert missing.returncode == 1 and "has no checkpoint 9 (it has: 1, 2)" in missing.stderr

    neither = cli(server, "land", number)
    assert neither.returncode == 1 and "Choose one way to land: --merge" in neither.stderr
    both = cli(server, "land", number, "--merge", "--squash")
    assert both.returncode == 1 and "Choose one way to land" in both.stderr

    # main is checked out in the person's repository: they are asked first.
    asked = subprocess.run(
        [CLI, "land", number, "--squash"],
        input="n\n",
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("CODEYARD_")},
            "CODEYARD_DATA_DIR": str(server.data_dir),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "'main' is checked out in" in asked.stdout and "Land anyway?" in asked.stdout
    assert asked.returncode == 1 and "Aborted" in asked.stdout + asked.stderr
    assert api(server, "GET", f"/api/runs/{number}")["status"] == "review"
    assert git(repo, "log", "-1", "--format=%s", "main").strip() == "initial"
    landed = ok(cli(server, "land", number, "--squash", "--yes", "-m", "Add notes"))
    assert f"Run #{number} is completed" in landed and "squash into main" in landed
    sha = git(repo, "rev-parse", "main").strip()
    shown = landed.split("\n  ", 1)[1].split()  # "<sha> on main": the commit and its branch
    assert sha.startswith(shown[0]) and shown[1:] == ["on", "main"]
    assert git(repo, "log", "-1", "--format=%s", "main").strip() == "Add notes"
    assert git(repo, "show", "main:notes.md") == "# notes\nline two\n"
    assert run["branch"] in ok(cli(server, "show", number))


def test_land_discard_asks_first_and_share_gives_a_working_link(
    server: ServerProcess, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    steps = scenario(tmp_path / "s.json", {"write": {"path": "x.txt", "content": "x\n"}})
    number = number_of(
        ok(
            cli(
                server,
                "run",
                "Try x",
                "--scenario",
                steps,
                "--permission-mode",
                "auto",
                "--follow",
                cwd=repo,
            )
        )
    )
    link = ok(cli(server, "share", number, "--hours", "2")).splitlines()[0].strip()
    assert "/share/" in link
    token = link.rsplit("/share/", 1)[1]
    shared = httpx.get(f"{server.url}/api/share/{token}/run", timeout=30)
    assert shared.status_code == 200 and shared.json()["number"] == int(number)

    refused = subprocess.run(
        [CLI, "land", number, "--discard"],
        input="n\n",
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("CODEYARD_")},
            "CODEYARD_DATA_DIR": str(server.data_dir),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1 and "Aborted" in refused.stdout + refused.stderr
    assert api(server, "GET", f"/api/runs/{number}")["status"] == "review"
    gone = ok(cli(server, "land", number, "--discard", "--yes"))
    assert f"Run #{number} is completed" in gone and "discarded" in gone
    assert "x.txt" not in git(repo, "ls-tree", "-r", "--name-only", "main")


def test_run_options_env_env_sets_and_profiles(server: ServerProcess, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    api(server, "POST", "/api/env-sets", json={"name": "deploy", "variables": {"SECRET": "s3"}})
    steps = scenario(tmp_path / "s.json", {"bash": 'printf "%s %s" "$FOO" "$SECRET" > env.txt'})
    out = ok(
        cli(
            server,
            "run",
            "Env",
            "--scenario",
            steps,
            "--permission-mode",
            "auto",
            "--env",
            "FOO=bar=baz",
            "--env-set",
            "deploy",
            "--budget",
            "2.5",
            "--options-json",
            '{"env": {"FOO": "overridden"}}',
            "--follow",
            cwd=repo,
        )
    )
    number = number_of(out)
    assert "+bar=baz s3" in ok(cli(server, "diff", number))  # --env wins over --options-json
    assert api(server, "GET", f"/api/runs/{number}")["budget_usd"] == 2.5

    unknown = cli(server, "run", "x", "--scenario", steps, "--env-set", "nope", cwd=repo)
    assert unknown.returncode == 1
    assert "No env set named 'nope' (there are: deploy)" in unknown.stderr
    profile = cli(server, "run", "x", "--profile", "ghost", cwd=repo)
    assert profile.returncode == 1 and "No agent profile named 'ghost'" in profile.stderr
    bad = cli(server, "run", "x", "--options-json", "[1]", cwd=repo)
    assert bad.returncode == 1 and "--options-json must be a JSON object" in bad.stderr


def test_agent_options_are_merged_json_then_options_then_env() -> None:
    merged = agent_options(
        '{"env": {"A": "1"}, "config": {"x": 1}}',
        ["max_turns=3", "config.model_reasoning_effort=high", "instructions=be brief", "flag=true"],
        ["B=2", "A=one"],
    )
    assert merged == {
        "env": {"A": "one", "B": "2"},
        "config": {"x": 1, "model_reasoning_effort": "high"},
        "max_turns": 3,
        "instructions": "be brief",
        "flag": True,
    }
    for bad in (["novalue"], ["=x"]):
        with pytest.raises(CliError, match="key=value"):
            agent_options(None, bad, [])
    with pytest.raises(CliError, match="KEY=VALUE"):
        agent_options(None, [], ["NOEQUALS"])


def test_approvals_show_run_numbers_and_remember_says_what(
    server: ServerProcess, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    steps = scenario(
        tmp_path / "s.json",
        {"write": {"path": "a.txt", "content": "a\n"}},
        {"write": {"path": "a.txt", "content": "b\n"}},
    )
    number = number_of(ok(cli(server, "run", "Ask me", "--scenario", steps, cwd=repo)))
    wait_status(server, number, "waiting")
    table = ok(cli(server, "approvals"))
    row = next(line.strip() for line in table.splitlines() if line.strip().startswith("apr_"))
    assert f"#{number}" in row.split()  # the run as people type it, not its id
    approval_id = row.split()[0]
    answer = ok(cli(server, "approve", approval_id, "--remember", "run"))
    assert "approved" in answer
    assert "Remembered for this run: Write on a.txt." in answer
    # The same tool on the same file is not asked again.
    assert wait_status(server, number, "review", "waiting")["status"] == "review"


def test_errors_name_cli_commands_and_ls_keeps_branches_whole(
    server: ServerProcess, tmp_path: Path
) -> None:
    missing = cli(server, "show", "9999")
    assert missing.returncode == 1
    assert "List runs with `codeyard ls`" in missing.stderr and "GET /api" not in missing.stderr
    repo = make_repo(tmp_path / "repo")
    title = "A rather long title that describes the change in great detail for everyone"
    steps = scenario(tmp_path / "s.json", {"say": "hi"})
    number = number_of(ok(cli(server, "run", title, "--scenario", steps, cwd=repo)))
    run = wait_status(server, number, "review")
    narrow = ok(cli(server, "ls", columns=100))
    assert run["branch"] in narrow  # whole, copyable; the title gives way instead
