"""Linking a project's repository to a GitHub repository, and unlinking it (issue 21).

A Codeyard project's GitHub repository is its repository's ``origin``: pull requests, webhooks
and the poller all follow from it. So a link is that remote, nothing stored beside it: linking
checks with GitHub that the repository exists and is visible to Codeyard's token, then adds
``origin`` (never replacing one: a different origin is the user's, and answered 409 naming it).
The link is marked in the repository's own git config (``codeyard.githubLink``), so unlinking
removes only an origin Codeyard added, never one the user set up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from codeyard.domain.errors import BadRequest, Conflict
from codeyard.prs.base import PrConfig, parse_remote, redact_remote
from codeyard.prs.github import GitHubRest
from codeyard.services.context import Services
from codeyard.store import projects
from codeyard.workspace.git import git

__all__ = ["link", "unlink"]

MARK = "codeyard.githubLink"


async def _repo(svc: Services, project_ref: str, repo_id: str | None) -> dict[str, Any]:
    async with svc.engine.connect() as conn:
        project = await projects.get_project(conn, project_ref)
        repos = await projects.repos_of(conn, project["id"])
    chosen = [r for r in repos if repo_id in (None, r["id"])]
    if len(chosen) != 1:
        names = ", ".join(f"{r['id']} ({r['name']})" for r in repos) or "none"
        raise BadRequest(f"Name the repository with repo_id: one of {names}.")
    return chosen[0]


async def _origin(path: Path) -> str | None:
    found = await git("remote", "get-url", "origin", cwd=path, check=False)
    return found.stdout.strip() if found.returncode == 0 else None


async def link(
    svc: Services, project_ref: str, repository: str, repo_id: str | None
) -> dict[str, Any]:
    """Make ``owner/name`` on GitHub the repository's ``origin``; ``linked`` False when it was
    already (nothing changed)."""
    repo = await _repo(svc, project_ref, repo_id)
    path = Path(repo["path"])
    config = PrConfig.from_env()
    url = f"https://{config.github_web_host}/{repository}.git"
    current = await _origin(path)
    if current is not None:
        remote = parse_remote(current)
        if remote and remote.host == config.github_web_host and remote.path == repository:
            return {"repo_id": repo["id"], "remote": redact_remote(current), "linked": False}
        raise Conflict(
            f"The repository already has an origin ({redact_remote(current)}); Codeyard does "
            f"not replace it. To link {repository}, run `git -C {path} remote set-url origin "
            f"{url}` yourself.",
            remote=redact_remote(current),
        )
    host = GitHubRest(config)
    if (problem := await host.problem()) is not None:
        raise BadRequest(problem + ", or connect a GitHub App (POST /api/github/app/manifest)")
    await host.repository(repository)
    await git("remote", "add", "origin", url, cwd=path)
    await git("config", MARK, url, cwd=path)
    return {"repo_id": repo["id"], "remote": url, "linked": True}


async def unlink(svc: Services, project_ref: str, repo_id: str | None) -> dict[str, Any]:
    """Remove the ``origin`` a link added; 409 for an origin the user set up."""
    repo = await _repo(svc, project_ref, repo_id)
    path = Path(repo["path"])
    current = await _origin(path)
    marked = await git("config", "--get", MARK, cwd=path, check=False)
    if current is None:
        raise Conflict("The repository has no origin: it is not linked to a GitHub repository.")
    if marked.returncode != 0 or marked.stdout.strip() != current:
        raise Conflict(
            f"The origin ({redact_remote(current)}) was not added by a link: Codeyard leaves it. "
            f"Remove it yourself with `git -C {path} remote remove origin` if you mean to."
        )
    await git("remote", "remove", "origin", cwd=path)
    await git("config", "--unset", MARK, cwd=path)
    return {"repo_id": repo["id"], "remote": redact_remote(current), "linked": False}
