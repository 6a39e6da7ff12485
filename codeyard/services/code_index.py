"""The code index and project map of a project's repositories (Laravel seed: ``index-rag``,
``map``), and keeping the index current as runs land.

Each repository's index is built at its default branch's head; ``after_landing`` updates the
indexes that exist when a run is merged (called by ``managed_docs.follow_landings``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codeyard.codeindex import dbschema
from codeyard.codeindex import projectmap as pm
from codeyard.codeindex.backends import AsyncIndex, open_index, shared_embedder
from codeyard.codeindex.remote import RemoteEmbedder
from codeyard.config import Settings
from codeyard.crypto import SecretsUnavailable, secret_box
from codeyard.domain.errors import Conflict, ValidationFailed
from codeyard.services import projects as project_service
from codeyard.services.context import Services
from codeyard.store import env_sets, runs
from codeyard.workspace import git

if TYPE_CHECKING:  # numpy comes with the optional embeddings extra
    from codeyard.codeindex.embeddings import Embedder

log = logging.getLogger(__name__)
_MANIFESTS = ("pyproject.toml", "requirements.txt", "package.json", "go.mod")


#: The variable read from an env set named without one (the usual name of such keys).
DEFAULT_KEY_VARIABLE = "OPENAI_API_KEY"


def embedder_for(settings: Settings, key: str = "") -> Embedder | None:
    """The embedder the settings choose: none, the local model or the configured endpoint
    (with ``key``, from :func:`endpoint_key`)."""
    if not settings.code_index_embeddings:
        return None
    if settings.code_index_embedder == "openai":
        return RemoteEmbedder(
            settings.code_index_embeddings_url, settings.code_index_embeddings_model, key
        )
    return shared_embedder()


async def endpoint_key(svc: Services) -> str:
    """The embeddings endpoint's key: from the configured env set (decrypted here, for this
    use only), else the named variable of the server's environment, else the plain setting.
    A configured source that cannot be read is a warning (the endpoint then refuses, and the
    index stays lexical), never a failed request; the key itself is never logged."""
    s = svc.settings
    variable = s.code_index_embeddings_key_variable
    if s.code_index_embeddings_env_set:
        variable = variable or DEFAULT_KEY_VARIABLE
        try:
            async with svc.engine.connect() as conn:
                env = await env_sets.environment_for(
                    conn, secret_box(s.secret_key_path), [s.code_index_embeddings_env_set]
                )
        except (ValidationFailed, SecretsUnavailable) as exc:
            log.warning("code index: the embeddings key's env set cannot be read: %s", exc)
            return ""
        if not env.get(variable):
            log.warning(
                "code index: env set %s has no %s for the embeddings key; add it with "
                "PUT /api/env-sets/%s",
                s.code_index_embeddings_env_set,
                variable,
                s.code_index_embeddings_env_set,
            )
        return env.get(variable) or ""
    if variable:
        return os.environ.get(variable) or s.code_index_embeddings_key
    return s.code_index_embeddings_key


async def index_of(svc: Services, repo_id: str) -> AsyncIndex:
    """PostgreSQL full-text on PostgreSQL, else an FTS5 file (``codeindex.backends``)."""
    settings = svc.settings
    remote = settings.code_index_embeddings and settings.code_index_embedder == "openai"
    key = await endpoint_key(svc) if remote else ""
    embedder = embedder_for(settings, key)
    return open_index(svc.engine, settings.data_dir, repo_id, embedder=embedder)


async def _head(repo: dict[str, Any]) -> str:
    path = Path(repo["path"])
    branch = repo["default_branch"] or "HEAD"
    commit = await git.resolve_commit(path, branch) or await git.resolve_commit(path, "HEAD")
    if commit is None:
        raise Conflict(f"Repository '{repo['name']}' has no commit to index yet.")
    return commit


async def update_repo(svc: Services, repo: dict[str, Any]) -> dict[str, Any]:
    commit = await _head(repo)
    index = await index_of(svc, repo["id"])
    stats = await index.update(Path(repo["path"]), commit)
    return {
        "repo_id": repo["id"],
        "name": repo["name"],
        "commit": stats.commit,
        "files": stats.files,
        "indexed": stats.indexed,
        "added": stats.added,
        "changed": stats.changed,
        "removed": stats.removed,
        "seconds": round(stats.seconds, 4),
    }


async def build(svc: Services, project_ref: str) -> dict[str, Any]:
    project = await project_service.get_project(svc, project_ref)
    return {
        "project_id": project["id"],
        "repos": [await update_repo(svc, r) for r in project["repos"]],
    }


async def search(svc: Services, project_ref: str, query: str, limit: int) -> dict[str, Any]:
    """The best files for ``query`` across the project's indexed repositories."""
    project = await project_service.get_project(svc, project_ref)
    hits: list[dict[str, Any]] = []
    for repo in project["repos"]:
        index = await index_of(svc, repo["id"])
        found = await index.search(query, limit)
        hits += [
            {
                "repo_id": repo["id"],
                "path": h.path,
                "score": h.score,
                "line": h.line,
                "snippet": h.snippet,
            }
            for h in found
        ]
    hits.sort(key=lambda h: -float(h["score"]))
    return {"project_id": project["id"], "query": query, "data": hits[:limit]}


