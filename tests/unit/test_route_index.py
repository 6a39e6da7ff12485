"""The route index chooses what Starlette's linear scan chooses (issue 15, target 3).

Every route of the fully loaded app gets a concrete path built from its template; for each
method (and the other connection type) the first full match of the index's candidates, or
else the first partial one, is the one the scan over every route finds. Requests go through
httpx's ASGI transport to the real app; the lifespan is not needed for what is checked.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute, _IncludedRouter
from starlette.convertors import (
    Convertor,
    FloatConvertor,
    IntegerConvertor,
    PathConvertor,
    UUIDConvertor,
)
from starlette.routing import BaseRoute, Match, Route, WebSocketRoute

from codeyard.api import lazy, route_index
from codeyard.app import create_app
from codeyard.config import Settings

pytestmark = pytest.mark.anyio

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
EXTRA_PATHS = (
    "/",
    "",
    "/index.html",
    "/assets/app.js",
    "/runs/abc",
    "/api",
    "/api/",
    "/api/docs",
    "/api/openapi.json",
    "/api/no-such-thing",
    "/api/runs/",
    "/api/runs/r1/events/",
    "/api/runs/r1/events/extra",
    "/api/runs/r1/a/b/c/d/e",
    "//api/runs",
    "/mcp",
    "/mcp/",
    "/ws",
)


def _app() -> FastAPI:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return create_app(Settings())


def _loaded_app() -> FastAPI:
    app = _app()
    lazy.load_all(app)
    assert lazy.placeholders(app) == []
    return app


def _example(path_format: str, convertors: dict[str, Convertor[Any]]) -> str:
    def value(found: re.Match[str]) -> str:
        kind = convertors[found.group(1)]
        if isinstance(kind, IntegerConvertor):
            return "7"
        if isinstance(kind, FloatConvertor):
            return "1.5"
        if isinstance(kind, UUIDConvertor):
            return "123e4567-e89b-12d3-a456-426614174000"
        if isinstance(kind, PathConvertor):
            return "a/b.txt"
        return "x1"

    return re.sub(r"\{(\w+)\}", value, path_format)


def _leaf_paths(routes: list[BaseRoute]) -> Iterator[tuple[str, str]]:
    """(connection type, concrete path) for every route, inside included routers too."""
    for route in routes:
        if isinstance(route, _IncludedRouter):
            for context in route.effective_route_contexts():
                leaf: Any = context if isinstance(context.original_route, APIRoute) else None
                leaf = leaf or context.starlette_route
                kind = "websocket" if isinstance(leaf, WebSocketRoute) else "http"
                yield kind, _example(leaf.path_format, leaf.param_convertors)
        elif isinstance(route, Route | WebSocketRoute):
            kind = "websocket" if isinstance(route, WebSocketRoute) else "http"
            yield kind, _example(route.path_format, route.param_convertors)


def _scope(kind: str, method: str, path: str, root_path: str = "") -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": kind,
        "path": root_path + path,
        "root_path": root_path,
        "headers": [],
        "query_string": b"",
    }
    if kind == "http":
        scope["method"] = method
    return scope


def _choose(routes: list[BaseRoute], scope: dict[str, Any]) -> tuple[Match, BaseRoute | None]:
    """Starlette's rule: the first full match, else the first partial one."""
    partial = None
    for route in routes:
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return match, route
        if match == Match.PARTIAL and partial is None:
            partial = route
    return (Match.PARTIAL, partial) if partial is not None else (Match.NONE, None)


def _index(app: FastAPI) -> route_index.RouteIndex:
    dispatch = app.router.middleware_stack
    assert isinstance(dispatch, route_index.IndexedDispatch)
    return dispatch.index


def test_the_index_chooses_what_the_linear_scan_chooses_for_every_route() -> None:
    app = _loaded_app()
    index = _index(app)
    routes = app.router.routes
    leaves = list(_leaf_paths(routes))
    assert len(leaves) > 300  # every route, a few hundred
    paths = {path for _, path in leaves}
    paths |= {path + "/" for path in list(paths)} | set(EXTRA_PATHS)
    checked = differ = 0
    matched = {Match.FULL: 0, Match.PARTIAL: 0, Match.NONE: 0}
    for path in sorted(paths):
        for kind, method in [("websocket", ""), *(("http", m) for m in METHODS)]:
            for root_path in ("", "/base"):
                expected = _choose(routes, _scope(kind, method, path, root_path))
                chosen = _choose(index.candidates(path), _scope(kind, method, path, root_path))
                checked += 1
                matched[expected[0]] += 1
                differ += chosen != expected
                assert chosen == expected, (kind, method, root_path, path)
    assert differ == 0
    assert checked > 5000
    assert all(count > 100 for count in matched.values()), matched  # each kind is exercised


def test_typical_paths_have_few_candidates() -> None:
    index = _index(_loaded_app())
    for path in ("/api/runs", "/api/runs/r1/events", "/api/approvals/a1/resolve"):
        assert 1 <= len(index.candidates(path)) <= 3, path


