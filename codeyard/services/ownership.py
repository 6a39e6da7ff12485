"""Who may change a shared object: projects (owner and members), env sets (owner), run branches.

Runs carry their owner in ``created_by`` and are checked by the scope dependency
(``api/auth.py``). Projects and env sets are shared by many runs, so the checks live here and
every service that changes or uses them calls one of these. An object with no owner (made by
the admin token, or before owners existed) is changed by admins only.
"""

from __future__ import annotations

from typing import Any

from codeyard.auth.principal import Principal
from codeyard.domain.errors import BadRequest, Forbidden
from codeyard.services.context import Services
from codeyard.store import runs
from codeyard.workspace.worktrees import BRANCH_PREFIX


def owner_of_new(principal: Principal) -> str | None:
    """The ``owner_id`` an object created by ``principal`` gets (None: the admin token)."""
    return principal.user_id


def manages_project(principal: Principal, project: dict[str, Any]) -> bool:
    """Admins, the project's owner and its members may change it."""
    if principal.is_admin:
        return True
    if principal.user_id is None:
        return False
    return principal.user_id == project.get("owner_id") or principal.user_id in (
        project.get("member_ids") or []
    )


def require_project_manager(principal: Principal, project: dict[str, Any], what: str) -> None:
    if not manages_project(principal, project):
        raise Forbidden(
            f"Project '{project['slug']}' belongs to another user: only its owner, its members "
            f"or an admin may {what}. Ask the owner to add you with PATCH "
            '/api/projects/{ref} {"member_ids": [...]}.',
        )


def require_project_owner(principal: Principal, project: dict[str, Any], what: str) -> None:
    """Owner-only actions (deleting, changing the members)."""
    if principal.is_admin:
        return
    if principal.user_id is None or principal.user_id != project.get("owner_id"):
        raise Forbidden(
            f"Only the owner of project '{project['slug']}' or an admin may {what}.",
        )


def owns_env_set(principal: Principal, row: dict[str, Any]) -> bool:
    if principal.is_admin:
        return True
    return principal.user_id is not None and row.get("owner_id") == principal.user_id


def require_env_set_owner(principal: Principal, row: dict[str, Any]) -> None:
    if not owns_env_set(principal, row):
        raise Forbidden(
            f"Env set '{row['id']}' belongs to another user: only its owner "
            "or an admin may use, read, change or delete it. Create your own with "
            "POST /api/env-sets.",
        )


def check_branch_argument(name: str, field: str = "target_branch") -> None:
    """A branch given by the client must not be read by git as an option."""
    if name.startswith("-"):
        raise BadRequest(
            f"'{name}' is not a branch name: {field} may not start with '-'.",
        )


async def check_target_branch(
    svc: Services, principal: Principal, project_id: str, target: str
) -> None:
    """Landing into a branch that is another user's run branch is for admins only.

    A branch counts as another user's when a run of the project that the caller did not create
    has it, or when it is under ``codeyard/`` and no run of the caller's has it (a deleted
    run's branch is nobody's to land into).
    """
    check_branch_argument(target)
    if principal.is_admin:
        return
    async with svc.engine.connect() as conn:
        creators = await runs.creators_of_branch(conn, project_id, target)
    others = [c for c in creators if not principal.owns(c)]
    mine = [c for c in creators if principal.owns(c)]
    if others or (target.startswith(BRANCH_PREFIX) and not mine):
        raise Forbidden(
            f"'{target}' is another user's run branch: only an admin may land into it. Land "
            "into the project's default branch or a branch of your own.",
        )
