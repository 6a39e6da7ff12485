"""Browsing a run's worktree and a repository's commits; every path stays inside or gets a 400."""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api, make_repo

pytestmark = pytest.mark.anyio

SETUP = (
    "mkdir -p deep/a/b && echo leaf > deep/a/b/c.txt"
    " && ln -s /etc/passwd escape && ln -s notes.txt ok-link && ln -s .. up"
    " && ln -s ../../.. far && head -c 1100000 /dev/zero > big.bin"
    " && printf 'ab\\000cd' > blob.dat && mkfifo pipe"
)


async def ready_run(api: Api, repo: Path) -> dict[str, Any]:
    body = {
        "prompt": "Make some files",
        "repo_path": str(repo),
        "provider": "script",
        "agent_options": {
            "scenario": {
                "steps": [
                    {"write": {"path": "src/app.py", "content": "print('hi')\n"}},
                    {"write": {"path": "notes.txt", "content": "héllo\n"}},
                ]
            }
        },
    }
    resp = await api.post("/api/runs", json=body)
    assert resp.status_code == 201, resp.text
    done = await api.wait_status(resp.json()["id"], "review", "failed")
    assert done["status"] == "review", done["status_reason"]
    # Escaping links and odd files are made here, not by the agent: the policy's read gate
    # (rightly) refuses an agent command whose paths reach into the data dir.
    (worktree,) = done["worktrees"].values()
    subprocess.run(["bash", "-c", SETUP], cwd=worktree, check=True)
    return done


