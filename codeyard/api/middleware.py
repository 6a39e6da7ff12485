"""Pure ASGI middleware: security headers, the request body limit, WebSocket origin checks.

Pure ASGI (no ``BaseHTTPMiddleware``) so that streamed responses (SSE) pass through untouched:
each middleware only edits the ``http.response.start`` message or wraps ``receive``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "DOCS_CSP",
    "SPA_CSP",
    "BodyLimitMiddleware",
    "SecurityHeadersMiddleware",
    "WebSocketOriginMiddleware",
    "same_origin",
]

#: For the single-page UI served from ``/``: its own scripts only (no inline ones), inline
#: styles (React sets ``style`` attributes), same-origin fetch/SSE/WebSocket, no framing.
SPA_CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "manifest-src 'self'",
        "worker-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
#: ``/api/docs`` (``codeyard.api.docs``): Swagger UI's bundle and bootstrap from this origin;
#: inline styles only, which Swagger UI sets on its elements.
DOCS_CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "frame-ancestors 'none'",
    )
)
_BASE_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
#: HTTP versions whose requests carry a body only with ``Content-Length`` or
#: ``Transfer-Encoding`` (RFC 9112, 6.3); an HTTP/2 or /3 body needs neither.
_FRAMED_BY_HEADERS = frozenset({"1.0", "1.1"})


class SecurityHeadersMiddleware:
    """Adds CSP, nosniff, referrer and framing headers to every HTTP response."""

    def __init__(self, app: ASGIApp, docs_path: str = "/api/docs") -> None:
        self.app = app
        self.docs_path = docs_path
        # Encoded once: each response only appends the ones its app did not set.
        self._docs = (*_BASE_HEADERS, (b"content-security-policy", DOCS_CSP.encode()))
        self._spa = (*_BASE_HEADERS, (b"content-security-policy", SPA_CSP.encode()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        wanted = self._docs if scope["path"].startswith(self.docs_path) else self._spa

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for pair in wanted:
                    if pair[0] not in present:
                        headers.append(pair)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _problem(status: int, title: str, detail: str, path: str) -> bytes:
    return json.dumps(
        {
            "type": f"https://codeyard.dev/problems/{status}",
            "title": title,
            "status": status,
            "detail": detail,
            "instance": path,
        }
    ).encode()


class BodyLimitMiddleware:
    """Refuses request bodies over ``max_bytes`` with 413: by ``Content-Length`` before the
    app runs, and by counting for streamed (chunked) bodies while the app reads them."""

    def __init__(self, app: ASGIApp, max_bytes: int, larger: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        #: Paths with their own, larger limit (voice recordings: 25 MB).
        self.larger = dict(larger or {})

    def _detail(self, limit: int | None = None) -> str:
        return (
            f"The request body is larger than the server's limit of {limit or self.max_bytes} "
            "bytes. Send less, or raise CODEYARD_MAX_BODY_BYTES."
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = max(self.max_bytes, self.larger.get(scope["path"], 0))
        length: str | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length" and length is None:
                length = value.decode("latin-1")
            elif name == b"transfer-encoding":
                chunked = True
        if (
            not chunked
            and length in (None, "0")
            and scope.get("http_version") in _FRAMED_BY_HEADERS
        ):
            # No body (HTTP/1.x frames one only by these headers): nothing to count, so the
            # app gets receive and send as they are, and a streamed response (SSE) passes
            # each frame on without this layer in between.
            await self.app(scope, receive, send)
            return
        valid = length is None or (length.isascii() and length.isdigit())
        if length is not None and (not valid or int(length) > limit):
            if not valid:
                await self._reply(send, scope, 400, "Bad request", "Content-Length is invalid.")
            else:
                await self._reply(send, scope, 413, "Payload too large", self._detail(limit))
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, self._detail(limit))
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except HTTPException as exc:
            # Raised by counting_receive where no handler turned it into a response.
            if exc.status_code != 413 or started:
                raise
            await self._reply(send, scope, 413, "Payload too large", self._detail(limit))

    @staticmethod
    async def _reply(send: Send, scope: Scope, status: int, title: str, detail: str) -> None:
        body = _problem(status, title, detail, scope["path"])
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def same_origin(origin: str, host: str | None, scheme: str) -> bool:
    """Whether a browser ``Origin`` names the host (and port) the request was sent to."""
    parts = urlsplit(origin)
    if not parts.hostname or host is None:
        return False
    default = 443 if parts.scheme in ("https", "wss") else 80
    origin_port = parts.port or default
    want = urlsplit(f"{scheme}://{host}")
    host_port = want.port or (443 if scheme in ("https", "wss") else 80)
    return parts.hostname.lower() == (want.hostname or "").lower() and origin_port == host_port


class WebSocketOriginMiddleware:
    """Refuses (HTTP 403 at the handshake) a WebSocket whose ``Origin`` is another site.

    Browsers always send ``Origin`` on WebSocket handshakes and do not apply CORS to them, so a
    page on another site could otherwise open ``/api/ws`` with the user's cookie. Clients that
    send no ``Origin`` (CLIs, scripts) are let through to authenticate as usual.
    """

    def __init__(self, app: ASGIApp, allowed_origins: Iterable[str] = ()) -> None:
        self.app = app
        self.allowed = frozenset(o.rstrip("/").lower() for o in allowed_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            headers = Headers(scope=scope)
            origin = headers.get("origin")
            scheme = "https" if scope.get("scheme") in ("wss", "https") else "http"
            if origin is not None and not (
                origin.rstrip("/").lower() in self.allowed
                or same_origin(origin, headers.get("host"), scheme)
            ):
                await receive()  # websocket.connect
                await send({"type": "websocket.close", "code": 1008, "reason": "origin"})
                return
        await self.app(scope, receive, send)
