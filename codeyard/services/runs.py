"""Run use cases: create, control (start/cancel/pause/resume), messages, delete, follow-ups."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from codeyard.agents import registry, script
from codeyard.auth.principal import Principal
from codeyard.domain import events as ev
from codeyard.domain.errors import BadRequest, Forbidden, InvalidTransition, ValidationFailed
from codeyard.domain.events import utc_now
from codeyard.domain.ids import new_id, slugify, title_from_prompt
from codeyard.domain.status import RunStatus, check_action, pull_request_open
from codeyard.executor.interface import Cancel, Message, Pause
from codeyard.run_workspace.checkpointing import delete_run_refs
from codeyard.run_workspace.prepare import remove_run_worktrees
from codeyard.services import code_index, message_images, ownership
from codeyard.services import env_sets as env_set_service
from codeyard.services import projects as project_service
from codeyard.services import providers as provider_service
from codeyard.services import sandbox as sandbox_service
from codeyard.services import workspaces as workspace_service
from codeyard.services.context import Services
from codeyard.store import policies, projects, runs
from codeyard.store.records import RunRecord
from codeyard.store.writer import Tx
from codeyard.workspace import git

S = RunStatus
#: Where a run keeps the ids of its env sets (values are decrypted only for the agent process).
ENV_SET_IDS = "env_set_ids"
#: Agent profile fields every provider reads from its options.
PROFILE_OPTIONS = (
    "instructions",
    "allowed_tools",
    "disallowed_tools",
    "max_turns",
    "permission_mode",
)


async def _resolve_agent(
    svc: Services, body: dict[str, Any]
) -> tuple[str, str | None, dict[str, Any], str | None]:
    """(provider, model, merged options, agent_id) from ``agent_id`` or ``provider``."""
    options = dict(body.get("agent_options") or {})
    options.pop(projects.AGENT_ENV, None)  # only a profile names whose sealed env to add
    model = body.get("model")
    if body.get("agent_id"):
        async with svc.engine.connect() as conn:
            agent = await projects.get_agent(conn, body["agent_id"])
        provider_name = body.get("provider") or agent["provider"]
        # The profile's own fields reach the provider as options; the run's options win.
        profile = {k: agent[k] for k in PROFILE_OPTIONS if agent.get(k) not in (None, [], "")}
        config = dict(agent["provider_config"])
        if agent.get("env_sealed"):  # masked here; the executor decrypts it at each turn
            config.pop("env", None)
            profile[projects.AGENT_ENV] = agent["id"]
        options = {**profile, **config, **options}
        if agent.get("env_set_ids"):  # the profile's env sets, then the run's own
            options[ENV_SET_IDS] = [*agent["env_set_ids"], *(options.get(ENV_SET_IDS) or [])]
        return provider_name, model or agent["model"], options, agent["id"]
    if not body.get("provider"):
        raise ValidationFailed(
            f"Give either 'agent_id' or 'provider' (one of: {', '.join(registry.names())}).",
            errors=[{"loc": ["provider"], "msg": "agent_id or provider required"}],
        )
    return body["provider"], model, options, None


async def _attach_env_sets(
    svc: Services, principal: Principal, options: dict[str, Any], extra: list[str]
) -> None:
    """Record the run's env set ids (never their values) in its options; 422 for unknown ones.

    The executor decrypts them into the agent's environment at each turn (``executor.turns``).
    """
    ids = options.get(ENV_SET_IDS) or []
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ValidationFailed(
            "agent_options.env_set_ids must be a list of env set ids (env_…).",
            errors=[{"loc": ["body", "agent_options", ENV_SET_IDS], "msg": "list of ids"}],
        )
    ids = list(dict.fromkeys([*ids, *extra]))
    if ids:
        await env_set_service.check_ids(svc, ids, principal)
        options[ENV_SET_IDS] = ids
    else:
        options.pop(ENV_SET_IDS, None)


async def _resolve_repos(
    svc: Services, body: dict[str, Any], source_ref: str, bases: dict[str, str]
) -> tuple[dict[str, Any] | None, str | None, list[dict[str, Any]]]:
    """(new project row to insert or None, existing project id, repo rows) for a new run;
    for a ``repo_path``, the commit ``source_ref`` names there goes into ``bases`` (by path),
    found by the git process that finds the work tree."""
    if body.get("project_id"):
        project = await project_service.get_project(svc, body["project_id"])
        repos = project["repos"]
        if body.get("repo_ids"):
            by_id = {r["id"]: r for r in repos}
            missing = [r for r in body["repo_ids"] if r not in by_id]
            if missing:
                raise BadRequest(
                    f"Repositories {missing} are not part of project '{project['slug']}'."
                )
            repos = [by_id[r] for r in body["repo_ids"]]
        if not repos:
            raise BadRequest(f"Project '{project['slug']}' has no repositories; add one first.")
        return None, project["id"], repos
    if body.get("repo_path"):
        # The default branch (two git processes) only for a repository seen for the first time.
        given = Path(body["repo_path"]).expanduser()
        found = await git.work_tree_commit(given, source_ref) if given.is_absolute() else None
        if found is not None:
            top, bases[str(found[0])] = found
        else:  # refused, with the reason
            top = await project_service.local_work_tree(body["repo_path"])
        repo = await projects.find_repo_by_path(svc.engine, str(top))
        if repo is not None:
            return None, repo["project_id"], [repo]
        branch = await git.default_branch(top)
        project = project_service.project_values(top.name, slugify(top.name))
        now = utc_now()
        repo = {
            "id": new_id("repo"),
            "project_id": project["id"],
            "name": top.name,
            "path": str(top),
            "url": None,
            "default_branch": branch,
            "setup_script": None,
            "cleanup_script": None,
            "copy_files": [],
            "created_at": now,
            "updated_at": now,
        }
        return project, project["id"], [repo]
    raise ValidationFailed(
        "Say where to work: 'repo_path' (a local git work tree) or 'project_id'.",
        errors=[{"loc": ["repo_path"], "msg": "repo_path or project_id required"}],
    )


def _check_may_skip_approvals(principal: Principal, options: dict[str, Any]) -> None:
    """``permission_mode: auto`` answers approvals without asking: it needs the scope that
    answers them, so a token that cannot resolve approvals cannot skip them either."""
    if options.get("permission_mode") == "auto" and "approvals:resolve" not in principal.scopes:
        raise Forbidden(
            "permission_mode 'auto' skips approvals, so it needs the 'approvals:resolve' "
            "scope; use 'default' or 'plan', or a token that may resolve approvals.",
            required_scope="approvals:resolve",
        )


def _check_budget_measurable(provider_name: str, budget: Any) -> None:
    """A run budget needs token counts: refused for a provider that reports none (the
    ``codex-acp`` adapter, the generic ``acp``) rather than kept as a budget never enforced."""
    if budget is None or registry.get(provider_name).capabilities.usage:
        return
    takers = [n for n in registry.names() if registry.get(n).capabilities.usage]
    raise ValidationFailed(
        f"A budget cannot be kept on a '{provider_name}' run: that agent reports no token "
        "usage, so Codeyard cannot tell what the run spends. Drop budget_usd, or use a "
        f"provider that reports usage ({', '.join(takers)}).",
        errors=[{"loc": ["body", "budget_usd"], "msg": f"'{provider_name}' reports no usage"}],
    )


async def create(
    svc: Services,
    body: dict[str, Any],
    principal: Principal,
    parent_run_id: str | None = None,
    delegation: dict[str, Any] | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Validate everything first, then write the run (and any new project) in one job.

    ``principal`` becomes the run's creator; env sets it names must be theirs, and a run that
    registers a new repository (``repo_path``) needs ``settings:write`` like
    ``POST /api/projects``.
    """
    created_by = principal.user_id
    if body.get("workspace_id"):  # the workspace's project and defaults (issue 22)
        body = await workspace_service.scope_run(svc, principal, body)
    prompt = (body.get("prompt") or "").strip()
    if not prompt:
        raise ValidationFailed(
            "The prompt is empty: say what the agent should do.",
            errors=[{"loc": ["body", "prompt"], "msg": "must not be empty"}],
        )
    provider_name, model, options, agent_id = await _resolve_agent(svc, body)
    if body.get("safe_mode"):  # read-only: writes denied, commands ask (before the auto check)
        options["permission_mode"] = "plan"
    _check_may_skip_approvals(principal, options)
    # The run's own options (a profile's were checked when an admin or member saved it).
    own_options = body.get("agent_options") or {}
    sandbox_service.check_admin_options(principal, dict(own_options), "agent_options")
    await sandbox_service.ensure_runnable(svc)
    await _attach_env_sets(svc, principal, options, list(body.get("env_set_ids") or []))
    registry.get(provider_name).validate_options(options)
    _check_budget_measurable(provider_name, body.get("budget_usd"))
    await provider_service.check_enabled(svc, provider_name)
    source_ref = body.get("source_ref") or "HEAD"
    found_bases: dict[str, str] = {}  # base commits found with the repository (repo_path)
    new_project, project_id, repos = await _resolve_repos(svc, body, source_ref, found_bases)
    if new_project is not None:
        if "settings:write" not in principal.scopes:
            raise Forbidden(
                f"'{body.get('repo_path')}' is not registered yet, and registering a repository "
                "creates a project, which needs the 'settings:write' scope. Ask someone who "
                "may to add it (POST /api/projects), then run in it with 'project_id'.",
                required_scope="settings:write",
            )
        new_project["owner_id"] = ownership.owner_of_new(principal)
    base_commits: dict[str, str] = {}
    for repo in repos:
        path = repo["path"]
        sha = found_bases.get(path) or await git.resolve_commit(Path(path), source_ref)
        if sha is None:
            raise BadRequest(
                f"source_ref '{source_ref}' does not name a commit in repository '{repo['name']}'. "
                "Use a branch, tag or commit that exists there.",
                source_ref=source_ref,
            )
        base_commits[repo["id"]] = sha
    set_ids = list(body.get("policy_set_ids") or [])
    known: set[str] = set()
    if set_ids:  # most runs name none: no connection taken for nothing
        async with svc.engine.connect() as conn:
            known = {s["id"] for s in await policies.sets_by_ids(conn, set_ids)}
    if missing := [i for i in set_ids if i not in known]:
        raise ValidationFailed(
            f"Unknown policy sets: {', '.join(missing)}. List them with GET /api/policy-sets.",
            errors=[{"loc": ["body", "policy_set_ids"], "msg": f"unknown: {missing}"}],
        )
    rag = await code_index.context_for(svc, repos, prompt) if body.get("rag_enabled") else None
    if rag is not None:  # the code index's snippets join the agent's instructions
        own = options.get("instructions")
        options["instructions"] = f"{own}\n\n{rag[0]}" if own else rag[0]
    # Last, so a wrong repository or ref is named first. Not for drafts (checked at start) nor
    # an agent's sub-run (MCP has no way to give a scenario; it inherits its parent's).
    if provider_name == script.NAME and not body.get("draft") and delegation is None:
        script.require_scenario(options)
    if dry_run:  # POST /api/runs/validate: everything above was checked, nothing written
        return {
            "valid": True,
            "provider": provider_name,
            "model": model,
            "agent_id": agent_id,
            "project_id": project_id,
            "registers_project": new_project is not None,
            "repos": [{"id": r["id"], "name": r["name"], "path": r["path"]} for r in repos],
            "base_commits": base_commits,
            "policy_set_ids": set_ids,
            "permission_mode": options.get("permission_mode"),
        }
    draft = bool(body.get("draft"))
    now = utc_now()
    values: dict[str, Any] = {
        "id": new_id("run"),
        "title": body.get("title") or title_from_prompt(prompt),
        "prompt": prompt,
        "project_id": project_id,
        "repo_ids": [r["id"] for r in repos],
        "agent_id": agent_id,
        "provider": provider_name,
        "model": model,
        "agent_options": options,
        "status": str(S.DRAFT if draft else S.QUEUED),
        "status_reason": None,
        "resolution": None,
        "source_ref": source_ref,
        "base_commits": base_commits,
        "branch": None,
        "worktrees": {},
        "parent_run_id": parent_run_id,
        "delegation": delegation,  # a sub-run an agent started through MCP (issue 22)
        "created_by": created_by,
        "session_id": None,
        "agent_state": {},
        "turns": 0,
        "usage": dict(runs.EMPTY_USAGE),
        "budget_usd": body.get("budget_usd"),
        "pending_approvals": 0,
        "pending_messages": [],
        "diff_stats": {"files": 0, "insertions": 0, "deletions": 0},
        "pull_request": None,
        "archived": False,
        "labels": list(body.get("labels") or []),
        "policy_set_ids": set_ids,
        "workspace_id": body.get("workspace_id"),
        "last_seq": 0,
        "queued_at": None if draft else now,
        "created_at": now,
        "started_at": None,
        "finished_at": None,
        "updated_at": now,
    }

    async def job(tx: Tx) -> dict[str, Any]:
        if new_project is not None:
            new_project["slug"] = await project_service.unique_slug(tx, new_project["slug"])
            await projects.insert_project(tx, new_project)
            await projects.insert_repo(tx, repos[0])
        values["number"] = await runs.next_run_number(tx)
        await runs.insert(tx, values)
        run = runs.public(values)
        await tx.emit_one(values["id"], ev.RunCreated(run=run))
        if rag is not None:
            await tx.emit_one(values["id"], ev.ContextAdded(**rag[1]))
        return run

    run = await svc.writer.run(job)
    if not draft:
        await svc.executor.submit(run["id"])
    return run


