"""Creating a run: the agent and its options, env sets, repositories, base commits, policy
sets, and the one job that writes the run (and any project it registers).

Apart from the run's lifecycle (``services.runs``: start, stop, messages, delete, follow-ups)
because everything here happens once, before the run exists, and is validated in full before
anything is written; ``services.runs`` re-exports :func:`create`, which its callers use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from codeyard.agents import registry, script
from codeyard.auth.principal import Principal
from codeyard.domain import events as ev
from codeyard.domain.errors import BadRequest, Forbidden, ValidationFailed
from codeyard.domain.events import utc_now
from codeyard.domain.ids import new_id, slugify, title_from_prompt
from codeyard.domain.status import RunStatus
from codeyard.services import code_index, ownership
from codeyard.services import env_sets as env_set_service
from codeyard.services import projects as project_service
from codeyard.services import providers as provider_service
from codeyard.services import sandbox as sandbox_service
from codeyard.services import workspaces as workspace_service
from codeyard.services.context import Services
from codeyard.store import policies, projects, runs
from codeyard.store.writer import Tx
from codeyard.workspace import git

__all__ = ["ENV_SET_IDS", "PROFILE_OPTIONS", "create"]

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


async def _base_commit(repo: Path, ref: str) -> str | None:
    """The commit ``ref`` names in a project's repository. ``HEAD`` (most runs) through
    ``work_tree_commit``, which reads it from the repository's files once git has found the
    work tree (``workspace.head_files``): one git process at the repository's first run,
    none after; ``resolve_commit`` for other refs, and to say what is wrong."""
    if ref == "HEAD" and (found := await git.work_tree_commit(repo, ref)) is not None:
        return found[1]
    return await git.resolve_commit(repo, ref)


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
        sha = found_bases.get(path) or await _base_commit(Path(path), source_ref)
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
