"""Managed project documents regenerate only between their markers, so edits by hand survive;
the changelog gets an entry per landed run. Real git, SQLite and PostgreSQL, the script agent."""

from __future__ import annotations

import subprocess
from pathlib import Path

import anyio
import pytest

from codeyard.managed_docs import markers
from tests.conftest import Api, make_repo

pytestmark = pytest.mark.anyio
FILES = {
    "billing/invoice.py": "def total():\n    return 1\n",
    "db/schema.sql": "CREATE TABLE invoices (id INTEGER, total NUMERIC);\n",
    "pyproject.toml": '[project]\nname = "x"\ndependencies = ["httpx"]\n',
}


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


async def test_regenerate_keeps_hand_edits_outside_the_markers(api: Api, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", FILES)
    project = (
        await api.post("/api/projects", json={"name": "d", "repos": [{"path": str(repo)}]})
    ).json()
    base = f"/api/projects/{project['id']}/docs"
    assert (await api.get(base)).json()["data"] == []
    assert (await api.get(f"{base}/project-map")).status_code == 404
    made = (await api.post(f"{base}/regenerate")).json()["data"]
    assert [d["slug"] for d in made] == ["project-map", "database-schema", "architecture-diagrams"]
    doc = (await api.get(f"{base}/project-map")).json()
    assert doc["title"] == "Project map" and markers.START in doc["body"]
    assert "| `billing` | 1 | 2 |" in doc["body"] and "pypi: `httpx`" in doc["body"]
    schema = (await api.get(f"{base}/database-schema")).json()["body"]
    assert "### `invoices`" in schema and "| `total` | NUMERIC |" in schema
    diagrams = (await api.get(f"{base}/architecture-diagrams")).json()["body"]
    assert "```mermaid" in diagrams and "erDiagram" in diagrams

    edited = doc["body"].replace("# Project map\n", "# Project map\n\nWritten by hand: keep me.\n")
    edited = edited.replace("| `billing` | 1 | 2 |", "| `billing` | 99 | 99 |")
    edited += "\nFooter by hand.\n"
    put = await api.request("PUT", f"{base}/project-map", json={"body": edited})
    assert put.status_code == 200 and put.json()["updated_by"] is None
    (repo / "shipping").mkdir()
    (repo / "shipping/rates.py").write_text("RATE = 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "shipping")
    await api.post(f"/api/projects/{project['id']}/index-rag")
    await api.post(f"{base}/regenerate")
    body = (await api.get(f"{base}/project-map")).json()["body"]
    assert "Written by hand: keep me." in body and body.endswith("Footer by hand.\n")
    assert "| `shipping` | 1 | 1 |" in body  # the block was regenerated…
    assert "99 | 99" not in body  # …and edits inside it were not kept
    bad = await api.request("PUT", f"{base}/Not A Slug", json={"body": "x"})
    assert bad.status_code == 422


async def test_changelog_entry_per_landed_run(api: Api, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", FILES)
    project = (
        await api.post("/api/projects", json={"name": "d", "repos": [{"path": str(repo)}]})
    ).json()
    created = await api.post(
        "/api/runs",
        json={
            "prompt": "Add shipping rates",
            "project_id": project["id"],
            "provider": "script",
            "agent_options": {
                "permission_mode": "auto",
                "scenario": {
                    "steps": [
                        {"write": {"path": "shipping.py", "content": "RATE = 2\n"}},
                        {"say": "Added a flat shipping rate of 2."},
                    ]
                },
            },
        },
    )
    run_id = created.json()["id"]
    await api.wait_status(run_id, "review")
    assert (
        await api.post(f"/api/runs/{run_id}/resolve", json={"action": "merge"})
    ).status_code == 200
    with anyio.fail_after(20):
        while True:
            entries = (await api.get(f"/api/projects/{project['id']}/changelog")).json()["data"]
            if entries:
                break
            await anyio.sleep(0.05)
    (entry,) = entries
    assert entry["run_id"] == run_id and entry["title"] == "Add shipping rates"
    assert entry["summary"] == "Added a flat shipping rate of 2."
    assert entry["files"] == ["shipping.py"]


def test_markers_merge() -> None:
    doc = markers.new_document("T", "one")
    assert doc == f"# T\n\n{markers.START}\none\n{markers.END}\n"
    human = doc.replace("# T\n", "# T\nmine\n") + "after\n"
    merged = markers.merge(human, "two")
    assert merged == f"# T\nmine\n\n{markers.START}\ntwo\n{markers.END}\nafter\n"
    assert markers.merge("no markers", "x") == f"no markers\n\n{markers.START}\nx\n{markers.END}\n"