async def get(svc: Services, ref: str) -> dict[str, Any]:
    async with svc.engine.connect() as conn:
        return await runs.get(conn, ref)


async def get_record(svc: Services, ref: str) -> RunRecord:
    """A run by id or number, typed, for read paths that only show it."""
    async with svc.engine.connect() as conn:
        return await runs.get_record(conn, ref)


async def _transition(
    svc: Services, run_id: str, to: RunStatus, reason: str | None, **values: Any
) -> dict[str, Any]:
    async def job(tx: Tx) -> dict[str, Any]:
        return await runs.set_status(tx, run_id, to, reason, **values)

    return await svc.writer.run(job)


async def start(svc: Services, ref: str) -> dict[str, Any]:
    run = await get(svc, ref)
    check_action("start", S(run["status"]))
    if run["provider"] == script.NAME:
        script.require_scenario(run["agent_options"] or {})
    run = await _transition(svc, run["id"], S.QUEUED, "started")
    await svc.executor.submit(run["id"])
    return runs.public(run)


async def _stop(svc: Services, ref: str, signal: Cancel | Pause, to: RunStatus) -> dict[str, Any]:
    """Stop the live attempt through the executor, or (none live) move the row through the door."""
    action, reason = signal.kind, signal.reason
    run = await get(svc, ref)
    check_action(action, S(run["status"]))
    if not await svc.executor.signal(run["id"], signal):
        await _transition(svc, run["id"], to, reason)
    return runs.public(await get(svc, run["id"]))


