"""Route matching that tries only the routes a path could reach (issue 15, target 3).

The app's router tries its routes in order, one regex per route, and Codeyard has about 370
of them behind 66 included routers: matching ``GET /api/runs/{id}/events`` took ~100 µs of
event-loop CPU, ~8 % of the loop's CPU with 20 agents running. This index keeps that loop
but over the routes that can match the path, in their original relative order, so the first
full match and the first partial match (405) are the ones the linear scan finds.

Each route (for an included router: each route inside it) is read as a pattern over the
first ``DEPTH`` path segments: a literal, one segment (a parameter of a converter that never
matches ``/``), the end of the path, or anything from there on (a ``path`` parameter).
A route that cannot be read so (a mount, a host, a frontend group, a lazy placeholder, an
unknown converter or route type) is a candidate for every path. A path's segments not seen
in any pattern at their position are all alike, so the candidates are computed once per
shape of path and kept. When nothing matches, the router's own ``app`` runs: the full scan,
the trailing-slash redirect, FastAPI's low-priority routes and the UI fallback, as before.

The index is rebuilt when the app's route list changes (lazy routers replace their
placeholders, ``codeyard/api/lazy.py``: checked by identity on every request) or when a router
reached through it changes (FastAPI's per-router version counters, the ones its own caches use).
It hooks in as the router's ``middleware_stack``, which Starlette calls from ``Router.__call__``
and which is the router's ``app`` when the router has no middleware of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from operator import attrgetter
from typing import Any

from fastapi import FastAPI
from fastapi.routing import (
    APIRoute,
    APIRouter,
    _apply_router_form_limits,
    _EffectiveRouteContext,
    _IncludedRouter,
    _update_scope,
)
from fastapi.telemetry._api import _route_selected
from starlette._utils import get_route_path
from starlette.convertors import (
    Convertor,
    FloatConvertor,
    IntegerConvertor,
    PathConvertor,
    StringConvertor,
    UUIDConvertor,
)
from starlette.routing import BaseRoute, Match, Mount, Route, WebSocketRoute
from starlette.types import Receive, Scope, Send

#: How many leading path segments (the empty one before the first ``/`` included) are indexed.
DEPTH = 6
#: Shapes of path kept at most (a path's unknown segments collapse, so this bounds junk paths).
MAX_SHAPES = 4096

# One position of a route's pattern: a literal segment (a str), or one of these.
_ONE = 1  # any one segment
_END = 2  # no segment: the path has ended
_REST = 3  # anything from here on, ended or not
_UNKNOWN = object()  # a path segment no pattern names at its position

_SINGLE_SEGMENT: tuple[type[Convertor[Any]], ...] = (
    StringConvertor,
    IntegerConvertor,
    FloatConvertor,
    UUIDConvertor,
)
_version = attrgetter("_routes_version")

Pattern = tuple[str | int, ...]
#: The methods a 405 may name, in the order it names them.
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def pattern(path_format: str, convertors: dict[str, Convertor[Any]]) -> Pattern | None:
    """The route's pattern over the first ``DEPTH`` segments; None when any path may match."""
    out: list[str | int] = []
    segments = path_format.split("/")
    for position in range(DEPTH):
        if position >= len(segments):
            out.append(_END)
            continue
        segment = segments[position]
        if "{" not in segment:
            out.append(segment)
            continue
        names = [part.split("}", 1)[0] for part in segment.split("{")[1:]]
        kinds = [convertors.get(name) for name in names]
        if any(isinstance(kind, PathConvertor) for kind in kinds):
            out.append(_REST)
            break
        if not all(
            type(kind) in _SINGLE_SEGMENT for kind in kinds
        ):  # a subclass may widen the regex
            return None
        out.append(_ONE)
    return tuple(out)


def _leaf_pattern(route: BaseRoute | _EffectiveRouteContext) -> Pattern | None:
    """A single route's pattern; None when it cannot be read (it may match anything)."""
    if isinstance(route, _EffectiveRouteContext):
        if isinstance(route.original_route, APIRoute):
            return pattern(route.path_format, route.param_convertors)
        if route.starlette_route is None:
            return None
        route = route.starlette_route
    if isinstance(route, Mount) or not isinstance(route, (Route, WebSocketRoute)):
        return None
    return pattern(route.path_format, route.param_convertors)


def patterns(route: BaseRoute) -> list[Pattern] | None:
    """Every pattern a route (an included router: each route inside it) can match; None when
    the route may match any path."""
    if not isinstance(route, _IncludedRouter):
        leaf = _leaf_pattern(route)
        return None if leaf is None else [leaf]
    out: list[Pattern] = []
    for context in route.effective_route_contexts():
        leaf = _leaf_pattern(context)
        if leaf is None:
            return None
        out.append(leaf)
    return out


