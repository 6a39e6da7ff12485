"""Port previews: path mode under ``/api/preview/{port}/…`` and host mode on preview origins.

Path mode (CodePlane's shape) is authenticated like any API route and serves the page in an
opaque origin (CSP sandbox), which breaks apps that use absolute asset paths. Host mode serves
``<run>-<n>.preview.localhost:<port>`` as its own origin, so absolute paths and Vite's HMR
socket work; it is entered through a one-time link and then uses a cookie of that host only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import parse_qs

import httpx
from fastapi import APIRouter, Path, Request, WebSocket
from pydantic import BaseModel
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from codeyard.api.auth import Caller, authenticate, require_scope
from codeyard.api.deps import Svc
from codeyard.domain.errors import CodeyardError
from codeyard.preview.access import COOKIE, COOKIE_SECONDS, PreviewGrants, Recent
from codeyard.preview.proxy import Target, forward_http, forward_websocket
from codeyard.services import previews as service
from codeyard.services.context import Services

router = APIRouter(tags=["preview"])
ws_router = APIRouter()

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
AUTH_PATH = "/__codeyard/preview-auth"
Port = Annotated[int, Path(ge=1, le=65535)]


@dataclass
class PreviewState:
    """The proxy's upstream client (no redirects followed, no environment proxies) and the
    grants of preview origins."""

    domain: str
    grants: PreviewGrants = field(default_factory=PreviewGrants)
    recent: Recent = field(default_factory=Recent)
    client: httpx.AsyncClient = field(
        default_factory=lambda: httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,
            timeout=httpx.Timeout(30.0, read=None),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        )
    )


def state_of(app: Any) -> PreviewState:
    found: PreviewState = app.state.preview
    return found


class LinkOut(BaseModel):
    run_id: str
    index: int
    port: int
    url: str
    origin: str
    path_url: str
    expires_in: float


class LeaseOut(BaseModel):
    run_id: str
    base_port: int
    size: int
    ports: list[int]
    env: dict[str, str]


class _Forward(Response):
    """A response that is the upstream's, streamed."""

    def __init__(self, client: httpx.AsyncClient, target: Target) -> None:
        self.client = client
        self.target = target
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await forward_http(self.client, scope, receive, send, self.target)


async def preview_path(
    port: Port, path: str, request: Request, caller: Caller, svc: Svc
) -> Response:
    """Forward to ``127.0.0.1:<port>/<path>``: a port of a run the caller may read."""
    state = state_of(request.app)
    key = ("port", caller.kind, caller.user_id, caller.token_id, port)
    if state.recent.get(key) is None:
        await service.authorize_port(svc, caller, port)
        state.recent.put(key, True)
    target = Target(port, "/" + path, request.url.query, f"127.0.0.1:{port}", own_origin=False)
    return _Forward(state.client, target)


# One route per method: each needs its own OpenAPI operation id.
for _method in METHODS:
    router.add_api_route(
        "/preview/{port}/{path:path}",
        preview_path,
        methods=[_method],
        operation_id=f"preview_{_method.lower()}",
        dependencies=[require_scope("runs:read")],
        response_class=Response,
        responses={200: {"description": "Whatever the previewed program answers."}},
    )


@ws_router.websocket("/preview/{port}/{path:path}")
async def preview_path_ws(ws: WebSocket, port: int, path: str) -> None:
    svc: Services = ws.app.state.services
    try:
        caller = await authenticate(ws)
        if "runs:read" not in caller.scopes:
            raise PermissionError
        await service.authorize_port(svc, caller, port)
    except (CodeyardError, PermissionError):
        await ws.accept()
        await ws.close(code=4403, reason="not allowed")
        return
    query = ws.scope.get("query_string", b"").decode("latin-1")
    target = Target(port, "/" + path, query, f"127.0.0.1:{port}", own_origin=False)
    await forward_websocket(ws.scope, ws.receive, ws.send, target)


@router.get(
    "/runs/{run_ref}/preview",
    response_model=LeaseOut,
    dependencies=[require_scope("runs:read")],
)
async def run_ports(run_ref: str, caller: Caller, svc: Svc) -> LeaseOut:
    """The run's port block (leased on first use) and the variables its processes get."""
    run, lease = await service.run_lease(svc, caller, run_ref)
    return LeaseOut(run_id=run["id"], env=lease.env(), **lease.public())


@router.post(
    "/runs/{run_ref}/preview/{index}/link",
    response_model=LinkOut,
    dependencies=[require_scope("runs:read")],
)
async def preview_link(
    run_ref: str,
    index: Annotated[int, Path(ge=0, le=99)],
    caller: Caller,
    svc: Svc,
    request: Request,
) -> LinkOut:
    """A one-time link (60 s) into the host-mode preview of port ``index`` of the run's block."""
    state = state_of(request.app)
    body = await service.link(
        svc,
        state.grants,
        caller,
        run_ref,
        index,
        scheme=request.url.scheme,
        server_port=request.url.port,
        domain=state.domain,
    )
    return LinkOut(**body)


# --- host mode --------------------------------------------------------------------------------


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
    query = scope.get("query_string", b"").decode("latin-1")
    target = Target(lease.base_port + index, scope["path"], query, host, own_origin=True)
    if is_ws:
        await forward_websocket(scope, receive, send, target)
    else:
        await forward_http(state.client, scope, receive, send, target)