async def cancel(svc: Services, ref: str) -> dict[str, Any]:
    return await _stop(svc, ref, Cancel(), S.CANCELLED)


async def pause(svc: Services, ref: str) -> dict[str, Any]:
    return await _stop(svc, ref, Pause(), S.PAUSED)


async def resume(svc: Services, ref: str, message: str | None) -> dict[str, Any]:
    run = await get(svc, ref)
    check_action("resume", S(run["status"]))

    async def job(tx: Tx) -> dict[str, Any]:
        current = await runs.lock(tx, run["id"])
        pending = list(current["pending_messages"])
        if message:
            pending.append(message)
            await tx.emit_one(run["id"], ev.UserMessage(text=message, author="operator"))
        return await runs.set_status(
            tx, run["id"], S.QUEUED, "resumed", pending_messages=pending, resume_at_start=False
        )

    updated = await svc.writer.run(job)
    await svc.executor.submit(run["id"])
    return runs.public(updated)


async def message(
    svc: Services,
    ref: str,
    text: str,
    author: str = "operator",
    source: str = "message",
    images: list[str] | None = None,
) -> dict[str, Any]:
    """Deliver an operator message: answer a waiting agent, queue it mid-turn, or start a turn."""
    text = text.strip()
    if not text:
        raise ValidationFailed(
            "The message is empty.", errors=[{"loc": ["body", "text"], "msg": "must not be empty"}]
        )
    run = await get(svc, ref)
    check_action("message", S(run["status"]), pr_open=pull_request_open(run["pull_request"]))
    run_id = run["id"]
    attached = await message_images.attach(svc, run, images or [])
    event = ev.UserMessage(text=text, author=author)

    async def job(tx: Tx) -> dict[str, Any]:
        current = await runs.lock(tx, run_id)
        status = S(current["status"])
        await tx.emit_one(run_id, event)
        if status in (S.RUNNING, S.WAITING):
            # The row says whether the agent asked a question (``waiting``/``question``): then
            # the message is its answer; otherwise it waits in the run's durable queue.
            if not _asked(current):
                pending = [*current["pending_messages"], text]
                await runs.update_fields(tx, run_id, pending_messages=pending)
                current["pending_messages"] = pending
            return current
        reopen = status == S.COMPLETED and pull_request_open(current["pull_request"])
        if status in (S.REVIEW, S.FAILED, S.CANCELLED) or reopen:
            entry: str | dict[str, Any] = (
                text if source == "message" else {"text": text, "source": source}
            )
            if attached:
                entry = {"text": text, "source": source, "images": attached}
            return await runs.set_status(tx, run_id, S.QUEUED, source, pending_messages=[entry])
        raise InvalidTransition(
            f"Cannot message a run in status '{status}'.", current_status=str(status)
        )

    updated = await svc.writer.run(job)
    if S(updated["status"]) == S.QUEUED:
        await svc.executor.submit(run_id)
    elif not _asked(updated):
        await svc.executor.signal(run_id, Message(text=text))
    elif not await svc.executor.signal(run_id, Message(text=text, answer=True)):
        # The question was answered or abandoned meanwhile: keep the message for the agent.
        updated = await svc.writer.run(lambda tx: _queue_message(tx, run_id, text))
        await svc.executor.signal(run_id, Message(text=text))
    return runs.public(updated)


