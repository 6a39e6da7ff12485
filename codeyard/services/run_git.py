"""A run's branch and the git actions on it, short of landing: commit the worktrees, push,
rebase onto the target, rename the branch, list a project's branches; and what landing
shares with them (the run and its repositories, its author, its commit message, where its
worktrees are).

Each action works where the worktrees are (this server or the run's worker host,
``worktree_dispatch``) and records what it did as the run's events.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from codeyard.domain import events as ev
from codeyard.domain import fold
from codeyard.domain.errors import InvalidTransition
from codeyard.domain.status import RunStatus
from codeyard.run_workspace.worktree_dispatch import Here, in_worktrees
from codeyard.run_workspace.worktree_writes import COMMIT, REBASE, CommitJob, RebaseJob
from codeyard.services import profile
from codeyard.services import sandbox as sandbox_service
from codeyard.services.context import Services
from codeyard.store import events, fencing, projects, runs, users
from codeyard.store.writer import Tx
from codeyard.workspace import branches

S = RunStatus


async def load_run(svc: Services, ref: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    async with svc.engine.connect() as conn:
        run = await runs.get(conn, ref)
        repos = {r["id"]: r for r in await projects.repos_of(conn, run["project_id"])}
    return run, repos


def need_worktrees(run: dict[str, Any]) -> None:
    if not run["worktrees"]:
        raise InvalidTransition(
            f"Run {run['number']} has no worktree (never started, discarded or cleaned up): "
            "there is nothing to land.",
            current_status=run["status"],
        )


async def final_message(svc: Services, run_id: str) -> str | None:
    async with svc.engine.connect() as conn:
        msgs = await events.read_all(conn, run_id, frozenset({"agent.message"}))
    final: str | None = fold.summary([e.to_dict() for e in msgs])["final_message"]
    return final


async def run_author(svc: Services, run: dict[str, Any]) -> branches.Author:
    """The run's owner's git identity: author and committer of every commit made for the run."""
    async with svc.engine.connect() as conn:
        who = await users.git_identity(conn, run["created_by"])
    return branches.Author(who.name, who.email)


async def commit_message(svc: Services, run: dict[str, Any], message: str | None) -> str:
    if message:
        return message
    summary = await final_message(svc, run["id"])
    body = f"\n\n{summary}" if summary else ""
    return f"{run['title']}{body}\n\nCodeyard run #{run['number']} ({run['provider']})"


def here(svc: Services) -> Here:
    return Here(svc.engine, svc.writer, lambda: sandbox_service.current(svc))


async def commit(svc: Services, ref: str, message: str | None) -> dict[str, Any]:
    run, _ = await load_run(svc, ref)
    need_worktrees(run)
    _not_while_working(run, "commit")
    text = await commit_message(svc, run, message)
    author = await run_author(svc, run)
    work = CommitJob(dict(run["worktrees"]), text, author.name, author.email)
    made = (await in_worktrees(svc.executor, run, COMMIT, work, here(svc))).made
    if not made:
        raise InvalidTransition(
            "There are no outstanding changes to commit.", current_status=run["status"]
        )

    async def job(tx: Tx) -> None:
        for repo_id, sha in made.items():
            await tx.emit_one(run["id"], ev.GitCommitted(repo_id=repo_id, sha=sha, message=text))

    await svc.writer.run(job)
    return {"commits": made}


def _not_while_working(run: dict[str, Any], what: str) -> None:
    if S(run["status"]) in (S.QUEUED, S.PREPARING, S.RUNNING, S.WAITING):
        raise InvalidTransition(
            f"Cannot {what} while the agent is working; pause it first.",
            current_status=run["status"],
        )


async def push(svc: Services, ref: str, force: bool) -> dict[str, Any]:
    run, repos = await load_run(svc, ref)
    if not run["branch"]:
        raise InvalidTransition("The run has no branch yet.", current_status=run["status"])

    async def job(tx: Tx) -> None:
        for repo_id in run["repo_ids"]:
            pushed = ev.GitPushed(
                repo_id=repo_id, branch=run["branch"], remote="origin", force=force
            )
            await tx.emit_one(run["id"], pushed)

    with fencing.acting_for(run):
        for repo_id in run["repo_ids"]:
            await fencing.verify(svc.engine)  # a run another attempt took is not pushed
            async with profile.push_env(svc, run["created_by"]) as env:
                path = Path(repos[repo_id]["path"])
                await branches.push(path, run["branch"], force=force, env=env)
        await svc.writer.run(job)
    return {"branch": run["branch"], "remote": "origin", "pushed": True}


async def rebase(svc: Services, ref: str, onto: str | None) -> dict[str, Any]:
    run, repos = await load_run(svc, ref)
    need_worktrees(run)
    _not_while_working(run, "rebase")
    author = await run_author(svc, run)
    targets = {rid: onto or repos[rid]["default_branch"] or "main" for rid in run["worktrees"]}
    job = RebaseJob(dict(run["worktrees"]), targets, author.name, author.email)
    heads = (await in_worktrees(svc.executor, run, REBASE, job, here(svc))).heads
    await svc.writer.run(lambda tx: tx.emit_one(run["id"], ev.GitRebased(heads=heads, onto=onto)))
    return {"heads": heads}


async def rename_branch(svc: Services, ref: str, name: str) -> dict[str, Any]:
    run, repos = await load_run(svc, ref)
    if not run["branch"]:
        raise InvalidTransition("The run has no branch yet.", current_status=run["status"])
    for repo_id in run["repo_ids"]:
        await branches.rename_branch(Path(repos[repo_id]["path"]), run["branch"], name)

    async def job(tx: Tx) -> dict[str, Any]:
        await runs.update_fields(tx, run["id"], branch=name)
        await tx.emit_one(run["id"], ev.GitBranchRenamed(from_=run["branch"], to=name))
        return await runs.lock(tx, run["id"])

    return runs.public(await svc.writer.run(job))


async def project_branches(svc: Services, project_ref: str) -> list[dict[str, Any]]:
    async with svc.engine.connect() as conn:
        project = await projects.get_project(conn, project_ref)
        repo_rows = await projects.repos_of(conn, project["id"])
        by_branch = {
            r["branch"]: r for r in await runs.all_of_project(conn, project["id"]) if r["branch"]
        }
    out = []
    for repo in repo_rows:
        for info in await branches.list_branches(
            Path(repo["path"]), repo["default_branch"] or "main"
        ):
            owner = by_branch.get(info.name)
            out.append(
                {
                    "repo_id": repo["id"],
                    **asdict(info),
                    "run_id": owner["id"] if owner else None,
                    "pull_request": owner["pull_request"] if owner else None,
                }
            )
    return out
