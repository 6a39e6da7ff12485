"""``/mcp``: the MCP server over streamable HTTP, behind Codeyard's bearer authentication.

Every request is authenticated before the SDK sees it: a user's token or the admin token (the
same credentials as the REST API; cookies are not accepted, MCP clients send bearer tokens),
or a run token held by an agent Codeyard started. The caller is left in the request's state,
where each tool reads it and checks its own scope. Unauthenticated requests get an RFC 7807
problem and never reach a session.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import HTTPConnection, Request
from starlette.types import Receive, Scope, Send

from codeyard.api.auth import authenticate
from codeyard.api.problems import problem
from codeyard.domain.errors import CodeyardError, Unauthorized
from codeyard.services import delegation

PATH = "/mcp"


def _bearer(conn: HTTPConnection) -> str | None:
    scheme, _, value = conn.headers.get("authorization", "").partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


class McpEndpoint:
    """An ASGI app for ``/mcp``; :meth:`running` must wrap the app's lifespan."""

    def __init__(self, server: MCPServer) -> None:
        # DNS-rebinding protection guards cookie-authenticated local servers; this endpoint
        # takes bearer tokens only, which a rebinding page cannot send.
        server.streamable_http_app(
            streamable_http_path=PATH,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        self._manager = server.session_manager

    def running(self) -> AbstractAsyncContextManager[None]:
        return self._manager.run()

    async def _authenticate(self, scope: Scope) -> None:
        conn = HTTPConnection(scope)
        token = _bearer(conn)
        if token is None:
            raise Unauthorized(
                "Codeyard's MCP endpoint needs 'Authorization: Bearer <token>': a personal "
                "access token (codeyard token create), the admin token, or, for agents, the run "
                "token Codeyard gives them."
            )
        state: dict[str, Any] = scope.setdefault("state", {})
        if token.startswith(delegation.RUN_TOKEN_PREFIX):
            svc = conn.app.state.services
            principal, run_id = await delegation.principal_for_run_token(svc, token)
            state["principal"] = principal
            state["agent_run_id"] = run_id
        else:
            await authenticate(conn)  # leaves the principal in the request state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._authenticate(scope)
        except CodeyardError as exc:
            status = 401 if isinstance(exc, Unauthorized) else 403
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            response = problem(status, exc.detail, Request(scope), exc.title, headers)
            await response(scope, receive, send)
            return
        await self._manager.handle_request(scope, receive, send)
