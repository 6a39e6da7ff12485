"""Landing a run's work: merge, squash, rebase, pull request, discard, agent merge; and the
git actions around it (commit, push, rebase onto the target, rename the branch, branches).

Landing works from a snapshot commit of each worktree, checks every repository before changing
any, and lands all repositories or none; a refused landing changes nothing, not even the run
branch.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from codeyard import crashpoints
from codeyard.auth.principal import Principal
from codeyard.domain import events as ev
from codeyard.domain import fold
from codeyard.domain.errors import BadRequest, Conflict, InvalidTransition, NotFound
from codeyard.domain.status import RunStatus, check_action
from codeyard.prs import registry as pr_registry
from codeyard.prs.base import PrConfig
from codeyard.run_workspace.checkpointing import delete_run_refs
from codeyard.run_workspace.landing_once import land_once
from codeyard.run_workspace.on_host import OnWorktreeHost
from codeyard.run_workspace.worktree_ops import (
    ADOPT,
    COMMIT,
    MERGE_IN,
    REBASE,
    REMOVE,
    SNAPSHOT,
    AdoptJob,
    CommitJob,
    Here,
    MergeInJob,
    RebaseJob,
    RemoveJob,
    SnapshotJob,
    in_worktrees,
)
from codeyard.services import checks as check_service
from codeyard.services import ownership, profile
from codeyard.services import runs as run_service
from codeyard.services import sandbox as sandbox_service
from codeyard.services.context import Services
from codeyard.store import events, fencing, projects, runs, users
from codeyard.store.writer import Tx
from codeyard.tickets import gate as review_gate
from codeyard.workspace import branches, landing
from codeyard.workspace.git import git

log = logging.getLogger(__name__)
S = RunStatus
LAND: dict[str, landing.Strategy] = {"merge": "merge", "squash": "squash", "rebase": "rebase"}


async def _load(svc: Services, ref: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    async with svc.engine.connect() as conn:
        run = await runs.get(conn, ref)
        repos = {r["id"]: r for r in await projects.repos_of(conn, run["project_id"])}
    return run, repos


def _need_worktrees(run: dict[str, Any]) -> None:
    if not run["worktrees"]:
        raise InvalidTransition(
            f"Run {run['number']} has no worktree (never started, discarded or cleaned up): "
            "there is nothing to land.",
            current_status=run["status"],
        )


async def _final_message(svc: Services, run_id: str) -> str | None:
    async with svc.engine.connect() as conn:
        msgs = await events.read_all(conn, run_id, frozenset({"agent.message"}))
    final: str | None = fold.summary([e.to_dict() for e in msgs])["final_message"]
    return final


async def _author(svc: Services, run: dict[str, Any]) -> branches.Author:
    """The run's owner's git identity: author and committer of every commit made for the run."""
    async with svc.engine.connect() as conn:
        who = await users.git_identity(conn, run["created_by"])
    return branches.Author(who.name, who.email)


async def _commit_message(svc: Services, run: dict[str, Any], message: str | None) -> str:
    if message:
        return message
    summary = await _final_message(svc, run["id"])
    body = f"\n\n{summary}" if summary else ""
    return f"{run['title']}{body}\n\nCodeyard run #{run['number']} ({run['provider']})"


async def resolve(
    svc: Services, ref: str, body: dict[str, Any], principal: Principal
) -> dict[str, Any]:
    run, repos = await _load(svc, ref)
    check_action("resolve", S(run["status"]))
    action = body["action"]
    if body.get("target_branch") and action != "discard":
        await ownership.check_target_branch(
            svc, principal, run["project_id"], body["target_branch"]
        )
    if action in LAND or action == "create_pr":
        await review_gate.check_approved(svc, run)  # the require_review_to_merge setting
    if action in LAND:
        # Fenced on the attempt read above: a run a new attempt took meanwhile is not landed.
        with fencing.acting_for(run):
            return await _land(svc, run, repos, action, body)
    if action == "discard":
        return await _discard(svc, run)
    if action == "create_pr":
        with fencing.acting_for(run):
            return await _create_pr(svc, run, repos, body)
    return await _agent_merge(svc, run, repos, body)


def _mid_merge(run: dict[str, Any], path: str, unmerged: list[str]) -> InvalidTransition:
    """A worktree left mid-merge (an agent_merge turn that did not finish) is not landed: its
    conflict markers would be committed. Said as it is, not as a conflict check that changed
    nothing."""
    files = f" with conflicts in {', '.join(unmerged)}" if unmerged else ""
    return InvalidTransition(
        f"Run {run['number']}'s worktree {path} is in the middle of a merge{files}. "
        f'Ask the agent to finish it (`codeyard msg {run["number"]} "Finish the merge"`) '
        "or resolve and commit it there, then land again.",
        current_status=run["status"],
        conflicts=unmerged,
        unfinished_merge=True,
    )


def _here(svc: Services) -> Here:
    return Here(svc.engine, svc.writer, lambda: sandbox_service.current(svc))


async def _snapshot(
    svc: Services,
    run: dict[str, Any],
    message: str,
    author: branches.Author,
    *,
    for_landing: bool = False,
) -> dict[str, list[str]]:
    """``[head, commit]`` per repository: each worktree's state as a commit, made where the
    worktrees are. For a landing (``for_landing``) a worktree mid-merge refuses and no ref moves
    (the run branch adopts it once landed); else the run branch adopts it at once."""
    job = SnapshotJob(
        dict(run["worktrees"]),
        message,
        author.name,
        author.email,
        refuse_mid_merge=for_landing,
        adopt_branch=None if for_landing else run["branch"],
    )
    made = await in_worktrees(svc.executor, run, SNAPSHOT, job, _here(svc))
    for path, unmerged in made.unfinished.items():
        raise _mid_merge(run, path, unmerged)
    return made.made


async def _reachable(svc: Services, run: dict[str, Any], repo: Path, commit: str) -> None:
    """A commit made on the run's worker host is in the project's repository as this server
    sees it only when both see one repository (shared storage); else 409 saying so, not git's
    "names no commit"."""
    if not (isinstance(svc.executor, OnWorktreeHost) and run.get("worker_host")):
        return
    found = await git("cat-file", "-e", f"{commit}^{{commit}}", cwd=repo, check=False)
    if found.returncode != 0:
        raise Conflict(
            f"Run {run['number']}'s work was committed on worker host '{run['worker_host']}' "
            f"({commit[:12]}), but the repository {repo} this server lands into does not have "
            "it: landing needs each project repository on storage every API server and worker "
            "mounts, at the same path (docs/scale-out.md).",
            worker_host=run["worker_host"],
        )


async def _land(
    svc: Services,
    run: dict[str, Any],
    repos: dict[str, dict[str, Any]],
    strategy: str,
    body: dict[str, Any],
) -> dict[str, Any]:
    _need_worktrees(run)
    message = await _commit_message(svc, run, body.get("message"))
    author = await _author(svc, run)
    # Where the worktrees are (this server, or their worker host); a worktree mid-merge refuses.
    snapshots = await _snapshot(svc, run, message, author, for_landing=True)
    await check_service.require_passing(svc, run)
    requests = []
    for repo_id in run["worktrees"]:
        commit = snapshots[repo_id][1]
        await _reachable(svc, run, Path(repos[repo_id]["path"]), commit)
        target = body.get("target_branch") or repos[repo_id]["default_branch"] or "main"
        requests.append(
            landing.LandingRequest(
                Path(repos[repo_id]["path"]),
                target,
                commit,
                LAND[strategy],
                body.get("message") or message,
                author,
            )
        )
    # Exactly once across a crash: the intent is on the run before any target moves (and that
    # write is fenced: a stale landing moves nothing).
    await fencing.verify(svc.engine)
    plans = await land_once(svc.writer, run, list(run["worktrees"]), requests, strategy)
    adopt = AdoptJob(dict(run["worktrees"]), run["branch"], snapshots)
    try:
        await in_worktrees(svc.executor, run, ADOPT, adopt, _here(svc))
    except Conflict:  # landed: the run branch (on a host gone since) only lags behind
        log.warning("run %s landed; its branch did not adopt the landed commit", run["id"])
    merged = [(rid, p) for rid, p in zip(run["worktrees"], plans, strict=True) if p is not None]

    async def job(tx: Tx) -> dict[str, Any]:
        for repo_id, plan in merged:
            merged_event = ev.GitMerged(
                repo_id=repo_id,
                target=plan.target_branch,
                sha=plan.new_commit,
                strategy=strategy,
                fast_forward=plan.fast_forward,
            )
            await tx.emit_one(run["id"], merged_event)
        targets = ", ".join(sorted({p.target_branch for _, p in merged}))
        return await runs.set_status(
            tx,
            run["id"],
            S.COMPLETED,
            f"{strategy} into {targets}",
            resolution="merged",
            workspace_intent=None,
        )

    return runs.public(await svc.writer.run(job))


async def _discard(svc: Services, run: dict[str, Any]) -> dict[str, Any]:
    # Where the worktrees are: cleanup scripts run there, sandboxed as that host runs them.
    remove = RemoveJob(run["id"], svc.settings.bash_timeout_seconds)
    await in_worktrees(svc.executor, run, REMOVE, remove, _here(svc))
    await delete_run_refs(svc.engine, run)
    crashpoints.reached("discard:removed")

    async def job(tx: Tx) -> dict[str, Any]:
        await runs.update_fields(tx, run["id"], worktrees={})
        return await runs.set_status(
            tx, run["id"], S.COMPLETED, "discarded", resolution="discarded"
        )

    return runs.public(await svc.writer.run(job))


async def _create_pr(
    svc: Services, run: dict[str, Any], repos: dict[str, dict[str, Any]], body: dict[str, Any]
) -> dict[str, Any]:
    """Commit outstanding work, push the branch, open a pull request per repository."""
    _need_worktrees(run)
    await check_service.require_passing(svc, run)
    config = PrConfig.from_env()
    hosts = []
    for repo_id in run["worktrees"]:
        repo = Path(repos[repo_id]["path"])
        remote = await git("remote", "get-url", "origin", cwd=repo, check=False)
        if remote.returncode != 0:
            raise BadRequest(
                f"The repository {repo} has no 'origin' remote to open a pull request "
                f"on; add one with `git -C {repo} remote add origin <url>`."
            )
        # Chosen before anything is pushed: a missing token fails with nothing changed.
        hosts.append(
            (repo_id, repo, remote.stdout, await pr_registry.host_for(remote.stdout, config))
        )
    message = await _commit_message(svc, run, body.get("message"))
    author = await _author(svc, run)
    await _snapshot(svc, run, message, author)  # the run branch holds all the work
    created = []
    for repo_id, repo, remote_url, host in hosts:
        await fencing.verify(svc.engine)  # nothing pushed or opened for a stale attempt
        async with profile.push_env(svc, run["created_by"]) as env:
            await branches.push(repo, run["branch"], env=env)
        target = body.get("target_branch") or repos[repo_id]["default_branch"] or "main"
        summary = await _final_message(svc, run["id"])
        pr = await host.create(
            remote_url,
            run["branch"],
            target,
            body.get("title") or run["title"],
            body.get("body") or summary or run["prompt"],
            bool(body.get("draft")),
        )
        created.append((repo_id, {**pr.to_dict(), "host": host.name, "repo_id": repo_id}))

    async def job(tx: Tx) -> dict[str, Any]:
        for repo_id, pr in created:
            pushed = ev.GitPushed(
                repo_id=repo_id, branch=run["branch"], remote="origin", force=False
            )
            await tx.emit_one(run["id"], pushed)
            opened = ev.PrCreated(repo_id=repo_id, url=pr["url"], number=pr["number"])
            await tx.emit_one(run["id"], opened)
        first = dict(created[0][1])
        if len(created) > 1:
            first["others"] = [pr for _, pr in created[1:]]
        return await runs.set_status(
            tx,
            run["id"],
            S.COMPLETED,
            f"pull request {first['url']}",
            resolution="pr_created",
            pull_request=first,
        )

    return runs.public(await svc.writer.run(job))


async def pull_request(svc: Services, ref: str) -> dict[str, Any]:
    """The run's pull request as the host reports it now (state, checks, review state)."""
    run, repos = await _load(svc, ref)
    stored = run["pull_request"]
    if not stored:
        raise NotFound(f"Run {run['number']} has no pull request; open one with resolve create_pr.")
    repo = Path(repos[stored["repo_id"]]["path"])
    remote_url = (await git("remote", "get-url", "origin", cwd=repo)).stdout
    host = await pr_registry.host_for(remote_url, PrConfig.from_env())
    return (await host.get(remote_url, int(stored["number"]))).to_dict()


