"""Each user's git identity: what the commits of their runs carry (the agent's own commits and
Codeyard's commits and landings for the run). Unset parts fall back to defaults made from the
username, so commits never depend on the server account's ``~/.gitconfig``."""

from __future__ import annotations

from typing import Any

from codeyard.auth.principal import Principal
from codeyard.domain import git_identity
from codeyard.domain.errors import BadRequest, ValidationFailed
from codeyard.services import auth
from codeyard.services.context import Services
from codeyard.store import users
from codeyard.store.writer import Tx


def _view(user: dict[str, Any] | None) -> dict[str, Any]:
    effective = git_identity.for_user(user)
    return {
        "name": user.get("git_name") if user else None,
        "email": user.get("git_email") if user else None,
        "effective_name": effective.name,
        "effective_email": effective.email,
    }


async def get(svc: Services, principal: Principal) -> dict[str, Any]:
    return _view(await auth.user_of(svc, principal))


async def put(
    svc: Services, principal: Principal, name: str | None, email: str | None
) -> dict[str, Any]:
    """Set both parts (``null`` for a part: its default again)."""
    user = await auth.user_of(svc, principal)
    if user is None:
        raise BadRequest(
            "The admin token has no user profile; its runs commit as "
            f"{git_identity.CODEYARD.name} <{git_identity.CODEYARD.email}>. Sign in as a user "
            "to set yours."
        )
    name = name.strip() if name is not None else None
    email = email.strip() if email is not None else None
    if problem := git_identity.problem_with(name, email):
        field, reason = problem
        raise ValidationFailed(reason, errors=[{"loc": ["body", field], "msg": reason}])

    async def job(tx: Tx) -> dict[str, Any] | None:
        await users.update_user(tx, user["id"], git_name=name or None, git_email=email or None)
        return await users.find(tx.conn, user["id"])

    return _view(await svc.writer.run(job))
