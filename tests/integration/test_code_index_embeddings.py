"""Hybrid code search with the local embedding model (issue 22): WordLlama's weights ship in
its wheel, so this runs offline. Files that share no word with the query are found by meaning,
vectors follow changes by blob id, turning embeddings on later embeds what is already
indexed, and the API's search uses them when ``code_index_embeddings`` is set."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from contextlib import closing
from pathlib import Path

import pytest

from codeyard.codeindex import CodeIndex
from codeyard.config import Settings
from tests.conftest import TOKEN, make_repo, running_api

pytestmark = pytest.mark.anyio

FILES = {
    "garage/models.py": (
        "class Automobile:\n    def start_engine(self):\n        self.motor.ignite()\n"
        "        self.wheels.turn()  # drive the vehicle\n"
    ),
    "notify/smtp.py": "def send_email(to, subject):\n    smtp.mail(message=subject)\n",
    "io/decode.py": "def parse_json(text):\n    return json.loads(text)\n",
    "billing/tax.py": "VAT_RATE = 0.2\n\ndef vat(invoice):\n    return invoice * VAT_RATE\n",
}


@pytest.fixture(autouse=True)
def _needs_wordllama() -> None:
    try:
        import wordllama  # noqa: F401
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("the embeddings extra must be installed in CI (pip install -e '.[dev]')")
        pytest.skip("wordllama is not installed (pip install 'codeyard[embeddings]')")


def _head(repo: Path) -> str:
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True)
    return done.stdout.strip()


def _vectors(index: Path) -> dict[str, bytes]:
    with closing(sqlite3.connect(index)) as conn:
        return {str(p): bytes(v) for p, v in conn.execute("SELECT path, vec FROM vectors")}


def _commit(repo: Path) -> None:
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "change"], cwd=repo, check=True)


def test_meaning_finds_what_words_cannot(tmp_path: Path) -> None:
    from codeyard.codeindex.backends import shared_embedder

    repo = make_repo(tmp_path / "repo", FILES)
    lexical = CodeIndex(tmp_path / "lexical.sqlite")
    lexical.update(repo, _head(repo))
    assert lexical.search("car") == [] and lexical.search("postal letter") == []

    # Turned on after the index was built: the files already indexed get their vectors.
    hybrid = CodeIndex(tmp_path / "lexical.sqlite", shared_embedder())
    started = time.perf_counter()
    again = hybrid.update(repo, _head(repo))
    assert (again.added, again.changed) == (0, 0)
    print(f"\nembedded {len(FILES)} files in {time.perf_counter() - started:.2f}s (with loading)")
    assert hybrid.search("car")[0].path == "garage/models.py"
    assert hybrid.search("postal letter")[0].path == "notify/smtp.py"
    # Word matches still count: an exact identifier stays on top.
    assert hybrid.search("VAT_RATE")[0].path == "billing/tax.py"

    # A changed file gets a new vector (by blob id), a removed one loses its own, the others
    # keep theirs.
    before = _vectors(tmp_path / "lexical.sqlite")
    (repo / "notify/smtp.py").write_text("def add(a, b):\n    return a + b\n")
    (repo / "io/decode.py").unlink()
    _commit(repo)
    hybrid.update(repo, _head(repo))
    after = _vectors(tmp_path / "lexical.sqlite")
    assert set(after) == set(before) - {"io/decode.py"}
    assert after["notify/smtp.py"] != before["notify/smtp.py"]
    assert after["garage/models.py"] == before["garage/models.py"]
    assert all(hit.path != "io/decode.py" for hit in hybrid.search("decode a string of data"))


def test_embeddings_are_deterministic(tmp_path: Path) -> None:
    from codeyard.codeindex.backends import shared_embedder

    first = shared_embedder().embed(["car engine", "smtp mail"])
    second = shared_embedder().embed(["car engine", "smtp mail"])
    assert first.shape == (2, 256) and (first == second).all()


@pytest.mark.postgres
async def test_the_api_searches_by_meaning_when_turned_on(
    tmp_path: Path, database_url: str
) -> None:
    """On SQLite (vectors beside the FTS5 rows) and PostgreSQL (a ``bytea`` column)."""
    repo = make_repo(tmp_path / "repo", FILES)
    settings = Settings(
        data_dir=tmp_path / "d",
        database_url=database_url,
        admin_token=TOKEN,
        code_index_embeddings=True,
    )
    async with running_api(settings) as api:
        made = await api.post("/api/projects", json={"name": "p", "repos": [{"path": str(repo)}]})
        project = made.json()["id"]
        assert (await api.post(f"/api/projects/{project}/index-rag")).status_code == 200

        async def top(q: str) -> str:
            resp = await api.get(f"/api/projects/{project}/search", params={"q": q})
            assert resp.status_code == 200, resp.text
            return str(resp.json()["data"][0]["path"])

        assert await top("car") == "garage/models.py"
        assert await top("postal letter") == "notify/smtp.py"
        assert await top("VAT_RATE") == "billing/tax.py"
        # A changed file is embedded again on the next update.
        (repo / "garage/models.py").write_text("def add(a, b):\n    return a + b\n")
        _commit(repo)
        again = (await api.post(f"/api/projects/{project}/index-rag")).json()["repos"][0]
        assert again["changed"] == 1