def _asked(run: dict[str, Any]) -> bool:
    """The run's agent waits for an operator's answer to its question (durable, on the row)."""
    return S(run["status"]) == S.WAITING and run.get("status_reason") == "question"


async def _queue_message(tx: Tx, run_id: str, text: str) -> dict[str, Any]:
    current = await runs.lock(tx, run_id)
    pending = [*current["pending_messages"], text]
    await runs.update_fields(tx, run_id, pending_messages=pending)
    current["pending_messages"] = pending
    return current


async def delete(svc: Services, ref: str) -> None:
    run = await get(svc, ref)
    check_action("delete", S(run["status"]))
    await remove_run_worktrees(svc.engine, run, sandbox=await sandbox_service.current(svc))
    await delete_run_refs(svc.engine, run)
    await svc.writer.run(lambda tx: runs.remove(tx, run["id"]))
    (svc.settings.logs_root / f"{run['id']}.log").unlink(missing_ok=True)


async def set_archived(svc: Services, ref: str, archived: bool) -> dict[str, Any]:
    run = await get(svc, ref)

    async def job(tx: Tx) -> dict[str, Any]:
        await runs.update_fields(tx, run["id"], archived=archived)
        return await runs.lock(tx, run["id"])

    return runs.public(await svc.writer.run(job))


