"""``/mcp`` as mounted in the app: the MCP SDK is loaded by the first request, not at start-up.

Every request is authenticated here, before the SDK is needed: a user's token or the admin token
(the same credentials as the REST API; cookies are not accepted, MCP clients send bearer tokens),
or a run token held by an agent Codeyard started. The caller is left in the request's state.
Unauthenticated requests get an RFC 7807 problem and never reach a session.

Importing the SDK and building the server cost about a third of ``codeyard serve``'s start-up
(issue 15), for an endpoint most servers seldom or never serve. The mount owns a task group for
the app's lifespan; half a second after start-up (the server already answers) it imports the SDK,
builds the server and runs its session manager in that group. A request that comes earlier does
the same itself; every later request goes straight to the server. The import stays on the event
loop's thread: importing the SDK in a worker thread while a turn imports the Claude Agent SDK
(which imports ``mcp`` too) raced into "partially initialized module" errors.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup, TaskStatus
from starlette.requests import HTTPConnection, Request
from starlette.types import Receive, Scope, Send

from codeyard.api.auth import authenticate
from codeyard.api.problems import problem
from codeyard.domain.errors import CodeyardError, Unauthorized

if TYPE_CHECKING:
    from codeyard.mcp_server.http import McpEndpoint

PATH = "/mcp"
log = logging.getLogger(__name__)


#: Start-up first: the SDK loads this long after the app starts.
WARM_AFTER_SECONDS = 0.5


async def _serve(endpoint: McpEndpoint, *, task_status: TaskStatus[None]) -> None:
    async with endpoint.running():
        task_status.started()
        await anyio.sleep_forever()


def _bearer(conn: HTTPConnection) -> str | None:
    scheme, _, value = conn.headers.get("authorization", "").partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


async def _authenticate(scope: Scope) -> None:
    conn = HTTPConnection(scope)
    token = _bearer(conn)
    if token is None:
        raise Unauthorized(
            "Codeyard's MCP endpoint needs 'Authorization: Bearer <token>': a personal "
            "access token (codeyard token create), the admin token, or, for agents, the run "
            "token Codeyard gives them."
        )
    # The delegation service (with the run service it starts sub-runs through) loads with the
    # first /mcp request or the SDK's warm-up, not with the app (issue 15).
    from codeyard.services import delegation

    state: dict[str, Any] = scope.setdefault("state", {})
    if token.startswith(delegation.RUN_TOKEN_PREFIX):
        svc = conn.app.state.services
        principal, run_id = await delegation.principal_for_run_token(svc, token)
        state["principal"] = principal
        state["agent_run_id"] = run_id
    else:
        await authenticate(conn)  # leaves the principal in the request state


class McpMount:
    """An ASGI app for ``/mcp``; :meth:`running` must wrap the app's lifespan."""

    def __init__(self) -> None:
        self._endpoint: McpEndpoint | None = None
        self._group: TaskGroup | None = None
        self._lock = anyio.Lock()

    @property
    def loaded(self) -> bool:
        return self._endpoint is not None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with anyio.create_task_group() as group:
            self._group = group
            group.start_soon(self._warm)
            try:
                yield
            finally:
                self._group = None
                group.cancel_scope.cancel()

    async def _warm(self) -> None:
        """Load the SDK once the server is up, so no request waits for it."""
        await anyio.sleep(WARM_AFTER_SECONDS)
        try:
            await self._started()
        except Exception:  # the first request will meet the same error, with its own reply
            log.exception("Loading Codeyard's MCP server failed")

    async def _started(self) -> McpEndpoint:
        async with self._lock:
            if self._endpoint is None:
                if self._group is None:
                    raise RuntimeError("/mcp was called outside the app's lifespan")
                from codeyard.mcp_server import http, server

                endpoint = http.McpEndpoint(server.build())
                await self._group.start(_serve, endpoint)
                self._endpoint = endpoint
            return self._endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await _authenticate(scope)
        except CodeyardError as exc:
            status = 401 if isinstance(exc, Unauthorized) else 403
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            response = problem(status, exc.detail, Request(scope), exc.title, headers)
            await response(scope, receive, send)
            return
        endpoint = await self._started()
        await endpoint(scope, receive, send)
