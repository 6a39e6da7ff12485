"""Providers an admin enabled or disabled on this server (the Laravel seed's
``GET/PUT /api/settings/providers``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from codeyard.api.auth import require_scope
from codeyard.api.deps import Svc
from codeyard.api.schemas import Body
from codeyard.services import providers as provider_service

router = APIRouter(tags=["settings"])


class ProviderToggle(Body):
    enabled: bool


class ProviderState(BaseModel):
    name: str
    enabled: bool = Field(description="False: new runs with this provider are refused (409).")
    available: bool | None = None
    version: str | None = None
    problem: str | None = None
    capabilities: dict[str, Any] = Field(default_factory=dict)


class ProviderStates(BaseModel):
    data: list[ProviderState]
    next_cursor: str | None = None


def _state(row: dict[str, Any]) -> ProviderState:
    return ProviderState(
        name=row["name"],
        enabled=row["enabled"],
        available=row.get("available"),
        version=row.get("version"),
        problem=row.get("problem"),
        capabilities=row.get("capabilities") or {},
    )


@router.get(
    "/settings/providers",
    dependencies=[require_scope("settings:read")],
    response_model=ProviderStates,
)
async def list_provider_settings(svc: Svc) -> ProviderStates:
    return ProviderStates(data=[_state(r) for r in await provider_service.listing(svc)])


@router.put(
    "/settings/providers/{key}",
    dependencies=[require_scope("admin")],
    response_model=ProviderState,
)
async def set_provider(key: str, body: ProviderToggle, svc: Svc) -> ProviderState:
    """Enable or disable a provider for new runs (admin only)."""
    return _state(await provider_service.set_enabled(svc, key, body.enabled))
