"""``/api/docs``: Swagger UI served from this server, so the API reference works offline.

FastAPI's own docs page loads Swagger UI from a CDN and boots it with an inline script; offline
that page is blank, and the CSP had to allow the CDN and inline scripts. Here the page, its
bootstrap script and the Swagger UI bundle (shipped by the ``fastapi-offline`` wheel, Swagger UI
5, which reads OpenAPI 3.1) all come from this origin, under a CSP without ``unsafe-inline``
scripts. Public by design, like ``/api/openapi.json``: it holds no data.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.exceptions import HTTPException

DOCS_PATH = "/api/docs"
#: The Swagger UI build inside the ``fastapi-offline`` wheel (package data, not a private API).
SWAGGER_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"
#: The only files served from it, with their media types.
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon.png": "image/png",
}
_CACHE = "public, max-age=86400"

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Codeyard API</title>
<link rel="icon" type="image/png" href="{base}/assets/favicon.png">
<link rel="stylesheet" href="{base}/assets/swagger-ui.css">
</head><body>
<div id="swagger-ui"></div>
<script src="{base}/assets/swagger-ui-bundle.js"></script>
<script src="{base}/init.js"></script>
</body></html>
"""

#: Served as a file, not inline: the docs CSP allows scripts from this origin only.
_INIT = """window.ui = SwaggerUIBundle({
  url: "/api/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  persistAuthorization: false,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  layout: "BaseLayout",
});
"""

router = APIRouter(include_in_schema=False)


@router.get(DOCS_PATH)
async def docs_page() -> HTMLResponse:
    """The Swagger UI page: local stylesheet, bundle and bootstrap script."""
    return HTMLResponse(_PAGE.format(base=DOCS_PATH), headers={"Cache-Control": "no-cache"})


@router.get(f"{DOCS_PATH}/init.js")
async def docs_init() -> Response:
    return Response(_INIT, media_type="text/javascript", headers={"Cache-Control": "no-cache"})


@router.get(DOCS_PATH + "/assets/{name}")
async def docs_asset(name: str) -> FileResponse:
    """One of the allow-listed Swagger UI files; anything else is a 404."""
    media_type = ASSETS.get(name)
    if media_type is None:
        raise HTTPException(404)
    headers = {"Cache-Control": _CACHE}
    return FileResponse(SWAGGER_DIR / name, media_type=media_type, headers=headers)
