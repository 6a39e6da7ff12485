"""Diff, checkpoints and landing through the API, with real repositories (SQLite and PostgreSQL)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api
from tests.support.fake_github import FakeGitHub

pytestmark = pytest.mark.anyio


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


async def run_to_review(
    api: Api, repo: Path, *steps: dict[str, Any], **options: Any
) -> dict[str, Any]:
    body = {
        "prompt": "Improve greeting",
        "repo_path": str(repo),
        "provider": "script",
        "agent_options": {"scenario": {"steps": list(steps)}, **options},
    }
    run = (await api.post("/api/runs", json=body)).json()
    return await api.wait_status(run["id"], "review")


async def test_diff_shows_every_kind_of_change(api: Api, git_repo: Path) -> None:
    run = await run_to_review(
        api,
        git_repo,
        {"write": {"path": "new.txt", "content": "new\n"}},
        {"bash": "printf '# demo\\nmore\\n' > README.md && git commit -qam edit"},
        {"bash": "echo untracked > loose.txt"},
    )
    text = (await api.get(f"/api/runs/{run['id']}/diff")).text
    assert "+++ b/new.txt" in text and "+more" in text and "+++ b/loose.txt" in text
    files = (await api.get(f"/api/runs/{run['id']}/diff?format=json")).json()["data"]
    by_path = {f["path"]: f for f in files}
    assert by_path["new.txt"]["status"] == "added" and by_path["README.md"]["status"] == "modified"
    assert by_path["README.md"]["additions"] == 1 and by_path["README.md"]["hunks"]
    only = (await api.get(f"/api/runs/{run['id']}/diff?format=json&path=new.txt")).json()["data"]
    assert [f["path"] for f in only] == ["new.txt"]
    stats = (await api.get(f"/api/runs/{run['id']}/diff/stats")).json()
    assert stats == {"files": 3, "insertions": 3, "deletions": 0} == run["diff_stats"]
    changed = [
        e["data"]
        for e in (await api.get(f"/api/runs/{run['id']}/events?types=file.changed")).json()["data"]
    ]
    assert {(c["path"], c["change"]) for c in changed} == {
        ("new.txt", "added"),
        ("README.md", "modified"),
        ("loose.txt", "added"),
    }


async def test_checkpoints_restore_and_compare(api: Api, git_repo: Path) -> None:
    run = await run_to_review(
        api,
        git_repo,
        {"write": {"path": "a.txt", "content": "one\n"}},
        on_message=[
            {"write": {"path": "a.txt", "content": "two\n"}},
            {"write": {"path": "b.txt", "content": "b\n"}},
        ],
    )
    await api.post(f"/api/runs/{run['id']}/messages", json={"text": "change it"})
    await api.wait_status(run["id"], "review")
    points = (await api.get(f"/api/runs/{run['id']}/checkpoints")).json()["data"]
    assert [(p["number"], p["kind"], p["turn"]) for p in points] == [(1, "turn", 1), (2, "turn", 2)]
    worktree = Path(next(iter((await api.get(f"/api/runs/{run['id']}")).json()["base_commits"])))
    assert worktree  # (ids only; the files are checked below)
    compare = (await api.get(f"/api/checkpoints/{points[0]['id']}/diff?against=current")).text
    assert "-two" in compare and "+one" in compare and "b.txt" in compare
    restored = (await api.post(f"/api/checkpoints/{points[0]['id']}/restore")).json()
    assert restored["undo_checkpoint"]["kind"] == "pre_restore"
    wt = next(Path(api.services.settings.worktree_root).rglob("a.txt"))
    assert wt.read_text() == "one\n" and not (wt.parent / "b.txt").exists()
    # The restore is itself undoable.
    await api.post(f"/api/checkpoints/{restored['undo_checkpoint']['id']}/restore")
    assert wt.read_text() == "two\n" and (wt.parent / "b.txt").read_text() == "b\n"
    manual = await api.post(f"/api/runs/{run['id']}/checkpoints", json={"description": "mine"})
    assert manual.status_code == 201 and manual.json()["kind"] == "manual"
    base = (
        await api.get(f"/api/checkpoints/{manual.json()['id']}/diff?against=base&format=json")
    ).json()
    assert {f["path"] for f in base["data"]} == {"a.txt", "b.txt"}
    assert git(git_repo, "status", "--porcelain") == ""


async def test_merge_fast_forwards_and_the_clean_checkout_follows(api: Api, git_repo: Path) -> None:
    run = await run_to_review(
        api,
        git_repo,
        {"write": {"path": "feature.txt", "content": "f\n"}},
        {"say": "Added the feature"},
    )
    resp = await api.post(f"/api/runs/{run['id']}/resolve", json={"action": "merge"})
    assert resp.status_code == 200, resp.text
    done = resp.json()
    assert done["status"] == "completed" and done["resolution"] == "merged"
    assert (git_repo / "feature.txt").read_text() == "f\n"  # the user's checkout followed
    assert git(git_repo, "status", "--porcelain") == ""
    assert git(git_repo, "rev-parse", "main") == git(git_repo, "rev-parse", done["branch"])
    assert "Improve greeting" in git(git_repo, "log", "-1", "--format=%B", "main")
    merged = (await api.get(f"/api/runs/{run['id']}/events?types=git.merged")).json()["data"]
    assert merged[0]["data"]["target"] == "main" and merged[0]["data"]["strategy"] == "merge"


async def test_squash_with_a_message(api: Api, git_repo: Path) -> None:
    run = await run_to_review(
        api,
        git_repo,
        {"write": {"path": "s.txt", "content": "s\n"}},
        {"bash": "git add -A && git commit -qm wip1 && echo x >> s.txt"},
    )
    git(git_repo, "commit", "-q", "--allow-empty", "-m", "moved on")
    before = git(git_repo, "rev-parse", "main")
    done = (
        await api.post(
            f"/api/runs/{run['id']}/resolve", json={"action": "squash", "message": "Add s"}
        )
    ).json()
    assert done["resolution"] == "merged"
    assert git(git_repo, "rev-parse", "main~1") == before
    assert git(git_repo, "log", "-1", "--format=%s", "main") == "Add s"
    assert (git_repo / "s.txt").read_text() == "s\nx\n"


async def test_conflict_is_409_with_paths_and_changes_nothing(api: Api, git_repo: Path) -> None:
    run = await run_to_review(api, git_repo, {"write": {"path": "README.md", "content": "agent\n"}})
    (git_repo / "README.md").write_text("user\n")
    git(git_repo, "commit", "-qam", "user change")
    state = (git(git_repo, "rev-parse", "main"), (git_repo / "README.md").read_text())
    wt = next(Path(api.services.settings.worktree_root).rglob("README.md")).parent
    branch_before = git(wt, "rev-parse", "HEAD")
    resp = await api.post(f"/api/runs/{run['id']}/resolve", json={"action": "merge"})
    assert resp.status_code == 409 and resp.json()["conflicts"] == ["README.md"]
    assert (git(git_repo, "rev-parse", "main"), (git_repo / "README.md").read_text()) == state
    assert (
        git(wt, "rev-parse", "HEAD") == branch_before
        and (wt / "README.md").read_text() == "agent\n"
    )
    assert (await api.get(f"/api/runs/{run['id']}")).json()["status"] == "review"
    # The agent can finish the merge itself.
    merged = (
        await api.post(f"/api/runs/{run['id']}/resolve", json={"action": "agent_merge"})
    ).json()
    assert merged["status"] == "queued"
    await api.wait_status(run["id"], "review")
    started = (await api.get(f"/api/runs/{run['id']}/events?types=turn.started")).json()["data"]
    assert started[-1]["data"]["source"] == "agent_merge"
    assert "<<<<<<<" in (wt / "README.md").read_text()


async def test_dirty_user_checkout_blocks_the_merge(api: Api, git_repo: Path) -> None:
    run = await run_to_review(api, git_repo, {"write": {"path": "README.md", "content": "agent\n"}})
    (git_repo / "README.md").write_text("my unsaved work\n")
    resp = await api.post(f"/api/runs/{run['id']}/resolve", json={"action": "merge"})
    assert resp.status_code == 409 and "commit or stash" in resp.json()["detail"]
    assert (git_repo / "README.md").read_text() == "my unsaved work\n"
    assert (await api.get(f"/api/runs/{run['id']}")).json()["status"] == "review"


async def test_nothing_to_land_unknown_target_and_wrong_status(api: Api, git_repo: Path) -> None:
    run = await run_to_review(api, git_repo, {"say": "nothing to change"})
    nothing = await api.post(f"/api/runs/{run['id']}/resolve", json={"action": "merge"})
    assert nothing.status_code == 409 and "no changes" in nothing.json()["detail"].lower()
    run2 = await run_to_review(api, git_repo, {"write": {"path": "t.txt", "content": "t"}})
    unknown = await api.post(
        f"/api/runs/{run2['id']}/resolve", json={"action": "merge", "target_branch": "nope"}
    )
    assert unknown.status_code == 400 and "nope" in unknown.json()["detail"]
    bad = await api.post(f"/api/runs/{run2['id']}/resolve", json={"action": "teleport"})
    assert bad.status_code == 422
    draft = (
        await api.post(
            "/api/runs",
            json={"prompt": "d", "repo_path": str(git_repo), "provider": "script", "draft": True},
        )
    ).json()
    wrong = await api.post(f"/api/runs/{draft['id']}/resolve", json={"action": "merge"})
    assert wrong.status_code == 409 and wrong.json()["current_status"] == "draft"


async def test_discard_removes_worktree_and_branch(api: Api, git_repo: Path) -> None:
    run = await run_to_review(api, git_repo, {"write": {"path": "d.txt", "content": "d"}})
    done = (await api.post(f"/api/runs/{run['id']}/resolve", json={"action": "discard"})).json()
    assert done["status"] == "completed" and done["resolution"] == "discarded"
    assert git(git_repo, "branch", "--list", run["branch"]) == ""
    assert not list(Path(api.services.settings.worktree_root).rglob("d.txt"))
    assert (await api.get(f"/api/runs/{run['id']}/diff")).status_code == 409


async def test_commit_push_rename_and_branches(api: Api, git_repo: Path, tmp_path: Path) -> None:
    run = await run_to_review(api, git_repo, {"write": {"path": "c.txt", "content": "c"}})
    no_remote = await api.post(f"/api/runs/{run['id']}/push")
    assert no_remote.status_code == 400 and "git -C" in no_remote.json()["detail"]
    committed = (await api.post(f"/api/runs/{run['id']}/commit", json={"message": "Add c"})).json()
    sha = next(iter(committed["commits"].values()))
    assert git(git_repo, "log", "-1", "--format=%s", run["branch"]) == "Add c"
    again = await api.post(f"/api/runs/{run['id']}/commit")
    assert again.status_code == 409
    bare = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    git(git_repo, "remote", "add", "origin", str(bare))
    pushed = await api.post(f"/api/runs/{run['id']}/push", json={})
    assert pushed.status_code == 200
    assert git(bare, "rev-parse", run["branch"]) == sha
    invalid = await api.post(f"/api/runs/{run['id']}/rename-branch", json={"name": "bad..name"})
    assert invalid.status_code == 422
    renamed = (
        await api.post(f"/api/runs/{run['id']}/rename-branch", json={"name": "feature/c"})
    ).json()
    assert renamed["branch"] == "feature/c" and git(git_repo, "rev-parse", "feature/c") == sha
    listed = (await api.get(f"/api/projects/{run['project_id']}/branches")).json()["data"]
    mine = next(b for b in listed if b["name"] == "feature/c")
    assert mine["run_id"] == run["id"] and mine["ahead"] == 1 and mine["behind"] == 0


async def test_create_pr_pushes_and_opens_it(
    api: Api, git_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GitHub cannot be reached from here: a local fake GitHub server plays its REST API, and the
    push goes to a real bare repository (git's pushInsteadOf maps the github.com URL to it)."""
    bare = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    url = "https://github.com/acme/demo.git"
    git(git_repo, "remote", "add", "origin", url)
    git(git_repo, "config", f"url.{bare}.pushInsteadOf", url)
    git(git_repo, "push", "-q", "origin", "main")
    run = await run_to_review(
        api, git_repo, {"write": {"path": "pr.txt", "content": "p"}}, {"say": "Ready for review"}
    )
    for var in ("CODEYARD_GITHUB_TOKEN", "GITHUB_TOKEN", "GH_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    only_git = tmp_path / "only-git"
    only_git.mkdir()
    (only_git / "git").symlink_to(shutil.which("git") or "/usr/bin/git")
    monkeypatch.setenv("PATH", str(only_git))  # git, but no `gh` either
    no_token = await api.post(f"/api/runs/{run['id']}/resolve", json={"action": "create_pr"})
    assert no_token.status_code == 400 and "CODEYARD_GITHUB_TOKEN" in no_token.json()["detail"]
    monkeypatch.undo()
    assert git(bare, "branch", "--format=%(refname:short)") == "main"  # nothing was pushed
    with FakeGitHub("ghp_test") as fake:
        fake.add_repo("acme/demo", bare)
        monkeypatch.setenv("CODEYARD_GITHUB_TOKEN", "ghp_test")
        monkeypatch.setenv("CODEYARD_GITHUB_API_URL", fake.api_url)
        monkeypatch.setenv("CODEYARD_GITHUB_WEB_URL", "https://github.com")
        resp = await api.post(
            f"/api/runs/{run['id']}/resolve",
            json={"action": "create_pr", "title": "Add pr.txt", "draft": True},
        )
        assert resp.status_code == 200, resp.text
        done = resp.json()
        assert done["resolution"] == "pr_created" and done["pull_request"]["number"] == 1
        created = next(r for r in fake.requests if r.method == "POST")
        assert created.json["head"] == run["branch"] and created.json["base"] == "main"
        assert created.json["title"] == "Add pr.txt" and created.json["draft"] is True
        assert created.json["body"] == "Ready for review"
        assert git(bare, "rev-parse", run["branch"]) == git(git_repo, "rev-parse", run["branch"])
        fake.add_review("acme/demo", 1, "reviewer", "APPROVED")
        shown = (await api.get(f"/api/runs/{run['id']}/pull-request")).json()
        assert shown["state"] == "open" and shown["review_state"] == "approved"