async def _repo_map(svc: Services, repo: dict[str, Any]) -> dict[str, Any]:
    index = await _indexed(svc, repo)
    commit = await index.commit()
    files = await index.files()
    manifests: dict[str, str | None] = {}
    for name in _MANIFESTS:
        shown = await git.git("show", f"{commit}:{name}", cwd=Path(repo["path"]), check=False)
        manifests[name] = shown.stdout if shown.returncode == 0 else None
    deps, scripts = pm.dependencies(manifests.get)
    mods = pm.modules(files)
    edges = pm.import_edges(await index.texts(".py"))
    return {
        "repo_id": repo["id"],
        "name": repo["name"],
        "commit": commit,
        "files": len(files),
        "lines": sum(f[2] for f in files),
        "languages": pm.languages(files),
        "modules": mods,
        "entry_points": pm.entry_points((f[0] for f in files), scripts),
        "dependencies": deps,
        "imports": [{"from": a, "to": b} for a, b in edges],
        "mermaid": pm.mermaid(mods, edges),
    }


async def project_map(svc: Services, project_ref: str) -> dict[str, Any]:
    project = await project_service.get_project(svc, project_ref)
    return {
        "project_id": project["id"],
        "repos": [await _repo_map(svc, r) for r in project["repos"]],
    }


async def after_landing(svc: Services, run_id: str) -> None:
    """Update the existing indexes of the repositories a landed run changed."""
    async with svc.engine.connect() as conn:
        run = await runs.get(conn, run_id)
    project = await project_service.get_project(svc, run["project_id"])
    for repo in project["repos"]:
        if repo["id"] not in run["repo_ids"]:
            continue
        if await (await index_of(svc, repo["id"])).exists():
            stats = await update_repo(svc, repo)
            log.info("code index of %s updated after run %s: %s", repo["name"], run_id, stats)


#: ``rag_enabled``: snippets added to the agent's instructions, and their total size at most.
RAG_HITS = 5
RAG_CHARS = 6000
RAG_HEADER = (
    "Relevant code found by Codeyard's index of this repository for your task (a starting "
    "point; read the files themselves before changing them):"
)


async def context_for(
    svc: Services, repos: list[dict[str, Any]], prompt: str
) -> tuple[str, dict[str, Any]] | None:
    """(text for the instructions, ``context.added`` data) from the repositories' indexes, or
    None when none is indexed or nothing matches."""
    found: list[tuple[dict[str, Any], Any]] = []
    for repo in repos:
        index = await index_of(svc, repo["id"])
        if await index.exists():
            hits = await index.search(prompt, RAG_HITS)
            found += [(repo, h) for h in hits]
    found.sort(key=lambda pair: -pair[1].score)
    blocks: list[str] = []
    items: list[dict[str, Any]] = []
    size = len(RAG_HEADER)
    for repo, hit in found[:RAG_HITS]:
        where = f"{repo['name']}/{hit.path}" if len(repos) > 1 else hit.path
        block = f"\n\n--- {where} (line {hit.line}) ---\n{hit.snippet}"
        if size + len(block) > RAG_CHARS:
            break
        blocks.append(block)
        size += len(block)
        items.append(
            {
                "repo_id": repo["id"],
                "path": hit.path,
                "line": hit.line,
                "score": round(hit.score, 4),
            }
        )
    if not items:
        return None
    text = RAG_HEADER + "".join(blocks)
    data = {"source": "code_index", "query": prompt[:500], "items": items, "chars": len(text)}
    return text, data


async def _indexed(svc: Services, repo: dict[str, Any]) -> AsyncIndex:
    index = await index_of(svc, repo["id"])
    if not await index.exists():
        await update_repo(svc, repo)
    return index


async def schema(svc: Services, project_ref: str) -> dict[str, Any]:
    """Tables each repository declares (SQL, SQLAlchemy/Alembic, Django, Laravel)."""
    project = await project_service.get_project(svc, project_ref)
    out = []
    for repo in project["repos"]:
        index = await _indexed(svc, repo)
        texts: list[tuple[str, str]] = []
        for suffix in (".sql", ".py", ".php"):
            texts += await index.texts(suffix)
        found = dbschema.tables(texts)
        out.append(
            {
                "repo_id": repo["id"],
                "name": repo["name"],
                "tables": found,
                "mermaid": dbschema.mermaid_er(found),
            }
        )
    return {"project_id": project["id"], "repos": out}


async def diagrams(svc: Services, project_ref: str) -> str:
    """Markdown with a Mermaid module graph and ER diagram per repository."""
    mapped = await project_map(svc, project_ref)
    schemas = {r["repo_id"]: r for r in (await schema(svc, project_ref))["repos"]}
    parts = ["# Architecture diagrams", "", "Generated by Codeyard from the code.", ""]
    for repo in mapped["repos"]:
        parts += [f"## {repo['name']}", "", "### Modules and imports", "", "```mermaid"]
        parts += [repo["mermaid"].rstrip(), "```", ""]
        tables = schemas[repo["repo_id"]]
        if tables["tables"]:
            parts += ["### Database schema", "", "```mermaid", tables["mermaid"].rstrip(), "```"]
            parts.append("")
    return "\n".join(parts)
