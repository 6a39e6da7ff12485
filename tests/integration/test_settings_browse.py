"""``GET /api/settings/browse``: directories of the server's machine, to pick a repository."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Api, make_repo

pytestmark = pytest.mark.anyio


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "home"
    make_repo(root / "project")
    (root / "plain").mkdir(parents=True)
    (root / ".hidden").mkdir()
    (root / "notes.txt").write_text("not a directory")
    (root / "link-to-project").symlink_to(root / "project")
    return root


async def test_lists_directories_with_git_flags(sqlite_api: Api, tree: Path) -> None:
    resp = await sqlite_api.get("/api/settings/browse", params={"path": str(tree)})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["path"] == str(tree.resolve()) and body["parent"] == str(tree.resolve().parent)
    assert body["is_git_repo"] is False and body["truncated"] is False
    assert body["entries"] == [
        {"name": "link-to-project", "path": str(tree / "link-to-project"), "is_git_repo": True},
        {"name": "plain", "path": str(tree / "plain"), "is_git_repo": False},
        {"name": "project", "path": str(tree / "project"), "is_git_repo": True},
    ]
    hidden = await sqlite_api.get("/api/settings/browse", params={"path": str(tree), "hidden": 1})
    assert ".hidden" in [e["name"] for e in hidden.json()["entries"]]
    inside = await sqlite_api.get("/api/settings/browse", params={"path": str(tree / "project")})
    assert inside.json()["is_git_repo"] is True


async def test_defaults_to_the_home_directory(
    sqlite_api: Api, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tree))
    resp = await sqlite_api.get("/api/settings/browse")
    assert resp.status_code == 200 and resp.json()["path"] == str(tree.resolve())
    tilde = await sqlite_api.get("/api/settings/browse", params={"path": "~/plain"})
    assert tilde.json()["path"] == str((tree / "plain").resolve())


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("{tree}/missing", 404, "no directory"),
        ("{tree}/notes.txt", 400, "is a file"),
        ("relative/dir", 400, "absolute path"),
        ("{tree}/plain\x00x", 400, "NUL"),
    ],
)
async def test_problems_name_the_fix(
    sqlite_api: Api, tree: Path, path: str, status: int, words: str
) -> None:
    resp = await sqlite_api.get("/api/settings/browse", params={"path": path.format(tree=tree)})
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert words in resp.json()["detail"]


async def test_needs_authentication(sqlite_api: Api, tree: Path) -> None:
    resp = await sqlite_api.client.get(
        "/api/settings/browse", params={"path": str(tree)}, headers={"Authorization": ""}
    )
    assert resp.status_code == 401


async def test_scopes_guard_browse_and_env_sets(sqlite_api: Api, tree: Path) -> None:
    """A settings:read token reads env sets (masked) but may not write them or browse disks."""
    made = await sqlite_api.post("/api/tokens", json={"name": "ro", "scopes": ["settings:read"]})
    assert made.status_code == 201, made.text
    reader = {"Authorization": f"Bearer {made.json()['token']}"}
    browse = await sqlite_api.get(
        "/api/settings/browse", params={"path": str(tree)}, headers=reader
    )
    assert browse.status_code == 403 and "admin" in browse.json()["detail"]
    assert (await sqlite_api.get("/api/env-sets", headers=reader)).status_code == 200
    write = await sqlite_api.post(
        "/api/env-sets", json={"name": "x", "variables": {}}, headers=reader
    )
    assert write.status_code == 403 and "settings:write" in write.json()["detail"]
