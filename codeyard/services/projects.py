"""Projects and repositories: registering a local work tree or cloning a URL.

A project belongs to its creator; the owner may share it with members (who may change its
repositories and settings, not delete it or change the members). Repository scripts and copied
files run in every user's runs, so changing them is for admins and leaves an audit row.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from codeyard.auth.principal import Principal
from codeyard.domain.caps import caller_key
from codeyard.domain.errors import BadRequest, Conflict, Forbidden, ValidationFailed
from codeyard.domain.events import utc_now
from codeyard.domain.ids import new_id, slugify
from codeyard.domain.status import ACTIVE
from codeyard.run_workspace import pool as worktree_pool
from codeyard.run_workspace.removal import remove_run_worktrees
from codeyard.services import ownership
from codeyard.services import sandbox as sandbox_service
from codeyard.services.context import Services
from codeyard.store import audit, projects, runs, users
from codeyard.store.writer import Tx
from codeyard.workspace import clone_urls, git


async def local_work_tree(path_text: str) -> Path:
    """Resolve a user-given path to its work tree's top level, or refuse."""
    path = Path(path_text).expanduser()
    if not path.is_absolute():
        raise BadRequest(f"Repository path '{path_text}' must be absolute.")
    top = await git.work_tree_top(path)
    if top is None:
        raise BadRequest(
            f"'{path_text}' is not a git work tree. Run `git init` there first, or pass the path "
            "of an existing repository."
        )
    return top


async def inspect_local_repo(path_text: str) -> tuple[Path, str]:
    """Resolve a user-given path to its work tree top level and default branch, or refuse."""
    top = await local_work_tree(path_text)
    return top, await git.default_branch(top)


def check_clone_urls(specs: list[dict[str, Any]]) -> None:
    """400 for a URL that is not a network remote, before anything is cloned."""
    for spec in specs:
        if spec.get("url"):
            clone_urls.parse_clone_url(spec["url"])


async def _clone(svc: Services, principal: Principal, given: str, dest: Path) -> str:
    """Clone ``given`` into ``dest`` (one of the caller's clone slots, the clone timeout);
    the URL to store, without credentials. Messages never quote the credentials."""
    url = clone_urls.parse_clone_url(given)
    settings = svc.settings
    key = caller_key(principal.user_id, principal.name)
    hint = "Wait for your other clones to finish."
    with svc.caps.hold("clone", key, settings.max_clones_per_user, hint):
        try:
            await git.clone(
                url.clone, dest, timeout=settings.clone_timeout_seconds, origin=url.stored
            )
        except git.GitTimeout:
            shutil.rmtree(dest, ignore_errors=True)
            raise BadRequest(
                f"Could not clone '{url.stored}': the remote did not finish within "
                f"{settings.clone_timeout_seconds:g}s (CODEYARD_CLONE_TIMEOUT_SECONDS).",
            ) from None
        except git.GitError as exc:
            shutil.rmtree(dest, ignore_errors=True)
            why = exc.stderr.strip()[-1000:] or f"git exited with {exc.returncode}"
            raise BadRequest(url.redact(f"Could not clone '{url.stored}': {why}")) from None
    return url.stored


async def _repo_values(
    svc: Services, principal: Principal, spec: dict[str, Any], project_id: str
) -> dict[str, Any]:
    """Validate one repo spec (``path`` or ``url``) into a row; clones URLs into the data dir."""
    now = utc_now()
    if spec.get("path"):
        top, branch = await inspect_local_repo(spec["path"])
        path, url = top, None
    elif spec.get("url"):
        repo_id_hint = new_id("repo")
        stem = Path(clone_urls.parse_clone_url(spec["url"]).stored.rstrip("/")).stem
        path = svc.settings.repos_root / f"{slugify(spec.get('name') or stem)}-{repo_id_hint[-6:]}"
        url = await _clone(svc, principal, spec["url"], path)
        branch = await git.default_branch(path)
    else:
        raise ValidationFailed(
            "Each repository needs a 'path' (a local git work tree) or a 'url' to clone.",
            errors=[{"loc": ["repos"], "msg": "path or url required"}],
        )
    return {
        "id": new_id("repo"),
        "project_id": project_id,
        "name": spec.get("name") or path.name,
        "path": str(path),
        "url": url,
        "default_branch": spec.get("default_branch") or branch,
        "setup_script": None,
        "cleanup_script": None,
        "copy_files": [],
        "created_at": now,
        "updated_at": now,
    }


