"""The pull-request loop (issue 21) against the fake GitHub over real loopback HTTP: a run whose
pull request is open takes a new turn when CI fails on its head (with the failing log in the
prompt) or a person requests changes, and its new commit is pushed to the pull request branch.

Real parts: the app (ASGI), SQLite, git with a real bare "origin" the fake GitHub reads the
pull request's head from, the script agent in the sandbox. Deliveries are signed with the test
secret and posted to the webhook route as GitHub would; the poller path reads the fake's
GraphQL and REST answers.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from codeyard.config import Settings
from codeyard.github.poller import Budget, Poller
from codeyard.github.signature import sign_body
from codeyard.services.github_poll import PollLoop
from tests.conftest import TOKEN, Api, make_repo, running_api
from tests.support.fake_github import FakeGitHub
from tests.support.waits import eventually

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="runs need the sandbox"),
]
SECRET = "whsec-loop-0123456789"
REPO = "acme/loop"
FAILING_LOG = (
    "2026-12-03T10:00:00.0000000Z ##[group]Run pytest -q\n"
    + "".join(f"2026-12-03T10:00:01.0000000Z collecting line {i}\n" for i in range(400))
    + "2026-12-03T10:00:02.0000000Z FAILED tests/test_calc.py::test_add - assert 3 == 2\n"
    "2026-12-03T10:00:02.0000000Z ##[error]Process completed with exit code 1.\n"
)


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout.strip()


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGitHub]:
    with FakeGitHub("ghp_loop") as server:
        monkeypatch.setenv("CODEYARD_GITHUB_TOKEN", "ghp_loop")
        monkeypatch.setenv("CODEYARD_GITHUB_API_URL", server.api_url)
        monkeypatch.setenv("CODEYARD_GITHUB_WEB_URL", "https://github.com")
        yield server


def _settings(tmp_path: Path, *, webhooks: bool = True) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        admin_token=TOKEN,
        github_webhook_secret=SECRET if webhooks else "",
        github_sweep_seconds=3600,
        github_poll_budget_per_hour=0,  # the test drives the poller itself
    )


async def _run_with_pr(
    api: Api, fake: FakeGitHub, tmp_path: Path, on_message: list[dict[str, Any]]
) -> tuple[dict[str, Any], Path]:
    bare = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    repo = make_repo(tmp_path / "loop")
    url = f"https://github.com/{REPO}.git"
    git(repo, "remote", "add", "origin", url)
    git(repo, "config", f"url.{bare}.pushInsteadOf", url)
    git(repo, "push", "-q", "origin", "main")
    fake.add_repo(REPO, bare)
    body = {
        "prompt": "Add calc",
        "repo_path": str(repo),
        "provider": "script",
        "agent_options": {
            "scenario": {"steps": [{"write": {"path": "calc.py", "content": "x = 1\n"}}]},
            "on_message": on_message,
        },
    }
    run = (await api.post("/api/runs", json=body)).json()
    await api.wait_status(run["id"], "review", timeout=60)
    resp = await api.post(f"/api/runs/{run['id']}/resolve", json={"action": "create_pr"})
    assert resp.status_code == 200, resp.text
    done: dict[str, Any] = resp.json()
    assert done["status"] == "completed" and done["resolution"] == "pr_created"
    return done, bare


async def _deliver(api: Api, event: str, payload: dict[str, Any]) -> None:
    raw = json.dumps({**payload, "repository": {"full_name": REPO}}).encode()
    headers = {
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-GitHub-Event": event,
        "X-Hub-Signature-256": sign_body(SECRET, raw),
        "Content-Type": "application/json",
    }
    resp = await api.post("/api/github/webhooks", content=raw, headers=headers)
    assert resp.status_code == 202, resp.text


async def _events(api: Api, run_id: str, types: str) -> list[dict[str, Any]]:
    resp = await api.get(f"/api/runs/{run_id}/events", params={"types": types, "limit": 500})
    data: list[dict[str, Any]] = resp.json()["data"]
    return data


async def _settled_after_pushes(api: Api, run_id: str, pushes: int) -> dict[str, Any]:
    """Wait until the run pushed ``pushes`` times in all and is completed again."""

    async def settled() -> bool:
        run = (await api.get(f"/api/runs/{run_id}")).json()
        pushed = await _events(api, run_id, "git.pushed")
        return len(pushed) == pushes and run["status"] == "completed"

    assert await eventually(settled, timeout=60), await _events(api, run_id, "run.status")
    run: dict[str, Any] = (await api.get(f"/api/runs/{run_id}")).json()
    return run


def _check_run(sha: str, number: int, event: str = "check_run") -> dict[str, Any]:
    item = {
        "name": "tests",
        "status": "completed",
        "conclusion": "failure",
        "head_sha": sha,
        "pull_requests": [{"number": number}],
    }
    return {"action": "completed", event: item}


@pytest.mark.slow  # five agent turns (three fixes, the cap, a reset): 10-50 s by load
async def test_ci_failures_get_a_fix_turn_each_up_to_three_then_a_person_is_asked(
    fake: FakeGitHub, tmp_path: Path
) -> None:
    async with running_api(_settings(tmp_path)) as api:
        fix = [{"bash": "echo fixed >> calc.py && git add -A && git commit -qm fix"}]
        run, bare = await _run_with_pr(api, fake, tmp_path, fix)
        number, branch = run["pull_request"]["number"], run["branch"]
        head = run["pull_request"]["head_sha"]
        assert head == git(bare, "rev-parse", f"refs/heads/{branch}")

        heads = [head]
        for attempt in (1, 2, 3):
            note = {"path": "calc.py", "start_line": 1, "message": "assert 3 == 2"}
            fake.add_check_run(
                head, "tests", "completed", "failure", log=FAILING_LOG, annotations=[note]
            )
            await _deliver(api, "check_run", _check_run(head, number))
            run = await _settled_after_pushes(api, run["id"], 1 + attempt)
            new_head = run["pull_request"]["head_sha"]
            assert new_head != head and new_head == git(bare, "rev-parse", f"refs/heads/{branch}")
            assert run["resolution"] == "pr_created" and run["pull_request"]["state"] == "open"
            head = new_head
            heads.append(head)

        prompts = [
            e["data"]["text"]
            for e in await _events(api, run["id"], "user.message")
            if e["data"]["author"] == "codeyard"
        ]
        assert len(prompts) == 3
        for attempt, (prompt, sha) in enumerate(zip(prompts, heads, strict=False), 1):
            assert '"tests" failed on pull request' in prompt and sha[:12] in prompt
            assert "FAILED tests/test_calc.py::test_add - assert 3 == 2" in prompt
            assert "calc.py:1: failure: assert 3 == 2" in prompt  # the annotation
            assert f"Attempt {attempt} of 3" in prompt
            assert "2026-12-03T10" not in prompt and "##[group]" not in prompt  # trimmed
        sent = await _events(api, run["id"], "feedback.sent")
        assert [(e["data"]["source"], e["data"]["attempt"]) for e in sent] == [
            ("ci", 1),
            ("ci", 2),
            ("ci", 3),
        ]

        # The fourth failure: no turn, the run needs a person (once, however often it is said).
        fake.add_check_run(head, "tests", "completed", "failure", log=FAILING_LOG)
        await _deliver(api, "check_run", _check_run(head, number))
        await _deliver(api, "check_suite", _check_run(head, number, "check_suite"))

        async def exhausted() -> bool:
            return len(await _events(api, run["id"], "feedback.exhausted")) == 1

        assert await eventually(exhausted, timeout=30)
        assert await eventually(lambda: _all_processed(api), timeout=30)
        assert len(await _events(api, run["id"], "feedback.sent")) == 3
        assert (await api.get(f"/api/runs/{run['id']}")).json()["status"] == "completed"

        # A person's comment resets the cap: the same head's failure now gets its turn.
        pull = {"url": f"https://api.github.com/repos/{REPO}/pulls/{number}"}
        comment = {"action": "created", "issue": {"number": number, "pull_request": pull}}
        comment["comment"] = {"user": {"login": "octocat", "type": "User"}, "body": "try again"}
        await _deliver(api, "issue_comment", comment)
        await _deliver(api, "check_run", _check_run(head, number))
        await _settled_after_pushes(api, run["id"], 5)
        sent = await _events(api, run["id"], "feedback.sent")
        assert [e["data"]["attempt"] for e in sent] == [1, 2, 3, 1]


async def _all_processed(api: Api) -> bool:
    listed = (await api.get("/api/github/webhooks/events")).json()["data"]
    return all(e["processed_at"] for e in listed)


async def test_a_head_is_handed_back_once_and_stale_or_passing_heads_never(
    fake: FakeGitHub, tmp_path: Path
) -> None:
    async with running_api(_settings(tmp_path)) as api:
        # The agent looks but changes nothing: the head stays, its failure is not sent again.
        run, _bare = await _run_with_pr(api, fake, tmp_path, [{"say": "I looked."}])
        number, head = run["pull_request"]["number"], run["pull_request"]["head_sha"]
        fake.add_check_run(head, "lint", "completed", "failure", output={"summary": "E501"})
        fake.add_check_run(head, "docs", "completed", "success", log="all good\n")
        fake.add_status(head, "ci/jenkins", "error", "Build #7 broke", "https://ci.example/7")
        await _deliver(api, "check_run", _check_run(head, number))
        await _settled_after_pushes(api, run["id"], 2)
        (prompt,) = [
            e["data"]["text"]
            for e in await _events(api, run["id"], "user.message")
            if e["data"]["author"] == "codeyard"
        ]
        assert "E501" in prompt  # no Actions log: the check's own output stands in
        assert "== ci/jenkins ==\nBuild #7 broke" in prompt  # a failing commit status too
        assert "https://ci.example/7" in prompt and "all good" not in prompt  # only failures

        await _deliver(api, "check_suite", _check_run(head, number, "check_suite"))
        await _deliver(api, "check_run", _check_run("0" * 40, number))  # an old head
        cancelled = _check_run(head, number)
        cancelled["check_run"]["conclusion"] = "cancelled"
        await _deliver(api, "check_run", cancelled)
        assert await eventually(lambda: _all_processed(api), timeout=30)
        assert len(await _events(api, run["id"], "feedback.sent")) == 1
        assert len(await _events(api, run["id"], "pr.updated")) == 4  # all on the timeline

        # A failing commit status (external CI, no pull request named) is matched by its SHA;
        # same head, already handed back: the ledger keeps it at one turn.
        await _deliver(api, "status", {"sha": head, "state": "error", "context": "ci/jenkins"})
        assert await eventually(lambda: _all_processed(api), timeout=30)
        updates = [e["data"]["summary"] for e in await _events(api, run["id"], "pr.updated")]
        assert updates[-1] == "status ci/jenkins: error"
        assert len(await _events(api, run["id"], "feedback.sent")) == 1


async def test_changes_requested_become_the_next_turn_and_the_comments_events(
    fake: FakeGitHub, tmp_path: Path
) -> None:
    async with running_api(_settings(tmp_path)) as api:
        edit = [{"bash": "echo 'def add(a, b): return a + b' >> calc.py && git commit -qam add"}]
        run, bare = await _run_with_pr(api, fake, tmp_path, edit)
        number = run["pull_request"]["number"]
        comments = [
            {"path": "calc.py", "line": 1, "body": "Name this `total`, please."},
            {"path": "calc.py", "line": 3, "body": "Add a test for add()."},
        ]
        review = fake.add_review(
            REPO, number, "octocat", "CHANGES_REQUESTED", body="Close.", comments=comments
        )
        bot = fake.add_review(REPO, number, "linter[bot]", "CHANGES_REQUESTED", body="Bot says")
        for item in (bot, review, review):  # a bot's review, then a person's, twice
            payload = {
                "action": "submitted",
                "review": {**item, "state": "changes_requested"},
                "pull_request": {
                    "number": number,
                    "head": {"sha": run["pull_request"]["head_sha"]},
                },
            }
            await _deliver(api, "pull_request_review", payload)
        run = await _settled_after_pushes(api, run["id"], 2)
        assert "def add" in git(bare, "show", f"refs/heads/{run['branch']}:calc.py")

        shown = [e["data"] for e in await _events(api, run["id"], "pr.review_comment")]
        assert [(c["user"], c["path"], c["line"], c["body"]) for c in shown] == [
            ("octocat", None, None, "Close."),
            ("octocat", "calc.py", 1, "Name this `total`, please."),
            ("octocat", "calc.py", 3, "Add a test for add()."),
        ]
        assert all(
            c["review_id"] == review["id"] and c["state"] == "changes_requested" for c in shown
        )
        (prompt,) = [
            e["data"]["text"]
            for e in await _events(api, run["id"], "user.message")
            if e["data"]["author"] == "codeyard"
        ]
        assert "octocat requested changes on pull request" in prompt
        assert "- calc.py:3: Add a test for add()." in prompt and "Review: Close." in prompt

        # Merged on GitHub: the run is done for good; a message is refused with the reason.
        merged = {"action": "closed", "pull_request": {"number": number, "merged": True}}
        await _deliver(api, "pull_request", merged)

        async def merged_state() -> bool:
            got = (await api.get(f"/api/runs/{run['id']}")).json()
            return bool(got["pull_request"]["state"] == "merged")

        assert await eventually(merged_state, timeout=30)
        refused = await api.post(f"/api/runs/{run['id']}/messages", json={"text": "more"})
        assert refused.status_code == 409, refused.text
        assert "while its pull request is open" in refused.json()["detail"]


async def test_the_poller_hands_a_failing_head_back_without_webhooks(
    fake: FakeGitHub, tmp_path: Path
) -> None:
    async with running_api(_settings(tmp_path, webhooks=False)) as api:
        fix = [{"bash": "echo fixed >> calc.py && git commit -qam fix"}]
        run, _bare = await _run_with_pr(api, fake, tmp_path, fix)
        head = run["pull_request"]["head_sha"]
        # An operator's own message to a completed run with an open PR is a turn too.
        asked = await api.post(f"/api/runs/{run['id']}/messages", json={"text": "tidy up"})
        assert asked.status_code == 202, asked.text
        run = await _settled_after_pushes(api, run["id"], 2)
        assert run["pull_request"]["head_sha"] != head
        head = run["pull_request"]["head_sha"]

        fake.add_check_run(head, "build", "completed", "failure", log="error: E42 broken\n")
        loop = PollLoop(api.services)
        async with httpx.AsyncClient(
            base_url=fake.api_url, headers={"Authorization": "Bearer ghp_loop"}
        ) as client:
            poller = Poller(client, Budget(per_hour=100), loop.report)
            assert await poller.cycle(await loop.refs()) == 1
            run = await _settled_after_pushes(api, run["id"], 3)
        texts = [e["data"]["text"] for e in await _events(api, run["id"], "user.message")]
        assert texts[-1].startswith('The required CI check "build" failed')
        assert "error: E42 broken" in texts[-1]


async def test_a_base_branch_push_rebases_an_idle_run_branch_and_a_conflict_pushes_nothing(
    fake: FakeGitHub, tmp_path: Path
) -> None:
    async with running_api(_settings(tmp_path)) as api:
        run, bare = await _run_with_pr(api, fake, tmp_path, [])
        branch, first_head = run["branch"], run["pull_request"]["head_sha"]
        # Fetches go to the bare "GitHub" too from now on (opening the pull request needed the
        # github.com URL unrewritten: `git remote get-url` applies insteadOf).
        url = f"https://github.com/{REPO}.git"
        git(tmp_path / "loop", "config", f"url.{bare}.insteadOf", url)
        other = tmp_path / "colleague"
        git(tmp_path, "clone", "-q", "-b", "main", str(bare), str(other))

        async def push_main(path: str, content: str) -> str:
            (other / path).write_text(content)
            git(other, "add", path)
            git(other, "commit", "-qm", f"colleague: {path}")
            git(other, "push", "-q", "origin", "main")
            after = git(other, "rev-parse", "HEAD")
            await _deliver(api, "push", {"ref": "refs/heads/main", "after": after})
            return after

        main = await push_main("NOTES.md", "unrelated\n")

        async def rebased() -> bool:
            return len(await _events(api, run["id"], "git.rebased")) == 1

        assert await eventually(rebased, timeout=20)
        remote_head = git(bare, "rev-parse", f"refs/heads/{branch}")
        assert remote_head != first_head
        assert git(bare, "merge-base", main, remote_head) == main  # on top of the new base
        got = (await api.get(f"/api/runs/{run['id']}")).json()
        assert got["status"] == "completed" and got["pull_request"]["head_sha"] == remote_head
        (pushed,) = [
            e["data"] for e in await _events(api, run["id"], "git.pushed") if e["data"]["force"]
        ]
        assert pushed["branch"] == branch  # with lease: only over what Codeyard pushed

        # The base now changes the run's own file: told on the run, nothing rebased or pushed.
        await push_main("calc.py", "x = 2\n")

        async def told() -> bool:
            errors = await _events(api, run["id"], "error")
            return any("needs a rebase" in e["data"]["message"] for e in errors)

        assert await eventually(told, timeout=20)
        assert git(bare, "rev-parse", f"refs/heads/{branch}") == remote_head
        assert len(await _events(api, run["id"], "git.rebased")) == 1
        worktree = Path(next(iter(got["worktrees"].values())))
        assert git(worktree, "rev-parse", "HEAD") == remote_head
        assert git(worktree, "status", "--porcelain") == ""  # nothing half-done in the worktree


async def test_the_poller_sees_a_base_move_without_webhooks_and_rebases_the_idle_branch(
    fake: FakeGitHub, tmp_path: Path
) -> None:
    async with running_api(_settings(tmp_path, webhooks=False)) as api:
        run, bare = await _run_with_pr(api, fake, tmp_path, [])
        branch, first_head = run["branch"], run["pull_request"]["head_sha"]
        url = f"https://github.com/{REPO}.git"
        git(tmp_path / "loop", "config", f"url.{bare}.insteadOf", url)
        loop = PollLoop(api.services)
        async with httpx.AsyncClient(
            base_url=fake.api_url, headers={"Authorization": "Bearer ghp_loop"}
        ) as client:
            poller = Poller(client, Budget(per_hour=100), loop.report)
            # First sight: the base tip is new to the poller, but the branch contains it.
            assert await poller.cycle(await loop.refs()) == 1
            assert await _events(api, run["id"], "git.rebased") == []
            assert git(bare, "rev-parse", f"refs/heads/{branch}") == first_head

            other = tmp_path / "colleague"  # no push webhook: only the poller can see this
            git(tmp_path, "clone", "-q", "-b", "main", str(bare), str(other))
            (other / "NOTES.md").write_text("unrelated\n")
            git(other, "add", "NOTES.md")
            git(other, "commit", "-qm", "colleague: notes")
            git(other, "push", "-q", "origin", "main")
            main = git(other, "rev-parse", "HEAD")
            poller.cycles = 0  # the next cycle reads every pull request (as every tenth does)
            assert await poller.cycle(await loop.refs()) == 1
            (rebased,) = await _events(api, run["id"], "git.rebased")
        assert rebased["data"]["onto"] == "main"
        remote_head = git(bare, "rev-parse", f"refs/heads/{branch}")
        assert remote_head != first_head
        assert git(bare, "merge-base", main, remote_head) == main
        got = (await api.get(f"/api/runs/{run['id']}")).json()
        assert got["status"] == "completed" and got["pull_request"]["head_sha"] == remote_head


async def test_required_checks_gate_the_merge_and_only_their_failures_are_handed_back(
    fake: FakeGitHub, tmp_path: Path
) -> None:
    async with running_api(_settings(tmp_path)) as api:
        fix = [{"bash": "echo fixed >> calc.py && git add -A && git commit -qm fix"}]
        run, _bare = await _run_with_pr(api, fake, tmp_path, fix)
        number, head = run["pull_request"]["number"], run["pull_request"]["head_sha"]
        fake.protect(REPO, "main", ["tests", "ci/jenkins"])
        # A check nobody requires fails: on the timeline, but no turn for the agent.
        fake.add_check_run(head, "lint", "completed", "failure", log="E501 line too long\n")
        await _deliver(api, "check_run", _check_run(head, number))
        assert await eventually(lambda: _all_processed(api), timeout=30)
        assert await _events(api, run["id"], "feedback.sent") == []

        fake.add_check_run(head, "tests", "in_progress")
        fake.add_status(head, "ci/jenkins", "success")
        status = (await api.get(f"/api/runs/{run['id']}/pull-request")).json()
        assert status["required_checks"] == ["tests", "ci/jenkins"]
        assert status["waiting_on"] == ["tests: in_progress"]
        assert {"name": "ci/jenkins", "status": "completed", "conclusion": "success"} in (
            status["checks"]
        )
        refused = await api.post(f"/api/runs/{run['id']}/pull-request/merge", json={})
        assert refused.status_code == 409, refused.text
        assert refused.json()["waiting_on"] == ["tests: in_progress"]
        assert "waits for its required checks (tests: in_progress)" in refused.json()["detail"]
        assert fake.pull(REPO, number)["state"] == "open"

        # The required check fails: one turn, with its log and not the optional one's.
        fake._runs_by_sha[head][-1].update(status="completed", conclusion="failure")
        fake.add_check_run(head, "tests", "completed", "failure", log=FAILING_LOG)
        await _deliver(api, "check_run", _check_run(head, number))
        run = await _settled_after_pushes(api, run["id"], 2)
        (prompt,) = [
            e["data"]["text"]
            for e in await _events(api, run["id"], "user.message")
            if e["data"]["author"] == "codeyard"
        ]
        assert "FAILED tests/test_calc.py::test_add" in prompt and "E501" not in prompt

        new_head = run["pull_request"]["head_sha"]
        assert new_head != head
        fake.add_check_run(new_head, "tests", "completed", "success")
        fake.add_status(new_head, "ci/jenkins", "success")
        status = (await api.get(f"/api/runs/{run['id']}/pull-request")).json()
        assert status["waiting_on"] == []
        merged = await api.post(f"/api/runs/{run['id']}/pull-request/merge", json={})
        assert merged.status_code == 200, merged.text
        assert fake.pull(REPO, number)["merged"] is True
