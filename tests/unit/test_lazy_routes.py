"""Routers load on the first request under their paths (issue 15), and nothing else changes:
the same routes, tried in the same order, with the same dependencies, all in the schema.

The app's lifespan is not needed for what these check (the route table, the OpenAPI schema and
routing to a router that answers before touching services); requests go through httpx's ASGI
transport to the real app.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import WebSocketRoute

from codeyard.api import lazy
from codeyard.app import _routers, create_app
from codeyard.config import Settings
from tests.conftest import running_api

pytestmark = pytest.mark.anyio


def _app() -> FastAPI:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return create_app(Settings())


def _paths(router: Any, prefix: str, schema_only: bool = False) -> list[str]:
    """Full paths of a router's routes (through routers it includes itself)."""
    out: list[str] = []
    for route in router.routes:
        if (included := getattr(route, "original_router", None)) is not None:
            out.extend(_paths(included, prefix + route.include_context.prefix, schema_only))
        elif isinstance(route, APIRoute | WebSocketRoute) and not (
            schema_only and not getattr(route, "include_in_schema", False)
        ):
            out.append(prefix + route.path)
    return out


def test_every_route_is_under_a_segment_registered_for_its_router() -> None:
    """A route outside its router's segments would 404 until something else loaded the module;
    register the segment in ``codeyard/app.py`` (the tables above ``create_app``)."""
    app = _app()
    stray = []
    for placeholder in lazy.placeholders(app):
        paths = _paths(placeholder.spec.load(), placeholder.spec.prefix)
        assert paths, f"{placeholder.spec.target} has no routes"
        stray += [f"{placeholder.spec.target}: {p}" for p in paths if not placeholder.claims(p)]
    assert stray == [], "routes outside their router's registered segments:\n" + "\n".join(stray)


def test_creating_the_app_loads_no_router() -> None:
    app = _app()
    waiting = lazy.placeholders(app)
    assert len(waiting) == len(_routers())
    included = [
        r
        for r in app.router.routes
        if not isinstance(r, lazy.Placeholder) and hasattr(r, "original_router")
    ]
    assert included == []
    assert lazy.placeholders(app) == waiting  # looking did not load them


def test_segments_match_whole_path_segments() -> None:
    placeholder = next(
        p for p in lazy.placeholders(_app()) if p.spec.target.endswith("runs:router")
    )
    assert placeholder.claims("/api/runs")
    assert placeholder.claims("/api/runs/abc/diff")
    assert not placeholder.claims("/api/runsx")
    assert not placeholder.claims("/api/projects/runs")
    assert not placeholder.claims("/runs")


def test_routes_keep_their_order_whatever_loads_first() -> None:
    """Routers load in place: loaded last-first, the table is the one of loading in order
    (the order decides which of two overlapping routes answers)."""
    app = _app()
    order = [p.spec.target for p in lazy.placeholders(app)]
    for placeholder in reversed(lazy.placeholders(app)):
        placeholder.load()
    assert lazy.placeholders(app) == []
    loaded = [r.original_router for r in app.router.routes if hasattr(r, "original_router")]
    assert loaded == [lazy.LazyRouter(t, ()).load() for t in order]


async def test_the_schema_holds_every_route_of_a_fresh_app() -> None:
    app = _app()
    expected = {
        path
        for placeholder in lazy.placeholders(app)
        for path in _paths(placeholder.spec.load(), placeholder.spec.prefix, schema_only=True)
    }
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        schema = (await client.get("/api/openapi.json")).json()
    documented = set(schema["paths"])
    missing = {p for p in expected if _openapi_path(p) not in documented}
    assert len(documented) > 100
    assert missing == set()


def _openapi_path(path: str) -> str:
    return re.sub(r"\{(\w+):\w+\}", r"{\1}", path)


async def test_a_request_loads_the_routers_under_its_path_only() -> None:
    app = _app()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        docs = await client.get("/api/docs")
        unknown = await client.get("/api/no-such-thing")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    waiting = {p.spec.target for p in lazy.placeholders(app)}
    assert "codeyard.api.docs:router" not in waiting
    assert "codeyard.api.analytics:router" in waiting
    assert "codeyard.api.runs:router" in waiting
    assert unknown.status_code == 404
    assert unknown.headers["content-type"].startswith("application/problem+json")


async def test_warm_up_loads_the_rest() -> None:
    app = _app()
    await lazy.warm_up(app, after=0)
    assert lazy.placeholders(app) == []


def test_a_target_that_is_no_router_is_refused() -> None:
    with pytest.raises(TypeError, match="not an APIRouter"):
        lazy.LazyRouter("codeyard.api.lazy:PREFIX", ("x",)).load()


async def test_a_router_loaded_by_its_first_request_keeps_its_authentication(
    sqlite_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The health check loads only its own router; the first request to another one loads it
    with the dependencies registered for it: no token, 401; the admin token, 200."""
    monkeypatch.setattr(lazy, "WARM_AFTER_SECONDS", 60.0)  # no background loading meanwhile
    async with running_api(sqlite_settings) as api:
        health = await api.client.get("/api/health")
        waiting = {p.spec.target for p in lazy.placeholders(api.app)}
        transport = httpx.ASGITransport(app=api.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as anon:
            refused = await anon.get("/api/analytics/overview")
        answered = await api.client.get("/api/analytics/overview")
        still_waiting = {p.spec.target for p in lazy.placeholders(api.app)}
    assert health.status_code == 200
    assert "codeyard.api.meta:public" not in waiting
    assert {"codeyard.api.analytics:router", "codeyard.api.runs:router"} <= waiting
    assert refused.status_code == 401
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert answered.status_code == 200, answered.text
    assert "codeyard.api.analytics:router" not in still_waiting
    assert "codeyard.api.runs:router" in still_waiting