def problem(resp: Any, status: int, *words: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = resp.json()
    for word in words:
        assert word in body["detail"], body["detail"]
    return body


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(
        tmp_path / "site",
        {"README.md": "# site\n", "src/lib.py": "x = 1\n", "docs/guide.md": "guide\n"},
    )


async def test_listing_the_worktree(api: Api, repo: Path) -> None:
    run = await ready_run(api, repo)
    resp = await api.get(f"/api/runs/{run['number']}/workspace")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["run_id"] == run["id"] and body["repo_id"] == run["repo_ids"][0]
    assert body["path"] == "" and body["truncated"] is False
    entries = {e["path"]: e for e in body["entries"]}
    assert ".git" not in entries
    assert entries["src"] == {"path": "src", "type": "dir", "size": None}
    assert entries["notes.txt"]["type"] == "file" and entries["notes.txt"]["size"] == 7
    assert entries["escape"]["type"] == "symlink" and entries["pipe"]["type"] == "other"
    assert "src/app.py" not in entries  # depth 1

    deep = (await api.get(f"/api/runs/{run['id']}/workspace?path=deep&depth=3")).json()
    assert [e["path"] for e in deep["entries"]] == ["deep/a", "deep/a/b", "deep/a/b/c.txt"]
    whole = (await api.get(f"/api/runs/{run['id']}/workspace?depth=10")).json()
    paths = [e["path"] for e in whole["entries"]]
    assert "src/app.py" in paths and "docs/guide.md" in paths
    assert not [p for p in paths if p.startswith("up/") or p.startswith("escape/")]

    resp = await api.get(f"/api/runs/{run['id']}/workspace?path=nowhere")
    problem(resp, 404, "nowhere")
    resp = await api.get(f"/api/runs/{run['id']}/workspace?path=notes.txt")
    problem(resp, 400, "is a file")
    resp = await api.get(f"/api/runs/{run['id']}/workspace?repo_id=repo_nope")
    problem(resp, 400, "repo_nope")


async def test_reading_files(api: Api, repo: Path) -> None:
    run = await ready_run(api, repo)
    url = f"/api/runs/{run['id']}/workspace/file"
    body = (await api.get(url, params={"path": "notes.txt"})).json()
    assert body["content"] == "héllo\n" and body["binary"] is False
    assert body["encoding"] == "utf-8" and body["size"] == 7 and body["truncated"] is False
    via_link = (await api.get(url, params={"path": "ok-link"})).json()
    assert via_link["path"] == "notes.txt" and via_link["content"] == "héllo\n"
    inside = (await api.get(url, params={"path": "src/../src/./app.py"})).json()
    assert inside["path"] == "src/app.py"

    blob = (await api.get(url, params={"path": "blob.dat"})).json()
    assert blob["binary"] is True and blob["encoding"] == "base64"
    assert base64.b64decode(blob["content"]) == b"ab\0cd"

    body = problem(await api.get(url, params={"path": "big.bin"}), 413, "1100000", "truncate")
    assert body["size"] == 1100000 and body["limit"] == 1024 * 1024
    cut = (await api.get(url, params={"path": "big.bin", "truncate": "true"})).json()
    assert cut["truncated"] is True and cut["size"] == 1100000
    assert len(base64.b64decode(cut["content"])) == 1024 * 1024

    problem(await api.get(url, params={"path": "pipe"}), 400, "not a regular file")
    problem(await api.get(url, params={"path": "src"}), 400, "is a directory")
    problem(await api.get(url, params={"path": "missing.txt"}), 404, "missing.txt")
    problem(await api.get(url, params={"path": ""}), 400, "path of a file")
    problem(await api.get(url), 422)


BAD_PATHS = [
    ("../", "outside"),
    ("../../etc/passwd", "outside"),
    ("src/../../x", "outside"),
    ("/etc/passwd", "absolute"),
    ("escape", "symlink"),
    ("up", "symlink"),
    ("up/site/../../x", "symlink"),
    ("far", "symlink"),
    ("a\0b", "NUL"),
]


@pytest.mark.parametrize("endpoint", ["workspace", "workspace/file"])
@pytest.mark.parametrize(("path", "word"), BAD_PATHS)
async def test_paths_leaving_the_worktree_are_refused(
    sqlite_api: Api, repo: Path, endpoint: str, path: str, word: str
) -> None:
    run = await ready_run(sqlite_api, repo)
    resp = await sqlite_api.get(f"/api/runs/{run['id']}/{endpoint}", params={"path": path})
    body = problem(resp, 400, word)
    assert body["path"] == path


async def test_a_run_without_a_worktree_has_nothing_to_browse(api: Api, repo: Path) -> None:
    body = {"prompt": "Later", "repo_path": str(repo), "provider": "script", "draft": True}
    run = (await api.post("/api/runs", json=body)).json()
    body = problem(await api.get(f"/api/runs/{run['id']}/workspace"), 409, "no worktree")
    assert body["current_status"] == "draft"
    problem(await api.get(f"/api/runs/{run['id']}/workspace/file?path=a"), 409)
    problem(await api.get("/api/runs/999999/workspace"), 404)


async def test_repository_tree_and_blob(api: Api, repo: Path) -> None:
    project = await api.post("/api/projects", json={"name": "site", "repos": [{"path": str(repo)}]})
    repo_id = project.json()["repos"][0]["id"]
    os.symlink("README.md", repo / "readme-link")
    (repo / "data.bin").write_bytes(b"\0\1\2")
    for args in (["add", "-A"], ["commit", "-qm", "more"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)

    tree = (await api.get(f"/api/repos/{repo_id}/tree")).json()
    assert tree["repo_id"] == repo_id and tree["ref"] == "main" and len(tree["commit"]) == 40
    entries = {e["path"]: e for e in tree["entries"]}
    assert entries["src"]["type"] == "dir" and entries["README.md"]["size"] == 7
    assert entries["readme-link"]["type"] == "symlink"
    sub = (await api.get(f"/api/repos/{repo_id}/tree", params={"path": "src"})).json()
    assert [e["path"] for e in sub["entries"]] == ["src/lib.py"]
    first = (await api.get(f"/api/repos/{repo_id}/tree", params={"ref": "HEAD~1"})).json()
    assert "data.bin" not in {e["path"] for e in first["entries"]}

    blob = (await api.get(f"/api/repos/{repo_id}/blob", params={"path": "src/lib.py"})).json()
    assert blob["content"] == "x = 1\n" and blob["binary"] is False and blob["size"] == 6
    binary = (await api.get(f"/api/repos/{repo_id}/blob", params={"path": "data.bin"})).json()
    assert binary["binary"] is True and base64.b64decode(binary["content"]) == b"\0\1\2"

    url = f"/api/repos/{repo_id}"
    body = problem(await api.get(f"{url}/tree", params={"ref": "no-such-ref"}), 400, "no-such-ref")
    assert body["ref"] == "no-such-ref"
    problem(await api.get(f"{url}/blob", params={"path": "README.md", "ref": "--all"}), 400)
    problem(await api.get(f"{url}/tree", params={"path": "../x"}), 400, "outside")
    problem(await api.get(f"{url}/blob", params={"path": "/etc/passwd"}), 400, "absolute")
    problem(await api.get(f"{url}/blob", params={"path": "src"}), 400, "directory")
    problem(await api.get(f"{url}/tree", params={"path": "README.md"}), 400, "is a file")
    problem(await api.get(f"{url}/blob", params={"path": "nope.txt"}), 404, "nope.txt")
    problem(await api.get("/api/repos/repo_unknown/tree"), 404)


async def test_big_blob_is_refused_unless_truncated(sqlite_api: Api, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "big", {"huge.txt": "x" * (1024 * 1024 + 10)})
    project = await sqlite_api.post(
        "/api/projects", json={"name": "big", "repos": [{"path": str(repo)}]}
    )
    url = f"/api/repos/{project.json()['repos'][0]['id']}/blob"
    problem(await sqlite_api.get(url, params={"path": "huge.txt"}), 413, "truncate")
    cut = (await sqlite_api.get(url, params={"path": "huge.txt", "truncate": "1"})).json()
    assert cut["truncated"] is True and len(cut["content"]) == 1024 * 1024
