"""How Codeyard reaches the hosting platforms (issue 21): GitHub, GitLab, Gitea/Forgejo — each
platform's status and what a local repository's ``origin`` is. GitHub's webhooks are in
``services.github``, its polling in ``services.github_poll``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from codeyard.domain.errors import BadRequest
from codeyard.prs import registry as pr_registry
from codeyard.prs.base import PrConfig, parse_remote, redact_remote
from codeyard.services.context import Services
from codeyard.services.github_poll import should_poll
from codeyard.store import github as store
from codeyard.workspace.git import git


async def _reach(config: PrConfig, web_host: str) -> tuple[str | None, list[str]]:
    """The registered host that would serve a remote on ``web_host``, or what each lacks."""
    problems = []
    for factory in pr_registry.HOSTS.entries():
        host = factory(config)
        if not host.matches(f"https://{web_host}/o/r"):
            continue
        problem = await host.problem()
        if problem is None:
            return host.name, []
        problems.append(f"{host.name}: {problem}")
    return None, problems


async def platforms(svc: Services) -> list[dict[str, Any]]:
    """How Codeyard reaches each hosting platform (CodePlane's platform status): GitHub always,
    GitLab always (gitlab.com unless ``CODEYARD_GITLAB_URL`` says otherwise), Gitea/Forgejo when
    ``CODEYARD_GITEA_URL`` is set. Webhooks and polling are GitHub's only."""
    config = PrConfig.from_env()
    usable, problems = await _reach(config, config.github_web_host)
    async with svc.engine.connect() as conn:
        recent = await store.list_deliveries(conn, limit=1, before=None, event=None)
    out = [
        {
            "platform": "github",
            "web_host": config.github_web_host,
            "api_url": config.github_api_url,
            "connected_via": usable,
            "problems": problems,
            "webhook_secret_configured": bool(svc.settings.github_webhook_secret),
            "last_delivery_at": recent[0]["received_at"] if recent else None,
            "polling": should_poll(svc.settings),
            "poll_budget_per_hour": svc.settings.github_poll_budget_per_hour,
        }
    ]
    others = [("gitlab", config.gitlab_url, "/api/v4"), ("gitea", config.gitea_url, "/api/v1")]
    for platform, web_url, api_path in others:
        if not web_url:
            continue
        host_name = (urlsplit(web_url).hostname or "").lower()
        usable, problems = await _reach(config, host_name)
        out.append(
            {
                "platform": platform,
                "web_host": host_name,
                "api_url": web_url + api_path,
                "connected_via": usable,
                "problems": problems,
                "webhook_secret_configured": False,
                "last_delivery_at": None,
                "polling": False,
                "poll_budget_per_hour": 0,
            }
        )
    return out


async def detect_remote(path: str) -> dict[str, Any]:
    """What a local repository's ``origin`` is, and whether Codeyard can open pull requests
    there (the remote's credentials are never shown)."""
    folder = Path(path).expanduser()
    try:
        is_dir = await asyncio.to_thread(folder.is_dir)
    except OSError:  # a name too long for the file system, a loop of links: not a directory
        is_dir = False
    if not is_dir:
        raise BadRequest(f"'{path}' is not a directory on the server; give a repository's path.")
    found = await git("remote", "get-url", "origin", cwd=folder, check=False)
    if found.returncode != 0:
        raise BadRequest(
            f"'{path}' has no 'origin' remote (or is not a git repository); add one with "
            f"`git -C {path} remote add origin <url>`."
        )
    url = found.stdout.strip()
    remote = parse_remote(url)
    config = PrConfig.from_env()
    platform = _platform(config, remote.host) if remote else None
    problem: str | None = None
    host_name: str | None = None
    try:
        host_name = (await pr_registry.host_for(url, config)).name
    except BadRequest as exc:
        problem = exc.detail
    return {
        "remote": redact_remote(url),
        "host": remote.host if remote else None,
        "repository": remote.path if remote else None,
        "platform": platform,
        "pull_requests_via": host_name,
        "problem": problem,
    }


def _platform(config: PrConfig, host: str) -> str | None:
    """Which configured forge a remote's host is (``github``, ``gitlab``, ``gitea``)."""
    forges = [
        ("github", config.github_web_host),
        ("gitlab", urlsplit(config.gitlab_url).hostname),
        ("gitea", urlsplit(config.gitea_url or "").hostname),
    ]
    return next((name for name, web in forges if web and web.lower() == host), None)