async def unique_slug(tx: Tx, wanted: str) -> str:
    slug, n = wanted, 1
    while await projects.find_project_by_slug(tx.conn, slug) is not None:
        n += 1
        slug = f"{wanted}-{n}"
    return slug


def project_values(name: str, slug: str, owner_id: str | None = None) -> dict[str, Any]:
    now = utc_now()
    return {
        "id": new_id("prj"),
        "name": name,
        "slug": slug,
        "owner_id": owner_id,
        "member_ids": [],
        "created_at": now,
        "updated_at": now,
    }


async def create_project(
    svc: Services,
    principal: Principal,
    name: str,
    slug: str | None,
    repo_specs: list[dict[str, Any]],
) -> dict[str, Any]:
    values = project_values(name, slugify(slug or name), ownership.owner_of_new(principal))
    check_clone_urls(repo_specs)
    repo_rows = []
    try:
        for spec in repo_specs:
            repo_rows.append(await _repo_values(svc, principal, spec, values["id"]))
    except BaseException:
        for row in repo_rows:
            if row["url"]:
                shutil.rmtree(row["path"], ignore_errors=True)
        raise

    async def job(tx: Tx) -> None:
        if slug and await projects.find_project_by_slug(tx.conn, values["slug"]):
            raise Conflict(f"A project with slug '{values['slug']}' exists; choose another slug.")
        values["slug"] = await unique_slug(tx, values["slug"])
        await projects.insert_project(tx, values)
        for row in repo_rows:
            await projects.insert_repo(tx, row)

    try:
        await svc.writer.run(job)
    except BaseException:
        for row in repo_rows:
            if row["url"]:
                shutil.rmtree(row["path"], ignore_errors=True)
        raise
    return await get_project(svc, values["id"])


async def get_project(svc: Services, ref: str) -> dict[str, Any]:
    async with svc.engine.connect() as conn:
        project = await projects.get_project(conn, ref)
        project["repos"] = await projects.repos_of(conn, project["id"])
    return project


async def add_repo(
    svc: Services, principal: Principal, project_ref: str, spec: dict[str, Any]
) -> dict[str, Any]:
    project = await get_project(svc, project_ref)
    ownership.require_project_manager(principal, project, "add repositories")
    check_clone_urls([spec])
    row = await _repo_values(svc, principal, spec, project["id"])
    await svc.writer.run(lambda tx: projects.insert_repo(tx, row))
    return row


async def update_project(
    svc: Services, principal: Principal, project_ref: str, changes: dict[str, Any]
) -> dict[str, Any]:
    """Rename, set policy sets (owner, members, admins); change members (owner, admins)."""
    project = await get_project(svc, project_ref)
    ownership.require_project_manager(principal, project, "change it")
    if "member_ids" in changes:
        ownership.require_project_owner(principal, project, "change its members")
        wanted = list(dict.fromkeys(changes["member_ids"] or []))
        async with svc.engine.connect() as conn:
            missing = [u for u in wanted if await users.find(conn, u) is None]
        if missing:
            raise ValidationFailed(
                f"Unknown users: {', '.join(missing)}. List them with GET /api/users.",
                errors=[{"loc": ["body", "member_ids"], "msg": f"unknown: {missing}"}],
            )
        changes = {**changes, "member_ids": wanted}
    await svc.writer.run(lambda tx: projects.update_project(tx, project["id"], changes))
    return await get_project(svc, project["id"])


