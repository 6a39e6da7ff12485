"""Preview origins (host mode): the middleware and the state the app holds from start-up.

Host mode serves ``<run>-<n>.preview.localhost:<port>`` as its own origin, so absolute paths and
Vite's HMR socket work; it is entered through a one-time link and then uses a cookie of that
host only. This is the part of previews the app needs before any request (the middleware sees
every request), so it is kept apart from the preview routes (``codeyard.api.preview``, loaded on
their first request) and imports the proxy, aiohttp and websockets only when a preview origin is
asked for (together about 60 ms of start-up CPU, issue 15).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Receive, Scope, Send

from codeyard.preview.access import COOKIE, COOKIE_SECONDS, PreviewGrants, Recent
from codeyard.services import previews as service

if TYPE_CHECKING:
    import aiohttp

    from codeyard.services.context import Services

AUTH_PATH = "/__codeyard/preview-auth"


@dataclass
class PreviewState:
    """The grants of preview origins and the proxy's upstream client (no redirects followed, no
    environment proxies), created on the first forwarded request."""

    domain: str
    grants: PreviewGrants = field(default_factory=PreviewGrants)
    recent: Recent = field(default_factory=Recent)
    _client: aiohttp.ClientSession | None = None

    @property
    def client(self) -> aiohttp.ClientSession:
        if self._client is None:
            from codeyard.preview.proxy import upstream_session

            self._client = upstream_session()
        return self._client

    async def aclose(self) -> None:
        """Close the upstream client if a preview ever used it."""
        if self._client is not None:
            await self._client.close()


def state_of(app: Any) -> PreviewState:
    found: PreviewState = app.state.preview
    return found


class PreviewHostMiddleware:
    """Requests for ``<run>-<n>.<preview domain>`` go to the run's port; everything else to the
    app. Outermost, so Codeyard's own framing and CSP headers do not apply to previews."""

    def __init__(self, app: ASGIApp, domain: str) -> None:
        self.app = app
        self._host = re.compile(r"^(\d{1,9})-(\d{1,2})\." + re.escape(domain) + r"(:\d+)?$")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = next((v.decode("latin-1") for n, v in scope["headers"] if n == b"host"), "")
        match = self._host.match(host.lower())
        if match is None:
            await self.app(scope, receive, send)
            return
        await _host_mode(scope, receive, send, host, int(match.group(1)), int(match.group(2)))


def _cookie(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"cookie":
            for part in value.decode("latin-1").split(";"):
                key, _, val = part.strip().partition("=")
                if key == COOKIE:
                    return str(val)
    return None


async def _plain(
    send: Send, status: int, text: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _host_mode(
    scope: Scope, receive: Receive, send: Send, host: str, number: int, index: int
) -> None:
    app = scope["app"]
    svc: Services = app.state.services
    state = state_of(app)
    found: Any = state.recent.get(("host", number))
    if found is None:
        found = await service.host_lease(svc, number)
        if found is not None:
            state.recent.put(("host", number), found)
    is_ws = scope["type"] == "websocket"
    if found is None or index >= found[1].size:
        if is_ws:
            await send({"type": "websocket.close", "code": 4404})
        else:
            await _plain(send, 404, f"Run {number} has no preview port {index}.")
        return
    run, lease = found
    if not is_ws and scope["path"] == AUTH_PATH:
        token = parse_qs(scope.get("query_string", b"").decode()).get("token", [""])[0]
        cookie = state.grants.redeem(token, run["id"], index)
        if cookie is None:
            await _plain(
                send,
                403,
                "This preview link was used or has expired: open the preview again from Codeyard.",
            )
            return
        secure = "; Secure" if scope.get("scheme") == "https" else ""
        set_cookie = (
            f"{COOKIE}={cookie}; Path=/; HttpOnly; SameSite=Lax; "
            f"Max-Age={int(COOKIE_SECONDS)}{secure}"
        )
        await _plain(send, 303, "", [(b"location", b"/"), (b"set-cookie", set_cookie.encode())])
        return
    if state.grants.check(_cookie(scope), run["id"], index) is None:
        if is_ws:
            await send({"type": "websocket.close", "code": 4401})
        else:
            await _plain(
                send, 401, "Open this preview from Codeyard (the run's page) to sign in to it."
            )
        return
    from codeyard.preview.proxy import Target, forward_http, forward_websocket

    query = scope.get("query_string", b"").decode("latin-1")
    target = Target(lease.base_port + index, scope["path"], query, host, own_origin=True)
    if is_ws:
        await forward_websocket(scope, receive, send, target)
    else:
        await forward_http(state.client, scope, receive, send, target)
