"""The app's router tries only the routes a path could be for (issue 15).

FastAPI tries the app's entries in order, and an included router's entry tries every route of
that router: a request under ``/api/projects`` went through 56 of the app's 68 entries and
their routes, ~460 µs of the event loop's CPU; one under ``/api/runs`` through 15-19, 90-140 µs.
A route's pattern starts with a literal part (``/api/runs/`` in ``/api/runs/{run_id}``) that a
path it matches must start with, so the entries a path could be for are known from the path's
first two segments. :class:`RouteIndex` lists them per segment pair, in the app's order, once
per route table, each with one pattern joining its routes' patterns (an entry whose pattern
does not match the path cannot match it, so it is not asked: one C call instead of a walk
through its routes); :class:`IndexedRouter` tries only those, and when none of them is a full
match it does exactly what FastAPI does (the whole ordered scan): a 405, a trailing-slash
redirect, the low-priority routes and the web UI fallback are decided as before.

The full-match branch repeats ``APIRouter.app``'s, with FastAPI's own helpers (private names:
a FastAPI upgrade that renames them fails at import, in every test, not at a request).

An entry the index cannot read (a host route, a frontend group, a type it does not know) is a
candidate for every path, so an unknown kind of route is slower, never skipped. The index is
rebuilt when the route table changes: an entry added, removed or replaced (a lazy router
loading, ``codeyard/api/lazy.py``) or a route added to a router already included.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from operator import attrgetter

from fastapi import FastAPI
from fastapi.routing import (
    APIRoute,
    APIRouter,
    APIWebSocketRoute,
    _apply_router_form_limits,
    _IncludedRouter,
    _update_scope,
)
from fastapi.telemetry._api import _route_selected
from starlette.routing import BaseRoute, Match, Mount, Route, WebSocketRoute, compile_path
from starlette.types import Receive, Scope, Send

from codeyard.api import lazy

#: The first two segments of a pattern's literal part; None for "any second segment".
Key = tuple[str, str | None]
#: An entry, and a pattern every path it can match (fully or partially) matches; None: any.
Candidate = tuple[BaseRoute, "re.Pattern[str] | None"]
#: The kinds of route whose ``path`` is their whole pattern.
_PATHED = (APIRoute, APIWebSocketRoute, Route, WebSocketRoute)
#: A router's route-table version (FastAPI bumps it when the router gets a route or a router).
_VERSION = attrgetter("_routes_version")
_GROUP_NAME = re.compile(r"(?<!\\)\(\?P<\w+>")


def literal_key(template: str) -> Key | None:
    """The segments every path matching ``template`` starts with, as far as they are whole
    segments of its literal part; None when not even the first is (it could match anything)."""
    literal, brace, _ = template.partition("{")
    parts = literal.split("/")
    if parts[0] != "":  # not an absolute pattern: nothing to say about it
        return None
    # A segment is whole when a "/" follows it in the literal part, or it ends a parameterless
    # pattern: in "/api/run-{x}" the second segment is only known to start with "run-".
    whole = parts[1:] if not brace else parts[1:-1]
    if len(whole) >= 2:
        return whole[0], whole[1]
    if whole:
        return whole[0], None
    return None


def templates(route: BaseRoute) -> list[str] | None:
    """The path templates of what ``route`` tries, as FastAPI matches them (an included
    router's prefix applied); None when it could match any path or is of a kind not known."""
    if isinstance(route, lazy.Placeholder):
        loaded = route.loaded
        return None if loaded is None else templates(loaded)
    if isinstance(route, _IncludedRouter):
        return _included(route.original_router, route.include_context.prefix)
    return _included_one(route, "")


def _included(router: APIRouter, prefix: str) -> list[str] | None:
    found: list[str] = []
    for route in router.routes:
        if isinstance(route, _IncludedRouter):
            inner = _included(route.original_router, prefix + route.include_context.prefix)
        else:
            inner = _included_one(route, prefix)
        if inner is None:
            return None
        found += inner
    return found


def _included_one(route: BaseRoute, prefix: str) -> list[str] | None:
    if isinstance(route, Mount):  # as FastAPI and Starlette compile a mount's pattern
        return [(prefix + route.path).rstrip("/") + "/{path:path}"]
    if isinstance(route, _PATHED):
        return [prefix + route.path]
    return None  # a host, a frontend group, a kind not known here: tried for every path


def keys(route: BaseRoute, paths: list[str] | None) -> frozenset[Key] | None:
    """The keys of the paths ``route`` can match; None: any path."""
    if isinstance(route, lazy.Placeholder) and route.loaded is None:
        # Not loaded: it matches only under its segments (``Placeholder.claims``).
        return frozenset(
            k for k in (literal_key(f"{lazy.PREFIX}/{s}/") for s in route.spec.segments) if k
        )
    if paths is None:
        return None
    found = {literal_key(path) for path in paths}
    return None if None in found else frozenset(k for k in found if k is not None)


def pattern(paths: list[str] | None) -> re.Pattern[str] | None:
    """One pattern matching the paths any of ``paths`` matches (their named groups made
    plain, the names repeat across routes); None when there is nothing to narrow."""
    if not paths:
        return None
    alternatives = [_GROUP_NAME.sub("(?:", compile_path(path)[0].pattern) for path in paths]
    return re.compile("|".join(f"(?:{a})" for a in alternatives))


@dataclass(frozen=True)
class RouteIndex:
    """The entries of one route table that a path could be for, in the table's order."""

    #: Entries for a path's (first, second) segments: that pair's, its first's, and the anywhere.
    by_pair: dict[tuple[str, str], tuple[Candidate, ...]]
    #: Entries for a path whose second segment no entry names (its first's and the anywhere).
    by_first: dict[str, tuple[Candidate, ...]]
    #: Entries for a one-segment path: every entry under its first segment, and the anywhere.
    under_first: dict[str, tuple[Candidate, ...]]
    #: Entries that could match any path.
    anywhere: tuple[Candidate, ...]

    @classmethod
    def build(cls, routes: Sequence[BaseRoute]) -> RouteIndex:
        keyed: list[tuple[Candidate, frozenset[Key] | None]] = []
        for route in routes:
            paths = templates(route)
            keyed.append(((route, pattern(paths)), keys(route, paths)))
        pairs: dict[tuple[str, str], list[Candidate]] = {}
        firsts: dict[str, list[Candidate]] = {}
        unders: dict[str, list[Candidate]] = {}
        anywhere: list[Candidate] = []
        for key in {k for _, ks in keyed for k in ks or ()}:
            firsts.setdefault(key[0], [])
            unders.setdefault(key[0], [])
            if key[1] is not None:
                pairs.setdefault((key[0], key[1]), [])
        for entry, ks in keyed:  # in the table's order, so every list keeps it
            if ks is None:
                anywhere.append(entry)
            for (first, second), found in pairs.items():
                if ks is None or (first, second) in ks or (first, None) in ks:
                    found.append(entry)
            for first, found in firsts.items():
                if ks is None or (first, None) in ks:
                    found.append(entry)
            for first, found in unders.items():
                if ks is None or any(k[0] == first for k in ks):
                    found.append(entry)
        return cls(
            by_pair={k: tuple(v) for k, v in pairs.items()},
            by_first={k: tuple(v) for k, v in firsts.items()},
            under_first={k: tuple(v) for k, v in unders.items()},
            anywhere=tuple(anywhere),
        )

    def candidates(self, route_path: str) -> tuple[Candidate, ...] | None:
        """The entries ``route_path`` could match by its first segments, in order, each with
        its pattern (an entry whose pattern does not match cannot match); None: every entry."""
        parts = route_path.split("/", 3)
        if len(parts) < 2 or parts[0] != "":
            return None
        first = parts[1]
        if len(parts) == 2:
            return self.under_first.get(first, self.anywhere)
        found = self.by_pair.get((first, parts[2]))
        if found is not None:
            return found
        return self.by_first.get(first, self.anywhere)


class IndexedRouter(APIRouter):
    """The app's router, trying a request's candidate entries (:class:`RouteIndex`) first.

    The first full match among the candidates is the one the whole scan finds (the entries
    left out cannot match the path at all), so it is handled as FastAPI's ``APIRouter.app``
    handles a full match. Anything else (no candidate, only a partial match: a 405, a redirect,
    the fallback) goes through ``APIRouter.app`` itself.
    """

    _index: RouteIndex | None = None
    #: What the index was built from: the entries, the routers they include, their versions.
    _indexed: tuple[tuple[BaseRoute, ...], tuple[APIRouter, ...], tuple[int, ...]] = ((), (), ())

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and not scope.get("root_path"):
            path = scope["path"]
            candidates = self.index().candidates(path)
            if candidates is not None:
                _apply_router_form_limits(scope, self.form_limits)
                if "router" not in scope:
                    scope["router"] = self
                for route, narrowed in candidates:
                    if narrowed is not None and narrowed.match(path) is None:
                        continue
                    match, child_scope = route.matches(scope)
                    if match == Match.FULL:
                        _update_scope(scope, child_scope)
                        _route_selected(
                            scope=scope,
                            path=getattr(route, "path_format", None),
                            mount=isinstance(route, Mount),
                        )
                        await route.handle(scope, receive, send)
                        return
        await super().app(scope, receive, send)

    def index(self) -> RouteIndex:
        """The index of the route table as it is now: rebuilt when an entry was added, removed
        or replaced, or a route was added to this router or to one it includes (FastAPI bumps
        a router's ``_routes_version`` then, and includes a router's routes as they are at
        each request)."""
        routes = tuple(self.routes)
        built, routers, versions = self._indexed
        if self._index is None or routes != built or versions != tuple(map(_VERSION, routers)):
            routers = (self, *_included_routers(routes))
            self._index = RouteIndex.build(routes)
            self._indexed = (routes, routers, tuple(map(_VERSION, routers)))
        return self._index


def _included_routers(routes: Sequence[BaseRoute]) -> Iterator[APIRouter]:
    """The routers ``routes`` include, and the ones those include."""
    for route in routes:
        if isinstance(route, _IncludedRouter):
            yield route.original_router
            yield from _included_routers(route.original_router.routes)


def install(app: FastAPI) -> None:
    """Make ``app``'s router an :class:`IndexedRouter`.

    FastAPI builds the app's router itself and takes no router class, so the router's class is
    changed to the subclass (which adds no state of its own, only the lazily built index), and
    its ``middleware_stack``, bound to ``APIRouter.app`` when it was built, is bound again. A
    router with middleware of its own is refused rather than silently bypassed."""
    router = app.router
    if type(router) is not APIRouter or router.middleware_stack != router.app:
        raise TypeError("the app's router is not a plain APIRouter: not indexing it")
    router.__class__ = IndexedRouter
    router.middleware_stack = router.app
