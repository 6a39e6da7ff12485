"""The app's router tries only the entries a path could be for (issue 15), and picks what the
whole ordered scan picks: the same route for every registered path, the same 404 and 405, the
same redirect; and it sees routes added after it was first used."""

from __future__ import annotations

import re
import warnings
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, Match, Route, WebSocketRoute

from codeyard.api import lazy, route_index
from codeyard.app import create_app
from codeyard.config import Settings

pytestmark = pytest.mark.anyio

#: Every method a route can name, and one none does (a 405 wherever the path is known).
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND")


def _loaded_app() -> FastAPI:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        app = create_app(Settings())
    lazy.load_all(app)
    return app


def _templates(router: Any, prefix: str) -> list[tuple[str, str]]:
    """(scope type, full path) of every route, through included routers."""
    out: list[tuple[str, str]] = []
    for route in router.routes:
        if (included := getattr(route, "original_router", None)) is not None:
            out += _templates(included, prefix + route.include_context.prefix)
        elif isinstance(route, APIWebSocketRoute | WebSocketRoute):
            out.append(("websocket", prefix + route.path))
        elif isinstance(route, APIRoute | Route):
            out.append(("http", prefix + route.path))
    return out


def _concrete(template: str) -> str:
    """A path the template matches: each parameter filled with a plain value."""
    return re.sub(r"\{(\w+)(?::(\w+))?\}", lambda m: "12" if m[2] == "int" else "x1", template)


def _scope(app: FastAPI, kind: str, method: str, path: str) -> dict[str, Any]:
    return {"type": kind, "method": method, "path": path, "root_path": "", "headers": []}


def _pick(routes: Any, scope: dict[str, Any], narrow: bool) -> tuple[Match, BaseRoute | None]:
    """The first full match, else the first partial one, as ``APIRouter.app`` picks."""
    partial: BaseRoute | None = None
    for entry in routes:
        route, pattern = entry if narrow else (entry, None)
        if pattern is not None and pattern.match(scope["path"]) is None:
            continue
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return match, route
        if match == Match.PARTIAL and partial is None:
            partial = route
    return (Match.PARTIAL, partial) if partial is not None else (Match.NONE, None)


def test_the_index_picks_what_the_whole_scan_picks_for_every_route() -> None:
    app = _loaded_app()
    router = app.router
    assert isinstance(router, route_index.IndexedRouter)
    index = router.index()
    paths = sorted(set(_templates(router, "")))
    assert len(paths) > 250
    extra = ["/api/nothing-here", "/api/runs/", "/api", "/", "/mcp", "/api/docs/x", "/assets/a"]
    checked = 0
    for kind, template in paths + [("http", p) for p in extra]:
        path = _concrete(template)
        candidates = index.candidates(path)
        assert candidates is not None, path
        for method in METHODS if kind == "http" else ("GET",):
            scope = _scope(app, kind, method, path)
            whole = _pick(router.routes, dict(scope), narrow=False)
            indexed = _pick(candidates, dict(scope), narrow=True)
            assert indexed == whole, f"{method} {path}: {indexed} != {whole}"
            checked += 1
    assert checked > 1000


async def test_a_request_tries_only_its_candidates() -> None:
    """An entry for other paths is not even asked (the whole scan asks every entry before the
    one that matches)."""
    app = _loaded_app()
    asked: list[str] = []

    class Spy(Route):
        def matches(self, scope: Any) -> Any:
            asked.append(scope["path"])
            return super().matches(scope)

    app.router.routes.insert(0, Spy("/elsewhere/spy", lambda request: None))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        assert (await client.get("/api/docs")).status_code == 200
        assert asked == []
        assert (await client.post("/elsewhere/nothing")).status_code == 404  # the whole scan
    assert asked == ["/elsewhere/nothing", "/elsewhere/nothing/"]  # and the redirect check


def _small_app() -> tuple[FastAPI, APIRouter, APIRouter]:
    app = FastAPI()
    route_index.install(app)
    first, second = APIRouter(), APIRouter()

    @first.get("/other")
    async def other() -> str:
        return "first"

    @second.get("/things/{name}")
    async def thing(name: str) -> str:
        return f"second {name}"

    @second.post("/things")
    async def make() -> str:
        return "made"

    app.include_router(first, prefix="/api")
    app.include_router(second, prefix="/api")
    return app, first, second


async def test_404_405_and_redirects_are_as_before() -> None:
    app, _, _ = _small_app()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://localhost"
    ) as client:
        assert (await client.get("/api/things/a")).json() == "second a"
        not_allowed = await client.delete("/api/things/a")
        assert (not_allowed.status_code, not_allowed.headers["allow"]) == (405, "GET")
        assert (await client.get("/api/things")).status_code == 405  # POST only
        redirect = await client.get("/api/other/", follow_redirects=False)
        assert (redirect.status_code, redirect.headers["location"]) == (
            307,
            "http://localhost/api/other",
        )
        assert (await client.get("/api/missing")).status_code == 404


async def test_a_route_added_to_an_included_router_is_seen() -> None:
    """The index is rebuilt when a router already included gets a route: an earlier router's
    new route wins over a later one's, as in the whole scan."""
    app, first, _ = _small_app()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://localhost"
    ) as client:
        assert (await client.get("/api/things/special")).json() == "second special"

        @first.get("/things/special")
        async def special() -> str:
            return "first special"

        assert (await client.get("/api/things/special")).json() == "first special"
        app.router.routes.insert(0, Route("/api/things/special", lambda _: PlainTextResponse("0")))
        assert (await client.get("/api/things/special")).text == "0"


def test_literal_keys() -> None:
    key = route_index.literal_key
    assert key("/api/runs/{run_id}/events") == ("api", "runs")
    assert key("/api/runs") == ("api", "runs")
    assert key("/api/run-{x}") == ("api", None)
    assert key("/mcp") == ("mcp", None)
    assert key("/{path:path}") is None
    assert key("relative") is None


def test_a_router_with_its_own_middleware_is_not_indexed() -> None:
    app = FastAPI()
    app.router.middleware_stack = lambda scope, receive, send: None  # type: ignore[assignment,return-value]
    with pytest.raises(TypeError):
        route_index.install(app)