async def remove_repo(svc: Services, principal: Principal, project_ref: str, repo_id: str) -> None:
    project = await get_project(svc, project_ref)
    ownership.require_project_manager(principal, project, "remove repositories")
    if repo_id not in {r["id"] for r in project["repos"]}:
        await get_repo(svc, repo_id)  # 404 when unknown
    await svc.writer.run(lambda tx: projects.delete_repo(tx, repo_id))
    for repo in project["repos"]:  # its ready worktree, kept for the next run, goes too
        if repo["id"] == repo_id:
            await worktree_pool.forget_repository(Path(repo["path"]))


#: Repository fields whose changes run code or copy files in every user's runs.
ADMIN_REPO_FIELDS = ("setup_script", "cleanup_script", "copy_files")


async def update_repo(
    svc: Services, principal: Principal, repo_id: str, changes: dict[str, Any]
) -> dict[str, Any]:
    """Change a repository; scripts and copied files need ``admin`` and are audited."""
    repo = await get_repo(svc, repo_id)
    async with svc.engine.connect() as conn:
        project = await projects.get_project(conn, repo["project_id"])
    ownership.require_project_manager(principal, project, "change its repositories")
    guarded = {k: v for k, v in changes.items() if k in ADMIN_REPO_FIELDS and v != repo[k]}
    if guarded and not principal.is_admin:
        raise Forbidden(
            f"Changing {', '.join(sorted(guarded))} needs the 'admin' scope: they run in every "
            "user's runs of this repository. Ask an admin to change them.",
            required_scope="admin",
        )

    async def job(tx: Tx) -> None:
        await projects.update_repo(tx, repo_id, changes)
        for field, new in guarded.items():
            await audit.record(
                tx,
                principal.user_id or "admin",
                f"repo.{field}",
                repo_id,
                {"old": repo[field], "new": new, "project_id": repo["project_id"]},
            )

    await svc.writer.run(job)
    return await get_repo(svc, repo_id)


async def delete_project(svc: Services, principal: Principal, project_ref: str) -> None:
    """Owner or admin; a non-admin owner gets 409 while the project holds others' runs."""
    project = await get_project(svc, project_ref)
    ownership.require_project_owner(principal, project, "delete it")
    if not principal.is_admin:
        async with svc.engine.connect() as conn:
            held = await runs.all_of_project(conn, project["id"])
        if others := [r for r in held if not principal.owns(r["created_by"])]:
            raise Conflict(
                f"Project '{project['slug']}' holds {len(others)} run(s) of other users (e.g. "
                f"run {others[0]['number']}); only an admin may delete it with them.",
                run_numbers=[r["number"] for r in others[:20]],
            )
    async with svc.engine.connect() as conn:
        active, _ = await runs.list_page(
            conn, project_id=project["id"], archived=None, status=[str(s) for s in ACTIVE], limit=1
        )
    if active:
        raise Conflict(
            f"Project '{project['slug']}' has active runs (e.g. run {active[0]['number']}); "
            "cancel them first."
        )
    async with svc.engine.connect() as conn:
        idle = await runs.all_of_project(conn, project["id"])
    for run in idle:
        await remove_run_worktrees(svc.engine, run, sandbox=await sandbox_service.current(svc))

    async def job(tx: Tx) -> None:
        for run in idle:
            await runs.remove(tx, run["id"])
        await projects.delete_project(tx, project["id"])

    await svc.writer.run(job)
    for repo in project["repos"]:  # their ready worktrees, kept for the next run
        await worktree_pool.forget_repository(Path(repo["path"]))


async def get_repo(svc: Services, repo_id: str) -> dict[str, Any]:
    async with svc.engine.connect() as conn:
        return await projects.get_repo(conn, repo_id)
