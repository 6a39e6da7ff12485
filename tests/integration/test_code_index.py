"""The code index against real git repositories with planted facts: search through the API,
incremental updates by blob id, the index following a landed run, the project map; and the
speed of indexing and querying (printed, with loose floors for a busy 2-core machine).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from codeyard.codeindex import CodeIndex
from codeyard.codeindex.pg import PgCodeIndex, tsquery
from codeyard.config import Settings
from codeyard.testing.postgres import PostgresCluster
from tests.conftest import TOKEN, Api, make_repo, running_api

pytestmark = pytest.mark.anyio

PLANTED = {
    "billing/invoice.py": (
        "from billing import tax\n\n\n"
        "def computeInvoiceTotal(lines):\n"
        "    return sum(l.amount for l in lines) + tax.vat(lines)\n"
    ),
    "billing/tax.py": "VAT_RATE = 0.2\n\n\ndef vat(lines):\n    return 0\n",
    "net/retry.py": "import time\n\nMAX_RETRY_BUDGET = 7\n",
    "pyproject.toml": (
        '[project]\nname = "demo"\ndependencies = ["httpx>=0.27", "rich"]\n'
        '[project.scripts]\ndemo = "billing.invoice:main"\n'
    ),
    "web/index.ts": "export const greeting = 'hello';\n",
}


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def filler(count: int) -> dict[str, str]:
    return {
        f"pkg/mod{i // 100}/file{i}.py": (
            f"def helper_{i}(value):\n    return value * {i}\n\n"
            f"class Widget{i}:\n    name = 'widget {i}'\n"
        )
        for i in range(count)
    }


async def project_of(api: Api, repo: Path) -> dict[str, Any]:
    made = await api.post("/api/projects", json={"name": "demo", "repos": [{"path": str(repo)}]})
    assert made.status_code == 201, made.text
    return dict(made.json())


@pytest.mark.postgres
async def test_search_finds_planted_facts_and_updates_incrementally(
    api: Api, tmp_path: Path
) -> None:
    """On SQLite (FTS5 file) and on PostgreSQL (tsvector + GIN in the database), the same API."""
    repo = make_repo(tmp_path / "repo", {**PLANTED, **filler(300)})
    project = await project_of(api, repo)
    built = (await api.post(f"/api/projects/{project['id']}/index-rag")).json()
    (stats,) = built["repos"]
    assert stats["files"] == 305 and stats["added"] == 305 and stats["indexed"] == 305
    assert stats["commit"] == git(repo, "rev-parse", "HEAD")

    async def search(q: str) -> list[dict[str, Any]]:
        resp = await api.get(f"/api/projects/{project['id']}/search", params={"q": q})
        assert resp.status_code == 200, resp.text
        return list(resp.json()["data"])

    hits = await search("invoice total")  # the parts of computeInvoiceTotal
    assert hits[0]["path"] == "billing/invoice.py" and hits[0]["line"] == 4
    assert "computeInvoiceTotal" in hits[0]["snippet"]
    assert (await search("retry budget"))[0]["path"] == "net/retry.py"
    assert (await search("MAX_RETRY_BUDGET"))[0]["path"] == "net/retry.py"
    assert await search("nonexistentzebra") == []

    (repo / "net/retry.py").write_text("MAX_BACKOFF_SECONDS = 30\n")
    (repo / "billing/refund.py").write_text("def issueRefund(order):\n    pass\n")
    git(repo, "rm", "-q", "web/index.ts")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "change")
    again = (await api.post(f"/api/projects/{project['id']}/index-rag")).json()["repos"][0]
    assert (again["added"], again["changed"], again["removed"]) == (1, 1, 1)
    assert (await search("issue refund"))[0]["path"] == "billing/refund.py"
    assert await search("budget") == []  # MAX_RETRY_BUDGET is gone
    assert (await search("backoff"))[0]["path"] == "net/retry.py"
    same = (await api.post(f"/api/projects/{project['id']}/index-rag")).json()["repos"][0]
    assert (same["added"], same["changed"], same["removed"]) == (0, 0, 0)
    files = list((api.services.settings.data_dir / "index").glob("*.sqlite"))
    on_postgres = api.services.engine.dialect.name == "postgresql"
    assert len(files) == (0 if on_postgres else 1)  # PostgreSQL keeps it in the database


async def test_the_index_follows_a_landed_run(sqlite_api: Api, tmp_path: Path) -> None:
    api = sqlite_api
    repo = make_repo(tmp_path / "repo", PLANTED)
    project = await project_of(api, repo)
    await api.post(f"/api/projects/{project['id']}/index-rag")
    created = await api.post(
        "/api/runs",
        json={
            "prompt": "Add a ledger",
            "project_id": project["id"],
            "provider": "script",
            "agent_options": {
                "permission_mode": "auto",
                "scenario": {
                    "steps": [
                        {
                            "write": {
                                "path": "billing/ledger.py",
                                "content": "def postLedgerEntry():\n    pass\n",
                            }
                        }
                    ]
                },
            },
        },
    )
    run_id = created.json()["id"]
    await api.wait_status(run_id, "review")
    landed = await api.post(f"/api/runs/{run_id}/resolve", json={"action": "merge"})
    assert landed.status_code == 200, landed.text
    with anyio.fail_after(20):
        while True:
            found = (
                await api.get(f"/api/projects/{project['id']}/search", params={"q": "ledger entry"})
            ).json()["data"]
            if found:
                break
            await anyio.sleep(0.05)
    assert found[0]["path"] == "billing/ledger.py"


async def test_project_map_from_the_code(sqlite_api: Api, tmp_path: Path) -> None:
    api = sqlite_api
    repo = make_repo(tmp_path / "repo", {**PLANTED, "billing/__main__.py": "print('x')\n"})
    project = await project_of(api, repo)
    body = (await api.get(f"/api/projects/{project['id']}/map")).json()
    (repo_map,) = body["repos"]
    modules = {m["module"]: m for m in repo_map["modules"]}
    assert modules["billing"]["files"] == 3 and modules["net"]["lines"] == 3
    assert repo_map["languages"]["Python"] > 0 and "TypeScript" in repo_map["languages"]
    assert {"ecosystem": "pypi", "spec": "httpx>=0.27"} in repo_map["dependencies"]
    entries = {(e["path"], e["kind"]) for e in repo_map["entry_points"]}
    assert ("billing/__main__.py", "file") in entries
    assert ("billing.invoice:main", "script:demo") in entries
    assert repo_map["mermaid"].startswith("flowchart LR")
    assert '"billing (3 files)"' in repo_map["mermaid"]


def test_indexing_speed_and_query_latency(tmp_path: Path) -> None:
    """Measured on a generated repository of 3,000 files (printed for RESULTS)."""
    repo = make_repo(tmp_path / "repo", {**PLANTED, **filler(3000)})
    index = CodeIndex(tmp_path / "idx.sqlite")
    stats = index.update(repo, git(repo, "rev-parse", "HEAD"))
    assert stats.indexed == 3005
    queries = [f"helper {i}" for i in range(0, 3000, 15)] + ["invoice total", "Widget42 name"]
    timings = []
    for q in queries:
        started = time.perf_counter()
        hits = index.search(q, 10)
        timings.append(time.perf_counter() - started)
        assert hits
    timings.sort()
    p99 = timings[int(len(timings) * 0.99) - 1]
    print(
        f"\ncode index: {stats.indexed} files in {stats.seconds:.2f}s = "
        f"{stats.files_per_second:.0f} files/s; query p50 {timings[len(timings) // 2] * 1000:.1f}"
        f" ms, p99 {p99 * 1000:.1f} ms over {len(timings)} queries"
    )
    assert stats.files_per_second > 1000  # target 2,000/s (measured ~4,000/s)
    assert p99 < 0.2  # target 50 ms on an idle machine


async def test_rag_enabled_adds_snippets_to_the_instructions_and_records_them(
    sqlite_api: Api, tmp_path: Path
) -> None:
    api = sqlite_api
    repo = make_repo(tmp_path / "repo", {**PLANTED, **filler(50)})
    project = await project_of(api, repo)
    await api.post(f"/api/projects/{project['id']}/index-rag")
    created = await api.post(
        "/api/runs",
        json={
            "prompt": "Round the invoice total to cents",
            "project_id": project["id"],
            "provider": "script",
            "rag_enabled": True,
            "agent_options": {"instructions": "Be brief.", "scenario": {"steps": []}},
        },
    )
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    evs = (await api.get(f"/api/runs/{run_id}/events?types=context.added")).json()["data"]
    (added,) = [e["data"] for e in evs]
    assert added["source"] == "code_index" and added["items"][0]["path"] == "billing/invoice.py"
    assert added["items"][0]["line"] == 4 and added["chars"] > 0
    from codeyard.store import runs

    async with api.services.engine.connect() as conn:
        options = (await runs.get(conn, run_id))["agent_options"]
    assert options["instructions"].startswith("Be brief.\n\nRelevant code found by Codeyard")
    assert "computeInvoiceTotal" in options["instructions"]
    # Without an index, or without the flag, nothing is added.
    plain = await api.post(
        "/api/runs",
        json={
            "prompt": "Round the invoice total",
            "project_id": project["id"],
            "provider": "script",
            "agent_options": {"scenario": {"steps": []}},
        },
    )
    none = (await api.get(f"/api/runs/{plain.json()['id']}/events?types=context.added")).json()
    assert none["data"] == []


async def test_schema_and_diagrams_from_the_code(sqlite_api: Api, tmp_path: Path) -> None:
    api = sqlite_api
    files = {
        **PLANTED,
        "db/schema.sql": "CREATE TABLE invoices (\n  id INTEGER,\n  total NUMERIC(10, 2)\n);\n",
    }
    repo = make_repo(tmp_path / "repo", files)
    project = await project_of(api, repo)
    body = (await api.get(f"/api/projects/{project['id']}/schema")).json()
    (tables,) = [r["tables"] for r in body["repos"]]
    assert tables == [
        {
            "name": "invoices",
            "source": "db/schema.sql",
            "columns": [
                {"name": "id", "type": "INTEGER"},
                {"name": "total", "type": "NUMERIC(10,2)"},
            ],
        }
    ]
    diagrams = await api.get(f"/api/projects/{project['id']}/diagrams")
    assert diagrams.headers["content-type"].startswith("text/markdown")
    text = diagrams.text
    assert text.count("```mermaid") == 2 and "erDiagram" in text and "flowchart LR" in text
    assert "INTEGER id" in text


@pytest.mark.postgres
async def test_postgres_full_text_indexing_speed_and_query_latency(
    pg_cluster: PostgresCluster, tmp_path: Path
) -> None:
    """PostgreSQL's tsvector + GIN index on the same 3,000-file repository (printed for
    RESULTS): the index lives in the database, queried through the app's engine."""
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=pg_cluster.create_database(),
        admin_token=TOKEN,
    )
    repo = make_repo(tmp_path / "repo", {**PLANTED, **filler(3000)})
    async with running_api(settings) as api:
        index = PgCodeIndex(api.services.engine, "repo_speed")
        stats = await index.update(repo, git(repo, "rev-parse", "HEAD"))
        assert stats.indexed == 3005 and await index.commit() == git(repo, "rev-parse", "HEAD")
        queries = [f"helper {i}" for i in range(0, 3000, 15)] + ["invoice total", "Widget42 name"]
        timings = []
        await index.search("warm up the pool", 10)
        for q in queries:
            started = time.perf_counter()
            hits = await index.search(q, 10)
            timings.append(time.perf_counter() - started)
            assert hits, q
        assert (await index.search("computeInvoiceTotal"))[0].path == "billing/invoice.py"
        assert (await index.search("get_nothing_zebra")) == []
        timings.sort()
        p99 = timings[int(len(timings) * 0.99) - 1]
        print(
            f"\npostgres code index: {stats.indexed} files in {stats.seconds:.2f}s = "
            f"{stats.files_per_second:.0f} files/s; query p50 "
            f"{timings[len(timings) // 2] * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms"
        )
        assert stats.files_per_second > 500  # target 2,000/s (measured 8,600-10,600/s idle)
        # Target 50 ms; measured p50 1.3 ms but p99 ~100 ms with single queries up to 0.4 s
        # (not tied to the query: warm-up of the pool or the cluster's caches, under load).
        assert p99 < 0.5
        again = await index.update(repo, git(repo, "rev-parse", "HEAD"))
        assert (again.added, again.changed, again.removed) == (0, 0, 0)


def test_tsquery_matches_what_the_parser_indexes() -> None:
    assert tsquery("computeInvoiceTotal") == "computeinvoicetotal | compute | invoice | total"
    assert tsquery("get_user x") == "(get <-> user) | get | user"
    assert tsquery("!!! ''") is None
