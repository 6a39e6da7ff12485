"""GitLab merge requests and Gitea/Forgejo pull requests behind the same pull-request host seam
as GitHub (issue 21), against fake forges over real loopback HTTP (tests/support/fake_forges.py).

Real parts: the hosts' httpx calls, git with a real bare "origin" each fake reads branch heads
from, and (end to end) the app over ASGI with SQLite and the script agent in the sandbox, opening
and merging through the same routes a GitHub pull request uses.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from codeyard.config import Settings
from codeyard.domain.errors import BadRequest, Conflict
from codeyard.prs import registry
from codeyard.prs.base import PrConfig
from codeyard.prs.gitea import GiteaRest
from codeyard.prs.gitlab import GitLabRest
from tests.conftest import TOKEN, make_repo, running_api
from tests.support.fake_forges import FakeGitea, FakeGitLab

pytestmark = pytest.mark.anyio


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def _origin(tmp_path: Path, url: str) -> tuple[Path, Path]:
    """A working repository whose ``origin`` is ``url``, pushes going to a real bare repo."""
    bare = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    repo = make_repo(tmp_path / "work")
    git(repo, "remote", "add", "origin", url)
    git(repo, "config", f"url.{bare}.pushInsteadOf", url)
    git(repo, "push", "-q", "origin", "main")
    git(repo, "checkout", "-q", "-b", "feature")
    (repo / "f.txt").write_text("f\n")
    git(repo, "add", "f.txt")
    git(repo, "commit", "-qm", "feature")
    git(repo, "push", "-q", "origin", "feature")
    return repo, bare


async def test_gitlab_merge_requests_open_read_and_merge(tmp_path: Path) -> None:
    project = "team/tools/widget"  # a subgroup: the project id is the encoded path
    remote = f"git@gitlab.example.com:{project}.git"
    _repo, bare = _origin(tmp_path, remote)
    with FakeGitLab("glpat-1", "https://gitlab.example.com") as fake:
        fake.add_repo(project, bare)
        config = PrConfig(gitlab_url="https://gitlab.example.com")
        # The host is picked for the remote's host name, and says which token it lacks.
        with pytest.raises(BadRequest, match="set CODEYARD_GITLAB_TOKEN"):
            await registry.host_for(remote, config)
        config = PrConfig(gitlab_url="https://gitlab.example.com", gitlab_token="glpat-1")
        host = await registry.host_for(remote, config)
        assert isinstance(host, GitLabRest)
        host.api_url = fake.url + "/api/v4"  # the fake listens on loopback, not that name

        pr = await host.create(remote, "feature", "main", "Add f", "why", True)
        assert pr.number == 1 and pr.state == "open" and pr.draft
        assert pr.url == f"https://gitlab.example.com/{project}/-/merge_requests/1"
        created = next(r for r in fake.requests if r.method == "POST")
        assert created.path == "/api/v4/projects/team%2Ftools%2Fwidget/merge_requests"
        assert created.json["title"] == "Draft: Add f" and created.headers["private-token"]
        with pytest.raises(Conflict, match="already open"):
            await host.create(remote, "feature", "main", "Again", "", False)

        head = git(bare, "rev-parse", "refs/heads/feature")
        fake.add_pipeline(head, [("test", "failed", False), ("lint", "failed", True)])
        fake.approve(project, 1, "maintainer")
        got = await host.get(remote, 1)
        assert got.head_sha == head and got.review_state == "approved" and got.mergeable
        assert [c.to_dict() for c in got.checks] == [
            {"name": "test", "status": "completed", "conclusion": "failure"},
            {"name": "lint", "status": "completed", "conclusion": "neutral"},  # allowed to fail
        ]

        with pytest.raises(BadRequest, match="choose 'merge' or 'squash'"):
            await host.merge(remote, 1, "rebase", None)
        with pytest.raises(Conflict, match="head moved"):
            await host.merge(remote, 1, "merge", "0" * 40)
        fake.update_pull(project, 1, detailed_merge_status="ci_must_pass")
        with pytest.raises(Conflict, match="GitLab will not merge"):
            await host.merge(remote, 1, "merge", head)
        assert fake.pull(project, 1)["state"] == "opened"  # nothing merged by the refusals
        fake.update_pull(project, 1, detailed_merge_status="mergeable")
        await host.merge(remote, 1, "squash", head)
        assert fake.pull(project, 1)["squash"] is True
        assert (await host.get(remote, 1)).state == "merged"

        host.token = "wrong"
        with pytest.raises(BadRequest, match=r"rejected the token .* CODEYARD_GITLAB_TOKEN"):
            await host.get(remote, 1)


async def test_gitea_pull_requests_open_read_and_merge(tmp_path: Path) -> None:
    remote = "https://codeberg.org/octo/widget.git"
    _repo, bare = _origin(tmp_path, remote)
    with FakeGitea("gt-1") as fake:
        fake.add_repo("octo/widget", bare)
        config = PrConfig(gitea_url="https://codeberg.org", gitea_token="gt-1")
        host = await registry.host_for(remote, config)
        assert isinstance(host, GiteaRest)
        host.api_url = fake.url + "/api/v1"

        pr = await host.create(remote, "feature", "main", "Add f", "why", True)
        assert (pr.number, pr.state, pr.draft) == (1, "open", True)
        assert pr.url == "https://codeberg.org/octo/widget/pulls/1"
        with pytest.raises(Conflict, match="already open"):
            await host.create(remote, "feature", "main", "Again", "", False)

        head = git(bare, "rev-parse", "refs/heads/feature")
        fake.add_status(head, "ci/build", "success")
        fake.add_status(head, "ci/test", "pending")
        fake.add_review("octo/widget", 1, "alice", "APPROVED")
        fake.add_review("octo/widget", 1, "bob", "REQUEST_CHANGES")
        got = await host.get(remote, 1)
        assert got.head_sha == head and got.review_state == "changes_requested"
        assert [(c.name, c.status, c.conclusion) for c in got.checks] == [
            ("ci/build", "completed", "success"),
            ("ci/test", "in_progress", None),
        ]

        with pytest.raises(Conflict, match="head moved"):
            await host.merge(remote, 1, "merge", "0" * 40)
        fake.update_pull("octo/widget", 1, mergeable=False)
        with pytest.raises(Conflict, match="Gitea will not merge"):
            await host.merge(remote, 1, "merge", head)
        fake.update_pull("octo/widget", 1, mergeable=True)
        await host.merge(remote, 1, "rebase", head)
        assert fake.pull("octo/widget", 1)["merge_style"] == "rebase"
        assert (await host.get(remote, 1)).state == "merged"

        host.token = "wrong"
        with pytest.raises(BadRequest, match="CODEYARD_GITEA_TOKEN"):
            await host.get(remote, 1)


async def test_no_forge_for_a_remote_names_every_setting() -> None:
    config = PrConfig(gitea_url=None)
    with pytest.raises(BadRequest, match="no configured forge serves it") as caught:
        await registry.host_for("git@git.example.org:a/b.git", config)
    for setting in ("CODEYARD_GITHUB_API_URL", "CODEYARD_GITLAB_URL", "CODEYARD_GITEA_URL"):
        assert setting in caught.value.detail


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="runs need the sandbox")
@pytest.mark.parametrize("forge", ["gitlab", "gitea"])
async def test_a_run_opens_and_merges_through_the_same_routes_on_either_forge(
    forge: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake: FakeGitLab | FakeGitea = FakeGitLab("tok-1") if forge == "gitlab" else FakeGitea("tok-1")
    with fake:
        # The forge's web URL is the fake itself: remotes name 127.0.0.1, pushes go to the bare.
        upper = forge.upper()
        monkeypatch.setenv(f"CODEYARD_{upper}_URL", fake.url)
        monkeypatch.setenv(f"CODEYARD_{upper}_TOKEN", "tok-1")
        fake.web_url = fake.url
        url = f"{fake.url}/acme/app.git"
        bare = tmp_path / "origin.git"
        subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
        repo = make_repo(tmp_path / "app")
        git(repo, "remote", "add", "origin", url)
        git(repo, "config", f"url.{bare}.pushInsteadOf", url)
        git(repo, "push", "-q", "origin", "main")
        fake.add_repo("acme/app", bare)
        async with running_api(Settings(data_dir=tmp_path / "data", admin_token=TOKEN)) as api:
            scenario = {"steps": [{"write": {"path": "calc.py", "content": "x = 1\n"}}]}
            body: dict[str, Any] = {
                "prompt": "Add calc",
                "repo_path": str(repo),
                "provider": "script",
                "agent_options": {"scenario": scenario},
            }
            run = (await api.post("/api/runs", json=body)).json()
            await api.wait_status(run["id"], "review", timeout=60)
            done = await api.post(f"/api/runs/{run['id']}/resolve", json={"action": "create_pr"})
            assert done.status_code == 200, done.text
            stored, branch = done.json()["pull_request"], done.json()["branch"]
            assert stored["host"] == forge and stored["number"] == 1
            assert stored["head_sha"] == git(bare, "rev-parse", f"refs/heads/{branch}")

            status = (await api.get(f"/api/runs/{run['id']}/pull-request")).json()
            assert status["state"] == "open" and status["base"] == "main"
            assert status["required_checks"] is None  # the forge decides when merging
            merged = await api.post(
                f"/api/runs/{run['id']}/pull-request/merge", json={"method": "squash"}
            )
            assert merged.status_code == 200, merged.text
            assert merged.json()["state"] == "merged"
            events = (
                await api.get(f"/api/runs/{run['id']}/events", params={"types": "pr.merged"})
            ).json()["data"]
            assert [e["data"]["method"] for e in events] == ["squash"]
