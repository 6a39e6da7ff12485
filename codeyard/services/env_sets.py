"""Env set use cases: create, read (masked), replace, delete, and checking ids a run names.

Values are write-only: every read shows the names with :data:`MASK` for each value. A ``PUT``
that sends :data:`MASK` as a value keeps the stored one, so a client can edit names and some
values without ever having seen the others.

Each env set has an owner (its creator): only the owner or an admin may list, read, change,
delete or use it in a run or agent profile (``services.ownership``).
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from codeyard.auth.principal import Principal
from codeyard.crypto import SecretBox, SecretsUnavailable, secret_box
from codeyard.domain.errors import Conflict, Forbidden, ValidationFailed
from codeyard.domain.events import utc_now
from codeyard.domain.ids import new_id
from codeyard.services import ownership
from codeyard.services import sandbox as sandbox_service
from codeyard.services.context import Services
from codeyard.store import env_sets, schema
from codeyard.store.writer import Tx

__all__ = [
    "MASK",
    "check_ids",
    "create",
    "delete",
    "get",
    "list_page",
    "public",
    "replace",
]

MASK = "••••"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _box(svc: Services) -> SecretBox:
    return secret_box(svc.settings.secret_key_path)


def public(row: dict[str, Any]) -> dict[str, Any]:
    """What the API shows of an env set: names, each value masked."""
    keys = list(row["keys"])
    return {
        "id": row["id"],
        "name": row["name"],
        "variables": dict.fromkeys(keys, MASK),
        "keys": keys,
        "owner_id": row.get("owner_id"),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def _check_variables(variables: dict[str, str]) -> None:
    """422 naming each variable whose name is not a POSIX name or whose value has a NUL."""
    errors: list[dict[str, Any]] = []
    for key, value in variables.items():
        if not _NAME.match(key):
            errors.append(
                {
                    "loc": ["body", "variables", key],
                    "msg": "not a valid environment variable name: use letters, digits and "
                    "'_', not starting with a digit",
                }
            )
        elif "\0" in value:
            errors.append({"loc": ["body", "variables", key], "msg": "value contains a NUL"})
    if errors:
        bad = ", ".join(repr(e["loc"][-1]) for e in errors)
        raise ValidationFailed(
            f"Invalid variables: {bad}. Names are letters, digits and '_' and do not start "
            "with a digit (e.g. API_KEY); values may not contain NUL bytes.",
            errors=errors,
        )


async def _name_free(tx: Tx, name: str, own_id: str | None) -> None:
    other = await env_sets.find_by_name(tx.conn, name)
    if other is not None and other["id"] != own_id:
        raise Conflict(
            f"An env set named '{name}' already exists ({other['id']}); pick another name "
            "or update that one with PUT /api/env-sets/{id}.",
            env_set_id=other["id"],
        )


async def create(
    svc: Services, principal: Principal, name: str, variables: dict[str, str]
) -> dict[str, Any]:
    _check_variables(variables)
    sandbox_service.check_admin_env(principal, list(variables), "an env set")
    if MASK in variables.values():
        raise ValidationFailed(
            f"'{MASK}' stands for a value kept from before; a new env set needs real values.",
            errors=[{"loc": ["body", "variables"], "msg": "masked value in a new env set"}],
        )
    now = utc_now()
    env_set_id = new_id("env")
    values = {
        "id": env_set_id,
        "name": name,
        "ciphertext": env_sets.seal(_box(svc), env_set_id, variables),
        "keys": sorted(variables),
        "created_at": now,
        "updated_at": now,
        "owner_id": ownership.owner_of_new(principal),
    }

    async def job(tx: Tx) -> None:
        await _name_free(tx, name, None)
        await env_sets.insert(tx, values)

    await svc.writer.run(job)
    return public(values)


async def get(svc: Services, principal: Principal, env_set_id: str) -> dict[str, Any]:
    async with svc.engine.connect() as conn:
        row = await env_sets.get(conn, env_set_id)
    ownership.require_env_set_owner(principal, row)
    return public(row)


async def list_page(
    svc: Services, principal: Principal, limit: int, cursor: str | None
) -> dict[str, Any]:
    """The caller's own env sets (every one for an admin)."""
    only = None if principal.is_admin else (principal.user_id or "")
    async with svc.engine.connect() as conn:
        rows, next_cursor = await env_sets.list_env_sets(conn, limit, cursor, only)
    return {"data": [public(r) for r in rows], "next_cursor": next_cursor}


async def replace(
    svc: Services, principal: Principal, env_set_id: str, name: str, variables: dict[str, str]
) -> dict[str, Any]:
    """Replace name and variables; a value equal to :data:`MASK` keeps the stored value."""
    _check_variables(variables)
    sandbox_service.check_admin_env(principal, list(variables), "an env set")
    box = _box(svc)

    async def job(tx: Tx) -> dict[str, Any]:
        row = await env_sets.get(tx.conn, env_set_id)
        ownership.require_env_set_owner(principal, row)
        await _name_free(tx, name, env_set_id)
        kept = [k for k, v in variables.items() if v == MASK]
        merged = dict(variables)
        if kept:
            try:
                stored = env_sets.variables_of(box, row)
            except SecretsUnavailable as exc:
                raise Conflict(f"The stored values cannot be kept: {exc}") from None
            if unknown := [k for k in kept if k not in stored]:
                raise ValidationFailed(
                    f"Variables {', '.join(unknown)} have no stored value to keep; send their "
                    f"values instead of '{MASK}'.",
                    errors=[{"loc": ["body", "variables", k], "msg": "no value"} for k in unknown],
                )
            merged.update({k: stored[k] for k in kept})
        values = {
            "name": name,
            "ciphertext": env_sets.seal(box, env_set_id, merged),
            "keys": sorted(merged),
            "updated_at": utc_now(),
        }
        await env_sets.update_env_set(tx, env_set_id, values)
        return public({**row, **values})

    return await svc.writer.run(job)


async def delete(svc: Services, principal: Principal, env_set_id: str) -> None:
    """Delete an env set; 409 while an agent profile still uses it."""

    async def job(tx: Tx) -> None:
        ownership.require_env_set_owner(principal, await env_sets.get(tx.conn, env_set_id))
        agents = schema.agents
        rows = (await tx.conn.execute(select(agents.c.id, agents.c.env_set_ids))).all()
        users = [r.id for r in rows if env_set_id in (r.env_set_ids or [])]
        if users:
            raise Conflict(
                f"Env set '{env_set_id}' is used by agent profiles {', '.join(users)}; remove "
                "it from them (PATCH /api/agents/{id}) first.",
                agent_ids=users,
            )
        await env_sets.delete_env_set(tx, env_set_id)

    await svc.writer.run(job)


async def check_ids(
    svc: Services, ids: list[str], principal: Principal, field: str = "env_set_ids"
) -> None:
    """422 naming the env set ids that do not exist; 403 naming those the caller may not use."""
    async with svc.engine.connect() as conn:
        owners = await env_sets.owners_of(conn, ids)
    if missing := [i for i in ids if i not in owners]:
        raise ValidationFailed(
            f"Unknown env sets: {', '.join(missing)}. List them with GET /api/env-sets.",
            errors=[{"loc": ["body", field], "msg": f"unknown: {missing}"}],
        )
    if principal.is_admin:
        return
    if others := [i for i in ids if principal.user_id is None or owners[i] != principal.user_id]:
        raise Forbidden(
            f"Env sets {', '.join(others)} belong to another user: only their owner or an admin "
            "may use them. Create your own with POST /api/env-sets.",
            env_set_ids=others,
        )
