"""Shared route dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from codeyard.services.context import Services


async def services(request: Request) -> Services:
    """Async, though it awaits nothing: FastAPI runs a plain function dependency in its
    thread pool, a trip to a worker thread and back for every request that takes it."""
    svc: Services = request.app.state.services
    return svc


Svc = Annotated[Services, Depends(services)]
Limit = Annotated[int, Query(ge=1, le=500, description="Page size (max 500).")]
Cursor = Annotated[str | None, Query(description="next_cursor from the previous page.")]


def listing(data: list[object], next_cursor: str | None) -> dict[str, object]:
    return {"data": data, "next_cursor": next_cursor}
