"""Pull requests: GitHub's REST API and the ``gh`` CLI behind the host registry.

GitHub cannot be reached from where these tests run, so its API is played by a local HTTP server
(``tests/support/fake_github.py``) that implements the four endpoints Codeyard calls; requests go
over real HTTP and are checked there (token, body, path prefix). Pushes go to a real bare
repository, and the fake opens pull requests only from branches that really arrived there. ``gh``
is not installed here either: its tests put a small script named ``gh`` on PATH that records its
arguments and prints what ``gh`` prints.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from codeyard.domain.errors import BadRequest, Conflict
from codeyard.prs import registry
from codeyard.prs.base import PrConfig, Remote, parse_remote, redact_remote
from codeyard.prs.gh import GhCli
from codeyard.prs.github import GitHubRest
from codeyard.workspace.branches import push
from tests.conftest import make_repo
from tests.support.fake_github import FakeGitHub
from tests.support.server import free_port

pytestmark = pytest.mark.anyio

TOKEN = "ghp_test_token"
REPO = "octo/widgets"
REMOTE = "https://github.com/octo/widgets.git"


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub(TOKEN) as server:
        server.add_repo(REPO)
        yield server


@pytest.fixture
def config(fake: FakeGitHub) -> PrConfig:
    """Our fake stands in for api.github.com; remotes stay on github.com."""
    return PrConfig(TOKEN, fake.api_url, github_web_url="https://github.com")


@pytest.fixture
def no_gh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout.strip()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://github.com/octo/widgets", Remote("github.com", "octo/widgets")),
        ("https://github.com/octo/widgets.git", Remote("github.com", "octo/widgets")),
        ("https://x-access-token:s3cret@GitHub.com/octo/widgets.git/", Remote("github.com", REPO)),
        ("git@github.com:octo/widgets.git", Remote("github.com", "octo/widgets")),
        ("github.com:octo/widgets", Remote("github.com", "octo/widgets")),
        ("ssh://git@github.com/octo/widgets.git", Remote("github.com", "octo/widgets")),
        ("ssh://git@github.com:22/octo/widgets.git", Remote("github.com", "octo/widgets")),
        ("https://ghe.example.com/octo/widgets.git", Remote("ghe.example.com", "octo/widgets")),
        ("git@gitlab.com:group/sub/repo.git", Remote("gitlab.com", "group/sub/repo")),
        ("/srv/git/widgets.git", None),
        ("../widgets", None),
        ("file:///srv/git/widgets.git", None),
        ("C:/repos/widgets", None),
        ("https://github.com/", None),
    ],
)
def test_parse_remote(url: str, expected: Remote | None) -> None:
    assert parse_remote(url) == expected


@pytest.mark.parametrize(
    ("api_url", "web_host"),
    [
        ("https://api.github.com", "github.com"),
        ("https://ghe.example.com/api/v3", "ghe.example.com"),
        ("https://ghe.example.com/api/v3/", "ghe.example.com"),
        ("https://api.acme.ghe.com", "acme.ghe.com"),
    ],
)
def test_web_host_follows_the_api_url(api_url: str, web_host: str) -> None:
    assert PrConfig("t", api_url).github_web_host == web_host
    host = GitHubRest(PrConfig("t", api_url))
    assert host.matches(f"git@{web_host}:octo/widgets.git")
    assert host.matches(f"https://{web_host}/octo/widgets") is True
    assert not host.matches("https://elsewhere.example/octo/widgets")


def test_config_from_env_and_redaction() -> None:
    env = {"GITHUB_TOKEN": "b", "GH_TOKEN": "c", "CODEYARD_GITHUB_API_URL": "https://h/api/v3/"}
    assert PrConfig.from_env(env) == PrConfig("b", "https://h/api/v3")
    assert PrConfig.from_env({"CODEYARD_GITHUB_TOKEN": "a", **env}).github_token == "a"
    assert PrConfig.from_env({"CODEYARD_GITHUB_TOKEN": " ", "GH_TOKEN": "c"}).github_token == "c"
    assert PrConfig.from_env({}) == PrConfig(None, "https://api.github.com")
    assert redact_remote("https://u:tok@github.com/o/r.git") == "https://github.com/o/r.git"
    assert redact_remote("https://tok@github.com/o/r.git") == "https://github.com/o/r.git"
    assert redact_remote("git@github.com:o/r.git") == "git@github.com:o/r.git"


async def test_create_sends_the_fields_and_the_token(fake: FakeGitHub, config: PrConfig) -> None:
    host = await registry.host_for(REMOTE, config)
    assert host.name == "github"
    pr = await host.create(REMOTE, "codeyard/1-fix", "main", "Fix it", "Body text", True)

    sent = fake.requests[-1]
    assert (sent.method, sent.path) == ("POST", "/repos/octo/widgets/pulls")
    assert sent.json == {
        "title": "Fix it",
        "head": "codeyard/1-fix",
        "base": "main",
        "body": "Body text",
        "draft": True,
    }
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"
    assert sent.headers["accept"] == "application/vnd.github+json"
    assert sent.headers["x-github-api-version"] == "2022-11-28"
    assert pr.to_dict() == {
        "url": "https://github.com/octo/widgets/pull/1",
        "number": 1,
        "state": "open",
        "draft": True,
        "title": "Fix it",
        "head": "codeyard/1-fix",
        "base": "main",
        "checks": [],
        "review_state": None,
        "head_sha": fake.pull("octo/widgets", 1)["head"]["sha"],
        "mergeable": True,
        "required_checks": None,  # a created pull is not read again: protection unread
        "waiting_on": [],
    }


async def test_get_folds_checks_and_reviews(fake: FakeGitHub, config: PrConfig) -> None:
    host = GitHubRest(config, page_size=2)  # small pages: the Link header must be followed
    pr = await host.create(REMOTE, "feature", "main", "T", "", False)
    sha = fake.pull(REPO, pr.number)["head"]["sha"]
    fake.add_check_run(sha, "lint", "completed", "success")
    fake.add_check_run(sha, "tests", "in_progress")
    fake.add_check_run("0" * 40, "other commit", "completed", "failure")
    for user, state in [
        ("ann", "CHANGES_REQUESTED"),
        ("bob", "APPROVED"),
        ("ann", "APPROVED"),  # ann's latest verdict replaces her change request
        ("bob", "COMMENTED"),  # a later comment does not undo bob's approval
        ("cy", "PENDING"),  # an unsubmitted draft review counts for nothing
    ]:
        fake.add_review(REPO, pr.number, user, state)

    got = await host.get(REMOTE, pr.number)
    assert got.review_state == "approved"
    assert [c.to_dict() for c in got.checks] == [
        {"name": "lint", "status": "completed", "conclusion": "success"},
        {"name": "tests", "status": "in_progress", "conclusion": None},
    ]
    pages = [r.query.get("page") for r in fake.requests if r.path.endswith("/reviews")]
    assert pages == [None, ["2"], ["3"]]

    fake.add_review(REPO, pr.number, "dee", "CHANGES_REQUESTED")
    assert (await host.get(REMOTE, pr.number)).review_state == "changes_requested"
    fake.add_review(REPO, pr.number, "dee", "DISMISSED")
    assert (await host.get(REMOTE, pr.number)).review_state == "approved"


@pytest.mark.parametrize(
    ("reviews", "requested", "expected"),
    [
        ([], [], None),
        ([], [{"login": "ann"}], "pending"),
        ([("ann", "COMMENTED")], [{"login": "bob"}], "commented"),
        ([("ann", "APPROVED"), ("bob", "CHANGES_REQUESTED")], [], "changes_requested"),
        ([("ann", "CHANGES_REQUESTED"), ("ann", "DISMISSED")], [], None),
    ],
)
async def test_review_state(
    fake: FakeGitHub,
    config: PrConfig,
    reviews: list[tuple[str, str]],
    requested: list[dict[str, str]],
    expected: str | None,
) -> None:
    host = GitHubRest(config)
    pr = await host.create(REMOTE, "feature", "main", "T", "", False)
    fake.update_pull(REPO, pr.number, requested_reviewers=requested)
    for user, state in reviews:
        fake.add_review(REPO, pr.number, user, state)
    assert (await host.get(REMOTE, pr.number)).review_state == expected


async def test_merged_and_closed_states(fake: FakeGitHub, config: PrConfig) -> None:
    host = GitHubRest(config)
    first = await host.create(REMOTE, "one", "main", "One", "", False)
    second = await host.create(REMOTE, "two", "main", "Two", "", False)
    fake.update_pull(REPO, first.number, merged=True)
    fake.update_pull(REPO, second.number, state="closed")
    assert (await host.get(REMOTE, first.number)).state == "merged"
    assert (await host.get(REMOTE, second.number)).state == "closed"


async def test_enterprise_base_url_uses_the_api_v3_prefix() -> None:
    with FakeGitHub(TOKEN, api_prefix="/api/v3", web_url="https://ghe.local") as fake:
        fake.add_repo(REPO)
        config = PrConfig(TOKEN, fake.api_url)  # http://127.0.0.1:PORT/api/v3
        remote = "git@127.0.0.1:octo/widgets.git"
        host = await registry.host_for(remote, config)
        pr = await host.create(remote, "feature", "main", "T", "", False)
        assert (await host.get(remote, pr.number)).url == "https://ghe.local/octo/widgets/pull/1"
        assert {r.path.split("/repos/")[0] for r in fake.requests} == {"/api/v3"}
        with pytest.raises(BadRequest, match="no configured forge serves it"):
            await registry.host_for(REMOTE, config)  # github.com is not this server


async def test_no_token_and_no_gh_names_the_setting(no_gh: None) -> None:
    with pytest.raises(BadRequest) as caught:
        await registry.host_for(REMOTE, PrConfig.from_env({}))
    detail = caught.value.detail
    assert detail.startswith("No GitHub token configured: set CODEYARD_GITHUB_TOKEN")
    assert "`gh auth login`" in detail and "not on the server's PATH" in detail


async def test_a_remote_elsewhere_is_refused_by_name(config: PrConfig) -> None:
    for remote in ("git@git.example.org:octo/widgets.git", "/srv/git/widgets.git"):
        with pytest.raises(BadRequest, match="no configured forge serves it") as caught:
            await registry.host_for(remote, config)
        assert remote in caught.value.detail
    with pytest.raises(BadRequest, match="does not name a GitHub repository"):
        await GitHubRest(config).create("https://github.com/octo", "a", "main", "T", "", False)


async def test_github_errors_become_clear_problems(fake: FakeGitHub, config: PrConfig) -> None:
    host = GitHubRest(config)
    await host.create(REMOTE, "feature", "main", "T", "", False)
    with pytest.raises(Conflict, match=r"already open.*A pull request already exists"):
        await host.create(REMOTE, "feature", "main", "Again", "", False)

    wrong = GitHubRest(PrConfig("ghp_wrong", fake.api_url, "https://github.com"))
    with pytest.raises(BadRequest, match=r"rejected the token .*CODEYARD_GITHUB_TOKEN"):
        await wrong.get(REMOTE, 1)
    with pytest.raises(BadRequest, match="found no repository octo/missing"):
        await host.create("git@github.com:octo/missing.git", "f", "main", "T", "", False)
    with pytest.raises(BadRequest, match="no pull request #99 in octo/widgets"):
        await host.get(REMOTE, 99)
    with pytest.raises(BadRequest, match="head missing_field"):
        await host.create(REMOTE, "", "main", "T", "", False)


async def test_unreachable_and_slow_github(fake: FakeGitHub) -> None:
    closed = PrConfig(TOKEN, f"http://127.0.0.1:{free_port()}", "https://github.com")
    with pytest.raises(BadRequest, match="could not be reached"):
        await GitHubRest(closed).get(REMOTE, 1)
    fake.delay = 0.5
    slow = GitHubRest(PrConfig(TOKEN, fake.api_url, "https://github.com"), timeout=0.1)
    with pytest.raises(BadRequest, match=r"did not answer within 0\.1s"):
        await slow.get(REMOTE, 1)


async def test_push_to_a_real_bare_repository_then_open_the_pr(
    tmp_path: Path, fake: FakeGitHub, config: PrConfig
) -> None:
    bare = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    repo = make_repo(tmp_path / "work")
    git(repo, "remote", "add", "origin", str(bare))
    git(repo, "push", "-q", "origin", "main")
    git(repo, "switch", "-q", "-c", "codeyard/7-feature")
    (repo / "feature.txt").write_text("new\n")
    git(repo, "add", "feature.txt")
    git(repo, "commit", "-q", "-m", "feature")
    fake.add_repo(REPO, bare=bare)  # the fake sees what arrived in the bare repository
    host = await registry.host_for(REMOTE, config)

    with pytest.raises(BadRequest, match="head invalid"):  # not pushed yet
        await host.create(REMOTE, "codeyard/7-feature", "main", "Feature", "", False)
    await push(repo, "codeyard/7-feature")
    pr = await host.create(REMOTE, "codeyard/7-feature", "main", "Feature", "Adds it.", False)

    head = git(repo, "rev-parse", "codeyard/7-feature")
    assert git(bare, "rev-parse", "refs/heads/codeyard/7-feature") == head
    assert fake.pull(REPO, pr.number)["head"]["sha"] == head
    assert (pr.state, pr.head, pr.base) == ("open", "codeyard/7-feature", "main")
    with pytest.raises(BadRequest, match="No commits between main and main"):
        await host.create(REMOTE, "main", "main", "Nothing", "", False)


FAKE_GH = """#!{python}
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_GH_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
if args[:2] == ["auth", "status"]:
    if os.environ.get("FAKE_GH_LOGGED_OUT"):
        sys.exit("You are not logged into any GitHub hosts. To log in, run: gh auth login")
    print("github.com\\n  Logged in to github.com account octo")
