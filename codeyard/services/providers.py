"""Which agent providers may be used here: an admin can switch one off (Laravel seed's
``PUT /api/settings/providers/{key}``) without uninstalling its CLI.

A disabled provider starts no new run (409 naming the fix); runs already made keep going. The
list is one stored setting, so it survives a restart and needs no migration.
"""

from __future__ import annotations

from typing import Any

import anyio
from sqlalchemy.ext.asyncio import AsyncEngine

from codeyard.agents import registry
from codeyard.domain.errors import Conflict, NotFound
from codeyard.services.context import Services
from codeyard.store import settings as store

KEY = "disabled_providers"


async def disabled(engine: AsyncEngine) -> set[str]:
    value = (await store.read(engine)).get(KEY) or []
    return {str(v) for v in value}


async def listing(svc: Services) -> list[dict[str, Any]]:
    off = await disabled(svc.engine)
    described = await anyio.to_thread.run_sync(registry.describe_all)
    return [{**d, "enabled": d["name"] not in off} for d in described]


async def set_enabled(svc: Services, key: str, enabled: bool) -> dict[str, Any]:
    if key not in registry.names():
        raise NotFound(
            f"No provider '{key}'. Providers of this build: {', '.join(registry.names())}."
        )
    off = await disabled(svc.engine)
    off = off - {key} if enabled else off | {key}
    await store.save(svc.writer, {KEY: sorted(off)})
    return next(p for p in await listing(svc) if p["name"] == key)


async def check_enabled(svc: Services, name: str) -> None:
    """409 when an admin switched ``name`` off."""
    if name in await disabled(svc.engine):
        raise Conflict(
            f"The provider '{name}' is disabled on this server. An admin can enable it with "
            f'PUT /api/settings/providers/{name} {{"enabled": true}}, or pick another provider.',
            provider=name,
        )
