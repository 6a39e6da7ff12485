"""Code index embeddings from a configured OpenAI-compatible endpoint (issue 22): the fake
model server's ``/v1/embeddings`` over real loopback HTTP (deterministic hashed bag of words
that folds a few synonyms, so "automobile" lands near ``Car``), real git, real SQLite.

Nothing is mocked: the endpoint is a real HTTP server; a failing endpoint is a real closed
port or a real 404."""

from __future__ import annotations

import logging
import socket
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

import pytest

from codeyard.codeindex import CodeIndex
from codeyard.codeindex.remote import BATCH, RemoteEmbedder
from codeyard.config import Settings
from codeyard.testing.fake_llm import FakeLLM
from tests.conftest import TOKEN, make_repo, running_api

pytest.importorskip("numpy")

KEY = "sk-test-embeddings-key"
FILLERS = 70  # more than one batch of BATCH texts
FILES = {
    "garage/fleet.py": "class Car:\n    def honk(self):\n        return 'beep'\n",
    "notify/outbox.py": "def send_email(to):\n    smtp.send(to)\n",
    "billing/tax.py": "VAT_RATE = 0.2\n\ndef vat(amount):\n    return amount * VAT_RATE\n",
    **{f"misc/filler_{i}.py": f"def helper_{i}():\n    return {i}\n" for i in range(FILLERS)},
}


def _head(repo: Path) -> str:
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True)
    return done.stdout.strip()


