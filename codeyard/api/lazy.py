"""Routers that load on the first request under their paths (issue 15).

Start-up is almost all imports, and about half of what the server imports at start-up is the
API modules themselves: each builds pydantic models and FastAPI routes at import, and pulls in
the services it calls. A server answering its health check needs none of that, so the app
registers each router by name (``codeyard.api.runs:router``) and the first path segments under
``/api`` it serves (``runs``). A placeholder stands where ``include_router`` would have put the
router, so routes are tried in the same order as with every router included at once; the
first request whose path starts with one of those segments imports the module, includes the
router in that same place (with the same dependencies, so authentication and scopes are the
ones declared on the routes) and is answered by it. After start-up the rest load in the
background, one module per event-loop turn, so later first requests do not wait either.

Everything that reads the whole route table sees every route: the OpenAPI schema loads all
routers first (``install``), and a walk through ``original_router`` (the ratchet tests, the
scope check) loads the router it reaches. ``tests/unit/test_lazy_routes.py`` fails when a
router serves a path outside the segments registered for it.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.params import Depends
from fastapi.routing import APIRouter
from starlette.routing import BaseRoute, Match
from starlette.types import Receive, Scope, Send

#: The mount point of every lazy router.
PREFIX = "/api"
#: How long after start-up the routers nobody asked for yet start loading in the background.
WARM_AFTER_SECONDS = 1.0

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LazyRouter:
    """A router by name, and the first path segments under ``/api`` its routes start with."""

    target: str  # "module:attribute"
    segments: tuple[str, ...]
    dependencies: tuple[Depends, ...] = ()
    prefix: str = PREFIX  # given to include_router ("" for a router spelling out /api itself)

    def load(self) -> APIRouter:
        module, _, attribute = self.target.partition(":")
        router = getattr(importlib.import_module(module), attribute)
        if not isinstance(router, APIRouter):
            raise TypeError(f"{self.target} is not an APIRouter")
        return router


class Placeholder(BaseRoute):
    """Stands in the app's route list for a router not loaded yet; loads it when a request
    could be its, or when something walks the routes."""

    def __init__(self, app: FastAPI, spec: LazyRouter, lock: threading.RLock) -> None:
        self.app = app
        self.spec = spec
        self._lock = lock
        self._heads = tuple(f"{PREFIX}/{segment}" for segment in spec.segments)
        self._loaded: BaseRoute | None = None

    def claims(self, path: str) -> bool:
        """Whether ``path`` is under one of the router's segments (whole segments only)."""
        return any(path == head or path.startswith(head + "/") for head in self._heads)

    def load(self) -> BaseRoute:
        """Include the router where this placeholder stands; the included entry."""
        if self._loaded is not None:
            return self._loaded
        with self._lock:  # one loader at a time: the route list is shared
            if self._loaded is None:
                router = self.spec.load()
                routes = self.app.router.routes
                self.app.include_router(
                    router, prefix=self.spec.prefix, dependencies=list(self.spec.dependencies)
                )
                entry = routes.pop()  # include_router appends; put it in our place instead
                index = next((i for i, r in enumerate(routes) if r is self), None)
                if index is None:  # not in the table (any more): keep the order of loading
                    routes.append(entry)
                else:
                    routes[index] = entry
                self._loaded = entry
        return self._loaded

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if self._loaded is None and not (
            scope["type"] in ("http", "websocket") and self.claims(scope["path"])
        ):
            return Match.NONE, {}
        return self.load().matches(scope)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.load().handle(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        return self.load().url_path_for(name, **path_params)

    # A walk through included routers (as FastAPI keeps them) reaches the real one.
    @property
    def original_router(self) -> APIRouter:
        entry: Any = self.load()  # FastAPI's included-router entry
        router: APIRouter = entry.original_router
        return router

    @property
    def include_context(self) -> Any:
        entry: Any = self.load()
        return entry.include_context

    def __repr__(self) -> str:
        return f"Placeholder({self.spec.target!r}, segments={self.spec.segments!r})"


def include(app: FastAPI, specs: Iterable[LazyRouter]) -> None:
    """Append a placeholder per router to the app's routes, in order."""
    lock = _lock_of(app)
    for spec in specs:
        app.router.routes.append(Placeholder(app, spec, lock))


def placeholders(app: FastAPI) -> list[Placeholder]:
    """The routers of ``app`` not loaded yet."""
    return [r for r in app.router.routes if isinstance(r, Placeholder)]


def load_all(app: FastAPI) -> None:
    """Load every router still waiting (the full route table is about to be read)."""
    for placeholder in placeholders(app):
        placeholder.load()


def install(app: FastAPI) -> None:
    """The OpenAPI schema is built from every router, loaded or not."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            load_all(app)
        return build()

    app.openapi = openapi  # type: ignore[method-assign]


async def warm_up(app: FastAPI, after: float) -> None:
    """Load the remaining routers ``after`` seconds from now, one per event-loop turn, so a
    request arriving meanwhile waits for at most one module's import."""
    await asyncio.sleep(after)
    for placeholder in placeholders(app):
        try:
            placeholder.load()
        except Exception:  # the first request under its paths meets the same error, and says so
            log.exception("Loading %s failed", placeholder.spec.target)
        await asyncio.sleep(0)


def _lock_of(app: FastAPI) -> threading.RLock:
    """One lock per app, re-entrant (a module's import may reach the route table)."""
    lock: threading.RLock | None = getattr(app.state, "lazy_routers_lock", None)
    if lock is None:
        lock = threading.RLock()
        app.state.lazy_routers_lock = lock
    return lock
