"""Landing a run's work: merge, squash, rebase, pull request, discard, agent merge. The git
actions around it (commit, push, rebase onto the target, rename the branch, branches) are
``run_git``.

Landing works from a snapshot commit of each worktree, checks every repository before changing
any, and lands all repositories or none; a refused landing changes nothing, not even the run
branch.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from codeyard import crashpoints
from codeyard.auth.principal import Principal
from codeyard.domain import events as ev
from codeyard.domain.errors import BadRequest, Conflict, InvalidTransition, NotFound
from codeyard.domain.status import RunStatus, check_action
from codeyard.prs import registry as pr_registry
from codeyard.prs.base import PrConfig
from codeyard.run_workspace.checkpointing import delete_run_refs
from codeyard.run_workspace.landing_once import land_once
from codeyard.run_workspace.on_host import OnWorktreeHost
from codeyard.run_workspace.worktree_dispatch import in_worktrees
from codeyard.run_workspace.worktree_writes import (
    ADOPT,
    MERGE_IN,
    REMOVE,
    SNAPSHOT,
    AdoptJob,
    MergeInJob,
    RemoveJob,
    SnapshotJob,
)
from codeyard.services import checks as check_service
from codeyard.services import ownership, profile, run_git
from codeyard.services import runs as run_service
from codeyard.services.context import Services
from codeyard.store import fencing, runs
from codeyard.store.writer import Tx
from codeyard.tickets import gate as review_gate
from codeyard.workspace import branches, landing
from codeyard.workspace.git import git

log = logging.getLogger(__name__)
S = RunStatus
LAND: dict[str, landing.Strategy] = {"merge": "merge", "squash": "squash", "rebase": "rebase"}


async def resolve(
    svc: Services, ref: str, body: dict[str, Any], principal: Principal
) -> dict[str, Any]:
    run, repos = await run_git.load_run(svc, ref)
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
    made = await in_worktrees(svc.executor, run, SNAPSHOT, job, run_git.here(svc))
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
    run_git.need_worktrees(run)
    message = await run_git.commit_message(svc, run, body.get("message"))
    author = await run_git.run_author(svc, run)
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
        await in_worktrees(svc.executor, run, ADOPT, adopt, run_git.here(svc))
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
    await in_worktrees(svc.executor, run, REMOVE, remove, run_git.here(svc))
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
    run_git.need_worktrees(run)
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
    message = await run_git.commit_message(svc, run, body.get("message"))
    author = await run_git.run_author(svc, run)
    await _snapshot(svc, run, message, author)  # the run branch holds all the work
    created = []
    for repo_id, repo, remote_url, host in hosts:
        await fencing.verify(svc.engine)  # nothing pushed or opened for a stale attempt
        async with profile.push_env(svc, run["created_by"]) as env:
            await branches.push(repo, run["branch"], env=env)
        target = body.get("target_branch") or repos[repo_id]["default_branch"] or "main"
        summary = await run_git.final_message(svc, run["id"])
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
    run, repos = await run_git.load_run(svc, ref)
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
    the git work where the worktrees are (``worktree_writes``)."""
    run_git.need_worktrees(run)
    author = await run_git.run_author(svc, run)
    targets = {
        repo_id: body.get("target_branch") or repos[repo_id]["default_branch"] or "main"
        for repo_id in run["worktrees"]
    }
    job = MergeInJob(
        dict(run["worktrees"]),
        targets,
        run["branch"],
        await run_git.commit_message(svc, run, None),
        author.name,
        author.email,
    )
    merged = await in_worktrees(svc.executor, run, MERGE_IN, job, run_git.here(svc))
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