async def _agent_merge(
    svc: Services, run: dict[str, Any], repos: dict[str, dict[str, Any]], body: dict[str, Any]
) -> dict[str, Any]:
    """Merge the latest target into the run branch (markers stay) and let the agent finish;
    the git work where the worktrees are (``worktree_ops``)."""
    _need_worktrees(run)
    author = await _author(svc, run)
    targets = {
        repo_id: body.get("target_branch") or repos[repo_id]["default_branch"] or "main"
        for repo_id in run["worktrees"]
    }
    job = MergeInJob(
        dict(run["worktrees"]),
        targets,
        run["branch"],
        await _commit_message(svc, run, None),
        author.name,
        author.email,
    )
    merged = await in_worktrees(svc.executor, run, MERGE_IN, job, _here(svc))
    for path, unmerged in merged.unfinished.items():
        raise _mid_merge(run, path, unmerged)
    conflicted = merged.conflicted
    where = ", ".join(sorted(set(targets.values())))
    if conflicted:
        prompt = (
            f"The latest {where} was merged into this branch and these files have conflict "
            f"markers: {', '.join(conflicted)}. Resolve every conflict, keep both sides' "
            "intent, run the tests, then commit the merge."
        )
    else:
        prompt = (
            f"The latest {where} was merged into this branch without conflicts. "
            "Check that it builds and that the tests pass."
        )
    return await run_service.message(
        svc, run["id"], prompt, author="codeyard", source="agent_merge"
    )


async def commit(svc: Services, ref: str, message: str | None) -> dict[str, Any]:
    run, _ = await _load(svc, ref)
    _need_worktrees(run)
    _not_while_working(run, "commit")
    text = await _commit_message(svc, run, message)
    author = await _author(svc, run)
    work = CommitJob(dict(run["worktrees"]), text, author.name, author.email)
    made = (await in_worktrees(svc.executor, run, COMMIT, work, _here(svc))).made
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
    run, repos = await _load(svc, ref)
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
    run, repos = await _load(svc, ref)
    _need_worktrees(run)
    _not_while_working(run, "rebase")
    author = await _author(svc, run)
    targets = {rid: onto or repos[rid]["default_branch"] or "main" for rid in run["worktrees"]}
    job = RebaseJob(dict(run["worktrees"]), targets, author.name, author.email)
    heads = (await in_worktrees(svc.executor, run, REBASE, job, _here(svc))).heads
    await svc.writer.run(lambda tx: tx.emit_one(run["id"], ev.GitRebased(heads=heads, onto=onto)))
    return {"heads": heads}


async def rename_branch(svc: Services, ref: str, name: str) -> dict[str, Any]:
    run, repos = await _load(svc, ref)
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