elif args[:2] == ["pr", "create"]:
    print("https://github.com/octo/widgets/pull/7")
elif args[:2] == ["pr", "view"]:
    print(json.dumps({{
        "url": "https://github.com/octo/widgets/pull/7", "number": 7, "state": "MERGED",
        "isDraft": False, "title": "Via gh", "headRefName": "feature", "baseRefName": "main",
        "statusCheckRollup": [
            {{"__typename": "CheckRun", "name": "tests", "status": "COMPLETED",
              "conclusion": "SUCCESS"}},
            {{"__typename": "StatusContext", "context": "ci/legacy", "state": "PENDING"}},
        ],
        "reviews": [{{"author": {{"login": "ann"}}, "state": "APPROVED"}}],
        "reviewRequests": [], "reviewDecision": "APPROVED",
        "headRefOid": "0123456789abcdef0123456789abcdef01234567", "mergeable": "CONFLICTING",
    }}))
else:
    sys.exit("unexpected: " + " ".join(args))
"""


@pytest.fixture
def fake_gh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``gh`` on PATH that logs its arguments (one JSON list per line) to the returned file."""
    bin_dir = tmp_path / "gh-bin"
    bin_dir.mkdir()
    script = bin_dir / "gh"
    script.write_text(FAKE_GH.format(python=sys.executable))
    script.chmod(0o755)
    log = tmp_path / "gh.log"
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("FAKE_GH_LOG", str(log))
    return log


