"""Port previews: path mode under ``/api/preview/{port}/…`` and host mode on preview origins.

Path mode (CodePlane's shape) is authenticated like any API route and serves the page in an
opaque origin (CSP sandbox), which breaks apps that use absolute asset paths. Host mode (its
middleware in ``codeyard.api.preview_host``, which the app needs from start-up) serves
``<run>-<n>.preview.localhost:<port>`` as its own origin; this router module hands out its links.
"""

from __future__ import annotations

from typing import Annotated

import aiohttp
from fastapi import APIRouter, Path, Request, WebSocket
from pydantic import BaseModel
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from codeyard.api.auth import Caller, authenticate, require_scope
from codeyard.api.deps import Svc
from codeyard.api.preview_host import state_of
from codeyard.domain.errors import CodeyardError
from codeyard.preview.proxy import Target, forward_http, forward_websocket
from codeyard.services import previews as service
from codeyard.services.context import Services

router = APIRouter(tags=["preview"])
ws_router = APIRouter()

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
Port = Annotated[int, Path(ge=1, le=65535)]


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

    def __init__(self, client: aiohttp.ClientSession, target: Target) -> None:
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
