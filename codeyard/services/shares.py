"""Share links: a secret URL that shows one run, read-only, until it expires or is revoked."""

from __future__ import annotations

from typing import Any

from codeyard.auth.principal import Principal
from codeyard.auth.secrets import digest, new_secret
from codeyard.domain.errors import NotFound
from codeyard.domain.ids import new_id
from codeyard.services import auth
from codeyard.services.context import Services
from codeyard.store import runs, shares

SHARE_PREFIX = "cy_shr_"
_UNKNOWN = "This share link is not valid: it is unknown, expired or revoked. Ask for a new one."


async def create(
    svc: Services, state: auth.AuthState, principal: Principal, ref: str, ttl_hours: float
) -> dict[str, Any]:
    async with svc.engine.connect() as conn:
        run = await runs.get(conn, ref)
    secret = new_secret(SHARE_PREFIX)
    now = state.now()
    values = {
        "id": new_id("shr"),
        "run_id": run["id"],
        "secret_hash": digest(secret),
        "created_by": principal.user_id,
        "expires_at": auth.stamp(now + ttl_hours * 3600),
        "created_at": auth.stamp(now),
    }
    await svc.writer.run(lambda tx: shares.insert(tx, values))
    return {**shares.public(values), "token": secret}


async def list_for_run(svc: Services, ref: str) -> list[dict[str, Any]]:
    async with svc.engine.connect() as conn:
        run = await runs.get(conn, ref)
        return [shares.public(r) for r in await shares.of_run(conn, run["id"])]


async def revoke(svc: Services, ref: str, share_id: str) -> None:
    async with svc.engine.connect() as conn:
        run = await runs.get(conn, ref)
        await shares.get(conn, share_id, run["id"])
    await svc.writer.run(lambda tx: shares.remove(tx, share_id))


async def shared_run(svc: Services, state: auth.AuthState, token: str) -> dict[str, Any]:
    """The run a live link points at (full row); 404 for anything else."""
    if not token.startswith(SHARE_PREFIX):
        raise NotFound(_UNKNOWN)
    async with svc.engine.connect() as conn:
        link = await shares.find(conn, digest(token))
        if link is None or link["expires_at"] <= auth.stamp(state.now()):
            raise NotFound(_UNKNOWN)
        run = await runs.find(conn, link["run_id"])
    if run is None:
        raise NotFound(_UNKNOWN)
    return run
