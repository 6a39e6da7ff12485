"""The Host allowlist: refuse requests addressed to a name this server does not answer to.

DNS rebinding: a web page on ``evil.example`` re-points its own name at 127.0.0.1 and then
calls the local server from the victim's browser as a *same-origin* request, so neither CORS
nor the WebSocket Origin check sees anything foreign; only the ``Host`` header
(``evil.example``) tells. Allowed are the loopback names, the bound host, the host of
``CODEYARD_PUBLIC_URL`` and ``CODEYARD_ALLOWED_HOSTS`` (``*`` turns the check off). Anything
else gets 421 Misdirected Request as a problem naming the setting; a WebSocket is refused.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from codeyard.config import Settings

__all__ = ["HostAllowlistMiddleware", "allowed_hosts", "host_name"]

_UNSPECIFIED = {"0.0.0.0", "::", "[::]", ""}


def host_name(header: str) -> str:
    """``Host`` header value → lower-case name without the port (IPv6 keeps its brackets)."""
    value = header.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[: end + 1] if end != -1 else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def allowed_hosts(settings: Settings) -> frozenset[str] | None:
    """The names accepted, or None when any is (``*``)."""
    names = set(settings.allowed_host_names)
    if "*" in names:
        return None
    host = settings.host.strip().lower()
    if host not in _UNSPECIFIED:
        names.add(f"[{host}]" if ":" in host and not host.startswith("[") else host)
    if settings.public_url:
        public = urlsplit(settings.public_url).hostname
        if public:
            names.add(f"[{public}]" if ":" in public else public.lower())
    return frozenset(names)


class HostAllowlistMiddleware:
    def __init__(self, app: ASGIApp, allowed: frozenset[str] | None) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.allowed is None or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        name = host_name(Headers(scope=scope).get("host", ""))
        if name in self.allowed:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        detail = (
            f"This server does not answer to the host name '{name or '(none)'}'. If that is "
            "how you reach it, add the name to CODEYARD_ALLOWED_HOSTS (comma-separated) or "
            "set CODEYARD_PUBLIC_URL; this check guards against DNS rebinding."
        )
        body = json.dumps(
            {
                "type": "https://codeyard.dev/problems/421",
                "title": "Misdirected request",
                "status": 421,
                "detail": detail,
                "instance": scope.get("path"),
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 421,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
