"""Hostile paths against every route that serves files or takes a path into a worktree.

Each path is sent pre-encoded (so ``%2e%2e%2f`` and ``..%252f`` reach the server exactly as an
attacker would send them). Every answer must be 400 or 404, and no answer may contain anything
from outside the worktree or repository: a planted marker file next to them, ``/etc/passwd``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api, make_repo

pytestmark = pytest.mark.anyio

MARKER = "OUTSIDE-MARKER-3f8a1c"
#: A bash step that plants escapes inside the run's worktree.
PLANT = "ln -s /etc/passwd passwd-link && ln -s .. up && ln -s ../../../../.. far"
#: (raw query value, what it is). Relative escapes climb far enough from any worktree.
HOSTILE: list[tuple[str, str]] = [
    ("../../../../../../../../etc/passwd", "dot-dot"),
    ("..", "parent"),
    ("../", "parent slash"),
    ("src/../../../../../../../../etc/passwd", "dot-dot after a directory"),
    ("src/./../../../../../../../etc/passwd", "dot and dot-dot"),
    ("/etc/passwd", "absolute"),
    ("//etc/passwd", "double-slash absolute"),
    ("%2Fetc%2Fpasswd", "encoded absolute"),
    ("%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd", "encoded dot-dot"),
    (".%2e/.%2e/.%2e/.%2e/.%2e/.%2e/.%2e/etc/passwd", "half-encoded dot-dot"),
    ("%252e%252e%252f%252e%252e%252fetc%252fpasswd", "double-encoded dot-dot"),
    ("..%252f..%252f..%252f..%252f..%252fetc%252fpasswd", "dot-dot with double-encoded /"),
    ("..%2f..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd", "dot-dot with encoded /"),
    ("%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd", "overlong UTF-8 dots"),
    ("..%5c..%5c..%5c..%5c..%5c..%5cetc%5cpasswd", "backslashes"),
    ("..\\..\\..\\etc\\passwd".replace("\\", "%5C"), "upper-case encoded backslashes"),
    ("~/.ssh/id_rsa", "tilde"),
    ("~root/../../../../../../etc/passwd", "tilde user"),
    ("README.md%00/../../../../../../etc/passwd", "NUL byte"),
    ("%00", "only NUL"),
    ("file:///etc/passwd", "file URL"),
    ("....//....//....//etc/passwd", "four dots"),
    ("etc-link/passwd", "symlink to /etc, then a file"),
    ("etc-link", "symlink to /etc"),
    ("etc-link/../etc-link/hostname", "through the symlink twice"),
    ("passwd-link", "symlink to a file outside"),
    ("up/up/up/up/up/etc/passwd", "symlink to the parent"),
    ("far/etc/passwd", "symlink far up"),
    ("outside-link", "symlink to the marker"),
    ("../../../../../outside.txt", "relative to the marker (worktree depth)"),
    ("../outside.txt", "relative to the marker (repository depth)"),
    ("a/" * 2000 + "x", "deep path under the length limit"),
    ("B" * 3000, "one very long name"),
]


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    path = tmp_path / "outside.txt"
    path.write_text(f"{MARKER}\n")
    return path


@pytest.fixture
def repo(tmp_path: Path, outside: Path) -> Path:
    """A repository that commits a symlink to /etc and one to the marker, besides real files."""
    path = make_repo(tmp_path / "site", {"README.md": "# site\n", "src/lib.py": "x = 1\n"})
    (path / "etc-link").symlink_to("/etc")
    (path / "outside-link").symlink_to(outside)
    for args in (["add", "-A"], ["commit", "-q", "-m", "links"]):
        subprocess.run(["git", *args], cwd=path, check=True, capture_output=True)
    return path


async def ready_run(api: Api, repo: Path) -> dict[str, Any]:
    """A run whose worktree has the committed links plus links planted by its agent."""
    body = {
        "prompt": "plant escapes",
        "repo_path": str(repo),
        "provider": "script",
        "agent_options": {"scenario": {"steps": [{"bash": PLANT}]}},
    }
    resp = await api.post("/api/runs", json=body)
    assert resp.status_code == 201, resp.text
    run = await api.wait_status(resp.json()["id"], "review", "failed")
    assert run["status"] == "review", run["status_reason"]
    return run


def forbidden_texts() -> list[str]:
    texts = [MARKER]
    passwd = Path("/etc/passwd").read_text().splitlines()
    texts += [line for line in passwd[:3] if line]
    return texts


async def check_all(api: Api, route: str, extra: str = "") -> list[str]:
    """Every hostile path against ``route``; the list of failures (empty: all refused)."""
    failures = []
    banned = forbidden_texts()
    for raw, what in HOSTILE:
        resp = await api.get(f"{route}?path={raw}{extra}")
        if resp.status_code not in (400, 404):
            failures.append(f"{what} ({raw[:60]}): {resp.status_code} {resp.text[:200]}")
            continue
        if not resp.headers["content-type"].startswith("application/problem+json"):
            failures.append(f"{what}: not a problem: {resp.headers['content-type']}")
        leaked = [t for t in banned if t in resp.text]
        if leaked:
            failures.append(f"{what} ({raw[:60]}): leaked {leaked}")
    too_long = await api.get(f"{route}?path={'a' * 5000}{extra}")
    if too_long.status_code != 422:
        failures.append(f"a 5000-character path: {too_long.status_code}")
    return failures


async def test_workspace_file(sqlite_api: Api, repo: Path) -> None:
    api = sqlite_api
    run = await ready_run(api, repo)
    assert await check_all(api, f"/api/runs/{run['id']}/workspace/file") == []
    # The same routes still serve what is inside.
    ok = await api.get(f"/api/runs/{run['id']}/workspace/file?path=README.md")
    assert ok.status_code == 200 and ok.json()["content"] == "# site\n"


async def test_workspace_listing(sqlite_api: Api, repo: Path) -> None:
    api = sqlite_api
    run = await ready_run(api, repo)
    assert await check_all(api, f"/api/runs/{run['id']}/workspace", "&depth=3") == []
    ok = await api.get(f"/api/runs/{run['id']}/workspace?path=src")
    assert ok.status_code == 200


async def test_repository_tree(sqlite_api: Api, repo: Path) -> None:
    api = sqlite_api
    repo_id = await registered(api, repo)
    assert await check_all(api, f"/api/repos/{repo_id}/tree") == []


async def test_repository_blob(sqlite_api: Api, repo: Path) -> None:
    api = sqlite_api
    repo_id = await registered(api, repo)
    failures = await check_all(api, f"/api/repos/{repo_id}/blob")
    # A committed symlink is a blob holding its target's name; git never follows it.
    allowed = {"symlink to /etc", "symlink to the marker"}
    assert [f for f in failures if f.split(" (")[0] not in allowed] == []
    link = await api.get(f"/api/repos/{repo_id}/blob?path=etc-link")
    assert link.status_code == 200 and link.json()["content"] == "/etc"
    marker = await api.get(f"/api/repos/{repo_id}/blob?path=outside-link")
    assert marker.status_code == 200 and MARKER not in marker.text


async def test_run_diff_path_filter(sqlite_api: Api, repo: Path) -> None:
    """``diff?path=`` only narrows the worktree's diff: hostile paths get a problem or nothing."""
    api = sqlite_api
    run = await ready_run(api, repo)
    banned = forbidden_texts()
    for raw, what in HOSTILE:
        resp = await api.get(f"/api/runs/{run['id']}/diff?path={raw}")
        assert resp.status_code in (200, 400, 404), f"{what}: {resp.status_code} {resp.text}"
        # (A diff may name a symlink's target, e.g. "+/etc/passwd"; never a file's content.)
        assert not [t for t in banned if t in resp.text], what


async def registered(api: Api, repo: Path) -> str:
    resp = await api.post("/api/projects", json={"name": "site", "repos": [{"path": str(repo)}]})
    assert resp.status_code == 201, resp.text
    repo_id: str = resp.json()["repos"][0]["id"]
    return repo_id
