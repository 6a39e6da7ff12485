"""How Codeyard reaches GitHub (issue 21): the platform's status and what a local repository's
``origin`` is. Webhooks and polling are in ``services.github``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from codeyard.domain.errors import BadRequest
from codeyard.prs import registry as pr_registry
from codeyard.prs.base import PrConfig, parse_remote, redact_remote
from codeyard.services.context import Services
from codeyard.services.github import should_poll
from codeyard.store import github as store
from codeyard.workspace.git import git


async def platforms(svc: Services) -> list[dict[str, Any]]:
    """How Codeyard reaches each hosting platform (CodePlane's platform status): GitHub only."""
    config = PrConfig.from_env()
    hosts = [factory(config) for factory in pr_registry.HOSTS.entries()]
    usable = None
    problems = []
    for host in hosts:
        if not host.matches(f"https://{config.github_web_host}/o/r"):
            continue
        problem = await host.problem()
        if problem is None and usable is None:
            usable = host.name
        elif problem is not None:
            problems.append(f"{host.name}: {problem}")
    async with svc.engine.connect() as conn:
        recent = await store.list_deliveries(conn, limit=1, before=None, event=None)
    return [
        {
            "platform": "github",
            "web_host": config.github_web_host,
            "api_url": config.github_api_url,
            "connected_via": usable,
            "problems": [] if usable else problems,
            "webhook_secret_configured": bool(svc.settings.github_webhook_secret),
            "last_delivery_at": recent[0]["received_at"] if recent else None,
            "polling": should_poll(svc.settings),
            "poll_budget_per_hour": svc.settings.github_poll_budget_per_hour,
        }
    ]


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
    github = remote is not None and remote.host == config.github_web_host
    problem: str | None = None
    host_name: str | None = None
    if github:
        try:
            host = await pr_registry.host_for(url, config)
            host_name = host.name
        except BadRequest as exc:
            problem = exc.detail
    return {
        "remote": redact_remote(url),
        "host": remote.host if remote else None,
        "repository": remote.path if remote else None,
        "platform": "github" if github else None,
        "pull_requests_via": host_name,
        "problem": problem
        if github
        else "Only GitHub remotes can get pull requests (github.com or the configured "
        "Enterprise host).",
    }