def _fits(leaf: Pattern, shape: tuple[object, ...]) -> bool:
    for expected, seen in zip(leaf, shape, strict=False):
        if expected == _REST:
            return True
        if expected == _END:
            if seen is not None:
                return False
        elif expected == _ONE:
            if seen is None:
                return False
        elif expected != seen:
            return False
    return True


def _routers(routes: Iterable[BaseRoute]) -> Iterator[APIRouter]:
    """The routers reached through included routers, nested ones too (their versions say
    when their routes change)."""
    for route in routes:
        if isinstance(route, _IncludedRouter):
            yield route.original_router
            yield from _routers(route.original_router.routes)


class RouteIndex:
    """The candidates for a path, from the routes of one router."""

    def __init__(self, router: APIRouter) -> None:
        self.router = router
        self._ids: tuple[int, ...] = ()
        self._reached: tuple[APIRouter, ...] = ()
        self._versions: tuple[int, ...] = ()
        self._build()

    def _current(self) -> bool:
        return (
            tuple(map(id, self.router.routes)) == self._ids
            and tuple(map(_version, self._reached)) == self._versions
        )

    def _build(self) -> None:
        routes = tuple(self.router.routes)
        reached = (self.router, *_routers(routes))
        self._ids = tuple(map(id, routes))
        self._reached = reached
        self._versions = tuple(map(_version, reached))
        self._entries = [(route, patterns(route)) for route in routes]
        self._known: list[set[str]] = [set() for _ in range(DEPTH)]
        for _, leaves in self._entries:
            for leaf in leaves or ():
                for position, part in enumerate(leaf):
                    if isinstance(part, str):
                        self._known[position].add(part)
        self._shapes: dict[tuple[object, ...], list[BaseRoute]] = {}

    def shape(self, path: str) -> tuple[object, ...]:
        """The path's first segments, the ones no pattern names replaced by one marker."""
        segments = path.split("/", DEPTH)
        count = len(segments)
        return tuple(
            (segments[i] if segments[i] in self._known[i] else _UNKNOWN) if i < count else None
            for i in range(DEPTH)
        )

    def candidates(self, path: str) -> list[BaseRoute]:
        """The routes that may match ``path``, in the router's order."""
        if not self._current():
            self._build()
        shape = self.shape(path)
        found = self._shapes.get(shape)
        if found is None:
            found = [
                route
                for route, leaves in self._entries
                if leaves is None or any(_fits(leaf, shape) for leaf in leaves)
            ]
            if len(self._shapes) >= MAX_SHAPES:
                self._shapes.clear()
            self._shapes[shape] = found
        return found


class IndexedDispatch:
    """FastAPI's ``APIRouter.app`` over the candidates; the router's own ``app`` when none
    matches (the full scan then finds nothing either, and goes on as it always did)."""

    def __init__(self, router: APIRouter) -> None:
        self.router = router
        self.index = RouteIndex(router)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        router = self.router
        if scope["type"] not in ("http", "websocket"):
            await router.app(scope, receive, send)
            return
        _apply_router_form_limits(scope, router.form_limits)
        if "router" not in scope:
            scope["router"] = router
        chosen: tuple[BaseRoute, Scope] | None = None
        for route in self.index.candidates(get_route_path(scope)):
            match, child_scope = route.matches(scope)
            if match == Match.FULL:
                chosen = (route, child_scope)
                break
            if match == Match.PARTIAL and chosen is None:
                chosen = (route, child_scope)
        if chosen is None:
            await router.app(scope, receive, send)
            return
        route, child_scope = chosen
        _update_scope(scope, child_scope)
        _route_selected(
            scope=scope,
            path=getattr(route, "path_format", None),
            mount=isinstance(route, Mount),
        )
        await route.handle(scope, receive, send)


def allowed_methods(router: APIRouter, scope: Scope) -> list[str]:
    """The methods some route of ``router`` answers at the scope's path, for a 405's ``Allow``
    and detail. Starlette's 405 names only the methods of the first route the path matched, not
    those of the routes after it at the same path (``GET`` and ``POST /api/runs`` are two)."""
    dispatch = router.middleware_stack
    if isinstance(dispatch, IndexedDispatch) and dispatch.router is router:
        routes = dispatch.index.candidates(get_route_path(scope))
    else:
        routes = list(router.routes)
    return [
        method
        for method in METHODS
        if any(route.matches({**scope, "method": method})[0] == Match.FULL for route in routes)
    ]


def install(app: FastAPI) -> None:
    """Match the app's requests through the index (call once the app's router is built)."""
    router = app.router
    if type(router) is not APIRouter or router.middleware_stack != router.app:
        raise RuntimeError("the route index expects FastAPI's APIRouter without middleware")
    router.middleware_stack = IndexedDispatch(router)