async def test_gh_is_used_without_a_token(fake_gh: Path) -> None:
    host = await registry.host_for(REMOTE, PrConfig(None))
    assert isinstance(host, GhCli)
    pr = await host.create(REMOTE, "feature", "main", "Via gh", "Body", True)
    calls = [json.loads(line) for line in fake_gh.read_text().splitlines()]
    assert calls[0] == ["auth", "status", "--hostname", "github.com"]
    assert calls[1] == [
        "pr",
        "create",
        "--repo",
        "github.com/octo/widgets",
        "--head",
        "feature",
        "--base",
        "main",
        "--title",
        "Via gh",
        "--body",
        "Body",
        "--draft",
    ]
    assert calls[2][:5] == ["pr", "view", "7", "--repo", "github.com/octo/widgets"]
    assert pr.to_dict() == {
        "url": "https://github.com/octo/widgets/pull/7",
        "number": 7,
        "state": "merged",
        "draft": False,
        "title": "Via gh",
        "head": "feature",
        "base": "main",
        "checks": [
            {"name": "tests", "status": "completed", "conclusion": "success"},
            {"name": "ci/legacy", "status": "in_progress", "conclusion": None},
        ],
        "review_state": "approved",
        "head_sha": "0123456789abcdef0123456789abcdef01234567",
        "mergeable": False,
        "required_checks": None,  # gh's JSON has no branch protection: the forge decides
        "waiting_on": [],
    }


async def test_gh_not_logged_in(fake_gh: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_GH_LOGGED_OUT", "1")
    with pytest.raises(BadRequest) as caught:
        await registry.host_for(REMOTE, PrConfig(None))
    assert caught.value.detail.startswith("No GitHub token configured: set CODEYARD_GITHUB_TOKEN")
    assert "`gh auth login --hostname github.com`" in caught.value.detail
