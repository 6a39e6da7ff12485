"""Previews as a use case: which ports a caller may reach, and links to preview origins.

Only loopback ports inside a run's lease are reachable, and only by the run's creator or an
admin: the proxy must not become a way into other users' dev servers or into services that
happen to listen on the machine (databases, the server itself).
"""

from __future__ import annotations

from typing import Any

from codeyard.auth.principal import Principal
from codeyard.domain.errors import BadRequest, Conflict, Forbidden, NotFound
from codeyard.preview import leases
from codeyard.preview.access import PreviewGrants
from codeyard.preview.leases import Lease
from codeyard.services.context import Services
from codeyard.store import runs


def _may_read(principal: Principal, run: dict[str, Any]) -> bool:
    return principal.is_admin or principal.owns(run["created_by"])


async def authorize_port(svc: Services, principal: Principal, port: int) -> Lease:
    if not 1024 <= port <= 65535:
        raise BadRequest(f"Preview ports are 1024 to 65535; {port} is not.", port=port)
    async with svc.engine.connect() as conn:
        lease = await leases.owner_of_port(conn, port)
        run = await runs.find(conn, lease.run_id) if lease is not None else None
    if lease is None or run is None or not _may_read(principal, run):
        raise Forbidden(
            f"Port {port} is not in the port lease of a run you may read; preview a port of "
            "your run's block (PORT, CODEYARD_PORT_0..9).",
            port=port,
        )
    return lease


async def run_lease(
    svc: Services, principal: Principal, run_ref: str
) -> tuple[dict[str, Any], Lease]:
    async with svc.engine.connect() as conn:
        run = await runs.get(conn, run_ref)
    if not _may_read(principal, run):
        raise Forbidden(
            "This run belongs to another user; only its creator or an admin may preview it."
        )
    if run["status"] == "completed":
        raise Conflict(
            f"Run {run['number']} is completed ({run.get('resolution') or 'resolved'}): its "
            "ports were released. Start a follow-up run to preview its branch.",
            current_status=run["status"],
        )
    return run, await leases.ensure(svc.writer, run["id"])


def preview_host(number: int, index: int, domain: str) -> str:
    return f"{number}-{index}.{domain}"


async def link(
    svc: Services,
    grants: PreviewGrants,
    principal: Principal,
    run_ref: str,
    index: int,
    *,
    scheme: str,
    server_port: int | None,
    domain: str,
) -> dict[str, Any]:
    run, lease = await run_lease(svc, principal, run_ref)
    if not 0 <= index < lease.size:
        raise BadRequest(
            f"Port index {index} is outside the run's block of {lease.size}.", index=index
        )
    token, ttl = grants.issue(run["id"], index, principal.user_id)
    host = preview_host(run["number"], index, domain)
    origin = f"{scheme}://{host}" + (f":{server_port}" if server_port else "")
    port = lease.base_port + index
    return {
        "run_id": run["id"],
        "index": index,
        "port": port,
        "url": f"{origin}/__codeyard/preview-auth?token={token}",
        "origin": origin,
        "path_url": f"/api/preview/{port}/",
        "expires_in": ttl,
    }


async def host_lease(svc: Services, number: int) -> tuple[dict[str, Any], Lease] | None:
    async with svc.engine.connect() as conn:
        run = await runs.find(conn, number)
        lease = await leases.find(conn, run["id"]) if run is not None else None
    return (run, lease) if run is not None and lease is not None else None


__all__ = ["NotFound", "authorize_port", "host_lease", "link", "preview_host", "run_lease"]