async def test_requests_through_the_app_are_answered_as_before() -> None:
    app = _loaded_app()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        docs = await client.get("/api/docs")
        schema = await client.get("/api/openapi.json")
        unknown = await client.get("/api/no-such-thing")
        wrong_method = await client.put("/api/openapi.json")
        page = await client.get("/runs/abc")
        slash = await client.get("/api/docs/")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    assert schema.status_code == 200
    assert schema.json()["info"]["title"] == "Codeyard"
    assert unknown.status_code == 404
    assert unknown.headers["content-type"].startswith("application/problem+json")
    assert wrong_method.status_code == 405
    assert page.status_code == 200  # the UI's fallback (its page, or the "not built" one)
    assert slash.status_code == 307
    assert slash.headers["location"].endswith("/api/docs")


async def test_a_405_names_every_method_its_path_accepts() -> None:
    """``GET`` and ``POST /api/runs`` are two routes; Starlette's 405 named only the first one
    it matched (``Allow: POST``, detail "Method Not Allowed")."""
    app = _loaded_app()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        runs = await client.put("/api/runs")
        run = await client.post("/api/runs/r1")
        schema = await client.put("/api/openapi.json")  # a Starlette route: HEAD with GET
    assert runs.status_code == 405
    assert runs.headers["content-type"].startswith("application/problem+json")
    assert runs.headers["allow"] == "GET, POST"
    assert runs.json()["detail"] == (
        "PUT /api/runs is not allowed; this path accepts GET, POST. "
        "Send one of those (see /api/docs)."
    )
    assert run.status_code == 405
    assert run.headers["allow"] == "GET, DELETE"
    assert "this path accepts GET, DELETE" in run.json()["detail"]
    assert schema.headers["allow"] == "GET, HEAD"


async def test_a_request_tries_only_its_candidates(monkeypatch: pytest.MonkeyPatch) -> None:
    app = _loaded_app()
    tried: list[Any] = []
    matches = _IncludedRouter.matches

    def counting(self: _IncludedRouter, scope: Any) -> tuple[Match, Any]:
        tried.append(self)
        return matches(self, scope)

    monkeypatch.setattr(_IncludedRouter, "matches", counting)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        await client.get("/api/runs/r1/events")  # no services here: whatever it answers
        tried_get = len(tried)
        refused = await client.put("/api/runs/r1/events")  # a partial match: 405
    included = [r for r in app.router.routes if isinstance(r, _IncludedRouter)]
    assert len(included) > 50
    assert 1 <= tried_get <= 3
    assert refused.status_code == 405
    # The partial match was answered, no full scan: the 405's allowed methods are asked of
    # the same candidates (once for each method).
    assert 1 <= len({id(router) for router in tried[tried_get:]}) <= 3


async def test_the_index_follows_lazy_loading() -> None:
    """Placeholders are candidates everywhere; once a router loads in their place the index
    is rebuilt around the router's own routes."""
    app = _app()
    index = _index(app)
    waiting = len(lazy.placeholders(app))
    assert len(index.candidates("/api/docs")) >= waiting
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        unknown = await client.get("/api/no-such-thing")
        first = await client.get("/api/docs")
        again = await client.get("/api/docs")
    assert unknown.status_code == 404
    assert first.status_code == 200
    assert again.status_code == 200
    candidates = index.candidates("/api/docs")
    assert not any(
        isinstance(r, lazy.Placeholder) and "docs" in r.spec.segments for r in candidates
    )
    assert any(isinstance(r, _IncludedRouter) for r in candidates)
    assert len(candidates) == len(lazy.placeholders(app)) + 1


async def test_a_route_added_to_an_included_router_later_is_seen() -> None:
    """An included router's own version counter says its routes changed (FastAPI's caches use
    it too): a route added to the first router for a path a later router serves wins, as it
    does in the linear scan (a stale index would still send the path to the later router)."""
    app = _loaded_app()
    early = APIRouter()  # this test's own: the app's routers are shared module state
    app.include_router(early, prefix="/api")
    app.router.routes.insert(0, app.router.routes.pop())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        before = await client.get("/api/docs")

        async def late() -> dict[str, str]:
            return {"late": "yes"}

        early.add_api_route("/docs", late, methods=["GET"])
        after = await client.get("/api/docs")
    assert before.status_code == 200
    assert "swagger" in before.text.lower()
    assert after.status_code == 200
    assert after.json() == {"late": "yes"}


def test_patterns_read_converters() -> None:
    convertors: dict[str, Convertor[Any]] = {
        "a": IntegerConvertor(),
        "p": PathConvertor(),
    }
    assert route_index.pattern("/api/x/{a}", convertors)[:5] == ("", "api", "x", 1, 2)
    assert route_index.pattern("/files/{p}", convertors) == ("", "files", 3)

    class Odd(Convertor[str]):
        regex = ".*"

    assert route_index.pattern("/odd/{o}", {"o": Odd()}) is None
