"""The built web UI (``codeyard/web``, from ``ui/``) at ``/``, with a single-page-app fallback.

Hashed assets under ``/assets/`` are cached for a year; ``index.html`` and the other top-level
files (manifest, icons) are revalidated on every load so a new build shows up at once. Paths
under ``/api`` never fall back to the page: an unknown API path is a 404 problem.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send

WEB_DIR = Path(__file__).resolve().parents[1] / "web"
LONG_CACHE = "public, max-age=31536000, immutable"
NO_CACHE = "no-cache"

MISSING = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Codeyard</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body>
<h1>Codeyard</h1>
<p>The web UI has not been built. Run <code>make setup</code> (it runs
<code>npm ci &amp;&amp; npm run build</code> in <code>ui/</code>), then reload this page.</p>
<p>The API is up: <a href="/api/docs">/api/docs</a>.</p>
</body></html>
"""


def _file(web: Path, rel: str) -> Path | None:
    """``rel`` as a regular file inside ``web``, or None (never a path outside it)."""
    if not rel:
        return None
    target = (web / rel).resolve()
    if web not in target.parents or not target.is_file():
        return None
    return target


def _response(web: Path, path: str) -> Response:
    if path == "api" or path.startswith("api/"):
        raise HTTPException(404)
    index = web / "index.html"
    if not index.is_file():
        return HTMLResponse(MISSING, headers={"Cache-Control": NO_CACHE})
    found = _file(web, path)
    if found is not None:
        cache = LONG_CACHE if path.startswith("assets/") else NO_CACHE
        return FileResponse(found, headers={"Cache-Control": cache})
    if path.startswith("assets/"):
        raise HTTPException(404)  # a stale hashed asset: never answer it with the page
    return FileResponse(index, headers={"Cache-Control": NO_CACHE})


def install(app: FastAPI, web_dir: Path = WEB_DIR) -> None:
    """Serve ``web_dir`` for every request no route matches (the router's fallback), so it
    never shadows a route, whenever that route is added."""
    web = web_dir.resolve()
    not_found = app.router.not_found

    async def fallback(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await not_found(scope, receive, send)
            return
        if scope["method"] not in ("GET", "HEAD"):
            raise HTTPException(404)
        response = _response(web, str(scope["path"]).lstrip("/"))
        await response(scope, receive, send)

    app.router.default = fallback
