"""A run's pull request after it was opened (issue 21): merge it on the forge, list a project's.

Which forge serves a run's repository is decided by :mod:`codeyard.prs.registry`, as when the
pull request was opened; this module adds what happens afterwards and records it on the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from codeyard.domain import events as ev
from codeyard.domain.errors import Conflict, NotFound
from codeyard.prs import registry as pr_registry
from codeyard.prs.base import MergeMethod, PrConfig, PullRequestHost
from codeyard.services.context import Services
from codeyard.store import projects, runs
from codeyard.store.writer import Tx
from codeyard.workspace.git import git

__all__ = ["merge", "project_pull_requests"]


async def _host(
    svc: Services, ref: str
) -> tuple[dict[str, Any], dict[str, Any], str, PullRequestHost]:
    async with svc.engine.connect() as conn:
        run = await runs.get(conn, ref)
        stored = run["pull_request"]
        if not stored:
            raise NotFound(
                f"Run {run['number']} has no pull request; open one with resolve create_pr."
            )
        repo = await projects.get_repo(conn, stored["repo_id"])
    remote_url = (await git("remote", "get-url", "origin", cwd=Path(repo["path"]))).stdout
    return run, stored, remote_url, await pr_registry.host_for(remote_url, PrConfig.from_env())


async def merge(svc: Services, ref: str, method: MergeMethod, sha: str | None) -> dict[str, Any]:
    """Merge the run's pull request on the forge (only the head ``sha`` when given, else the
    head it has now) and record ``pr.merged``; answers the pull request as it is after."""
    run, stored, remote_url, host = await _host(svc, ref)
    number = int(stored["number"])
    current = await host.get(remote_url, number)
    if current.state != "open":
        raise Conflict(
            f"Pull request #{number} is {current.state}; only an open pull request can be merged."
        )
    if waiting := current.waiting_on():
        # GitHub would refuse too (405), but without saying which check; with no protection
        # readable (``required_checks`` None) the forge decides alone.
        raise Conflict(
            f"Pull request #{number} waits for its required checks ({'; '.join(waiting)}): "
            f"merge once they pass (GET /api/runs/{run['id']}/pull-request shows them).",
            waiting_on=waiting,
        )
    head = sha or current.head_sha
    await host.merge(remote_url, number, method, head)
    merged = ev.PrMerged(repo_id=stored["repo_id"], number=number, method=method, head_sha=head)

    async def job(tx: Tx) -> None:
        # Merged: the run's pull-request loop ends (a completed run takes no more turns).
        row = await runs.lock(tx, run["id"])
        value = dict(row["pull_request"] or stored)
        if int(value.get("number") or 0) == number and value.get("repo_id") == stored["repo_id"]:
            value["state"] = "merged"
            await runs.update_fields(tx, run["id"], pull_request=value)
        await tx.emit_one(run["id"], merged)

    await svc.writer.run(job)
    return (await host.get(remote_url, number)).to_dict()


async def project_pull_requests(svc: Services, project_ref: str) -> list[dict[str, Any]]:
    """The pull requests the project's runs opened, newest run first, as recorded (no forge
    request: ``GET /api/runs/{id}/pull-request`` has the live state)."""
    async with svc.engine.connect() as conn:
        project = await projects.get_project(conn, project_ref)
        held = await runs.all_of_project(conn, project["id"])
    out = []
    for run in sorted(held, key=lambda r: -int(r["number"])):
        pulls = [run["pull_request"], *((run["pull_request"] or {}).get("others") or [])]
        for pull in pulls if run["pull_request"] else []:
            out.append(
                {
                    "run_id": run["id"],
                    "run_number": run["number"],
                    "run_title": run["title"],
                    "run_status": run["status"],
                    "repo_id": pull.get("repo_id"),
                    "url": pull["url"],
                    "number": int(pull["number"]),
                    "state": pull.get("state"),
                }
            )
    return out