async def follow_up(
    svc: Services, ref: str, body: dict[str, Any], principal: Principal
) -> dict[str, Any]:
    """A new run that starts from this run's branch, in the same workspace and under the same
    policy sets (a follow-up continues the work; it is not a way out of its governance)."""
    parent = await get(svc, ref)
    if not parent["branch"]:
        raise InvalidTransition(
            "This run has no branch yet (it never started); start it or use retry.",
            current_status=parent["status"],
        )
    new_body = {
        "prompt": body.get("prompt"),
        "project_id": parent["project_id"],
        "repo_ids": parent["repo_ids"],
        "source_ref": parent["branch"],
        "agent_id": body.get("agent_id") or (None if body.get("provider") else parent["agent_id"]),
        "provider": body.get("provider") or (None if body.get("agent_id") else parent["provider"]),
        "model": body.get("model") or parent["model"],
        "agent_options": body.get("agent_options", parent["agent_options"]),
        "policy_set_ids": list(parent["policy_set_ids"] or []),
        "workspace_id": await workspace_service.kept(svc, parent["workspace_id"]),
    }
    return await create(svc, new_body, principal, parent_run_id=parent["id"])


async def retry(svc: Services, ref: str, principal: Principal) -> dict[str, Any]:
    """A new run with the same prompt, agent, policy sets, workspace and source commits."""
    run = await get(svc, ref)
    body = {
        "prompt": run["prompt"],
        "title": run["title"],
        "project_id": run["project_id"],
        "repo_ids": run["repo_ids"],
        "agent_id": run["agent_id"],
        "provider": run["provider"],
        "model": run["model"],
        "agent_options": run["agent_options"],
        "source_ref": next(iter(run["base_commits"].values()))
        if len(run["base_commits"]) == 1
        else run["source_ref"],
        "budget_usd": run["budget_usd"],
        "labels": run["labels"],
        "policy_set_ids": list(run["policy_set_ids"] or []),
        "workspace_id": await workspace_service.kept(svc, run["workspace_id"]),
    }
    return await create(svc, body, principal, parent_run_id=run["id"])
