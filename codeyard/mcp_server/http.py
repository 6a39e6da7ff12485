"""``/mcp``: the MCP server over streamable HTTP (the SDK's session manager).

Requests reach it already authenticated by ``mount.McpMount``, with the caller in the
request's state, where each tool reads it and checks its own scope.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import Receive, Scope, Send

from codeyard.mcp_server.mount import PATH


class McpEndpoint:
    """The SDK's session manager for ``/mcp``; :meth:`running` must wrap the app's lifespan."""

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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve an authenticated request (``mount.McpMount`` authenticates first)."""
        await self._manager.handle_request(scope, receive, send)