def _vector_count(index: Path) -> int:
    with closing(sqlite3.connect(index)) as conn:
        return int(conn.execute("SELECT count(*) FROM vectors").fetchone()[0])


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_configured_endpoint_finds_files_by_meaning_in_batches(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", FILES)
    with FakeLLM() as fake:
        embedder = RemoteEmbedder(f"{fake.url}/v1", "text-embedding-3-small", KEY, timeout=10)
        index = CodeIndex(tmp_path / "i.sqlite", embedder)
        stats = index.update(repo, _head(repo))
        assert stats.indexed == len(FILES) and _vector_count(tmp_path / "i.sqlite") == len(FILES)

        calls = [r for r in fake.requests if r.api == "openai-embeddings"]
        assert len(calls) == -(-len(FILES) // BATCH)  # batched: one request per BATCH texts
        assert all(r.path == "/v1/embeddings" for r in calls)
        assert all(r.headers.get("authorization") == f"Bearer {KEY}" for r in calls)
        assert all(isinstance(r.body, dict) and len(r.body["input"]) <= BATCH for r in calls)
        assert {r.body["model"] for r in calls if isinstance(r.body, dict)} == {
            "text-embedding-3-small"
        }

        # Words alone find nothing; the endpoint's vectors do.
        assert CodeIndex(tmp_path / "i.sqlite").search("automobile") == []
        assert index.search("automobile")[0].path == "garage/fleet.py"
        assert index.search("postal letter")[0].path == "notify/outbox.py"
        assert index.search("VAT_RATE")[0].path == "billing/tax.py"


def test_a_failing_endpoint_leaves_a_lexical_index_and_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    repo = make_repo(tmp_path / "repo", FILES)
    path = tmp_path / "i.sqlite"
    down = RemoteEmbedder(f"http://127.0.0.1:{_closed_port()}/v1", "m", KEY, timeout=5)
    with caplog.at_level(logging.WARNING, logger="codeyard.codeindex"):
        stats = CodeIndex(path, down).update(repo, _head(repo))
    assert stats.indexed == len(FILES) and _vector_count(path) == 0
    assert CodeIndex(path, down).search("VAT_RATE")[0].path == "billing/tax.py"

    with FakeLLM() as fake:
        # An endpoint answering 404 is a failure too; a working one later embeds what is missing.
        wrong = RemoteEmbedder(f"{fake.url}/nowhere", "m", KEY, timeout=5)
        CodeIndex(path, wrong).update(repo, _head(repo))
        assert _vector_count(path) == 0
        fixed = CodeIndex(path, RemoteEmbedder(f"{fake.url}/v1", "m", KEY, timeout=10))
        again = fixed.update(repo, _head(repo))
        assert (again.added, again.changed) == (0, 0) and _vector_count(path) == len(FILES)
        assert fixed.search("automobile")[0].path == "garage/fleet.py"

    # The endpoint down again while vectors are stored: search answers by words.
    with caplog.at_level(logging.WARNING, logger="codeyard.codeindex"):
        assert CodeIndex(path, down).search("VAT_RATE")[0].path == "billing/tax.py"
        assert CodeIndex(path, down).search("automobile") == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("embeddings failed, lexical only" in w for w in warnings), warnings
    assert any("embeddings failed, searching words only" in w for w in warnings), warnings
    assert not any(KEY in w for w in warnings)  # the key never reaches a log


@pytest.mark.anyio
async def test_the_api_searches_through_the_configured_endpoint(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", FILES)
    with FakeLLM() as fake:
        settings = Settings(
            data_dir=tmp_path / "d",
            admin_token=TOKEN,
            code_index_embeddings=True,
            code_index_embedder="openai",
            code_index_embeddings_url=f"{fake.url}/v1",
            code_index_embeddings_model="fake-embed",
            code_index_embeddings_key=KEY,
        )
        assert KEY not in repr(settings)
        async with running_api(settings) as api:
            made = await api.post(
                "/api/projects", json={"name": "p", "repos": [{"path": str(repo)}]}
            )
            project = made.json()["id"]
            assert (await api.post(f"/api/projects/{project}/index-rag")).status_code == 200
            resp = await api.get(f"/api/projects/{project}/search", params={"q": "automobile"})
            assert resp.status_code == 200, resp.text
            assert resp.json()["data"][0]["path"] == "garage/fleet.py"
        bodies = [r.body for r in fake.requests if r.api == "openai-embeddings"]
        assert bodies and all(isinstance(b, dict) and b["model"] == "fake-embed" for b in bodies)


@pytest.mark.anyio
async def test_the_key_comes_from_an_env_set_or_a_named_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The endpoint's key kept out of the configuration: in an env set (encrypted at rest; the
    server restarted with the setting naming it) or a named variable of the server's own
    environment. An env set without the variable is a warning naming the fix, and search
    still answers by words."""
    repo = make_repo(tmp_path / "repo", {k: FILES[k] for k in list(FILES)[:3]})
    data = tmp_path / "d"
    with FakeLLM() as fake:
        base = {
            "data_dir": data,
            "admin_token": TOKEN,
            "code_index_embeddings": True,
            "code_index_embedder": "openai",
            "code_index_embeddings_url": f"{fake.url}/v1",
        }

        def keys_sent(since: int) -> set[str | None]:
            calls = [r for r in fake.requests[since:] if r.api == "openai-embeddings"]
            assert calls, "no embeddings request"
            return {r.headers.get("authorization") for r in calls}

        async with running_api(Settings(**base)) as api:
            env = await api.post(
                "/api/env-sets", json={"name": "embeddings", "variables": {"EMBED_KEY": KEY}}
            )
            assert env.status_code == 201, env.text
            made = await api.post(
                "/api/projects", json={"name": "p", "repos": [{"path": str(repo)}]}
            )
            project = made.json()["id"]
        env_set = env.json()["id"]
        stored = b"".join(f.read_bytes() for f in data.glob("codeyard.db*"))
        assert stored and KEY.encode() not in stored  # encrypted at rest

        seen = len(fake.requests)
        named = Settings(
            **base,
            code_index_embeddings_env_set=env_set,
            code_index_embeddings_key_variable="EMBED_KEY",
        )
        async with running_api(named) as api:
            assert (await api.post(f"/api/projects/{project}/index-rag")).status_code == 200
            found = await api.get(f"/api/projects/{project}/search", params={"q": "automobile"})
            assert found.json()["data"][0]["path"] == "garage/fleet.py"
        assert keys_sent(seen) == {f"Bearer {KEY}"}

        seen = len(fake.requests)
        monkeypatch.setenv("CY_TEST_EMBEDDINGS_KEY", "sk-from-the-environment")
        from_env = Settings(**base, code_index_embeddings_key_variable="CY_TEST_EMBEDDINGS_KEY")
        async with running_api(from_env) as api:
            found = await api.get(f"/api/projects/{project}/search", params={"q": "automobile"})
            assert found.json()["data"][0]["path"] == "garage/fleet.py"
        assert keys_sent(seen) == {"Bearer sk-from-the-environment"}

        seen = len(fake.requests)
        missing = Settings(
            **base, code_index_embeddings_env_set=env_set, code_index_embeddings_key_variable="NOPE"
        )
        with caplog.at_level(logging.WARNING, logger="codeyard.services.code_index"):
            async with running_api(missing) as api:
                found = await api.get(f"/api/projects/{project}/search", params={"q": "VAT_RATE"})
                assert found.json()["data"][0]["path"] == "billing/tax.py"
        assert keys_sent(seen) == {None}  # no key at all, rather than another one
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any("has no NOPE" in w and f"PUT /api/env-sets/{env_set}" in w for w in warnings)
        assert not any(KEY in w for w in warnings)
