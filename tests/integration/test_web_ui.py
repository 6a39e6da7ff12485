"""The web UI at ``/``: files, the single-page fallback, caching, and the page shown when the UI
has not been built. Uses a throw-away build directory, not the real ``codeyard/web``."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from codeyard.api import webui
from codeyard.app import create_app
from codeyard.config import Settings

pytestmark = pytest.mark.anyio


def _app(web: Path, tmp_path: Path) -> FastAPI:
    app = create_app(Settings(data_dir=tmp_path / "data", admin_token="t"))
    webui.install(app, web)  # point the UI fallback at the test directory
    return app


async def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost")


@pytest.fixture
def built(tmp_path: Path) -> Path:
    web = tmp_path / "web"
    (web / "assets").mkdir(parents=True)
    (web / "index.html").write_text("<!doctype html><title>UI</title>")
    (web / "assets" / "index-abc123.js").write_text("console.log(1)")
    (web / "manifest.webmanifest").write_text("{}")
    (tmp_path / "secret.txt").write_text("outside")
    return web


async def test_serves_the_page_assets_and_falls_back_for_client_routes(
    built: Path, tmp_path: Path
) -> None:
    async with await _client(_app(built, tmp_path)) as c:
        root = await c.get("/")
        assert root.status_code == 200 and "<title>UI</title>" in root.text
        assert root.headers["cache-control"] == "no-cache"
        deep = await c.get("/runs/7/review")
        assert deep.status_code == 200 and deep.text == root.text
        asset = await c.get("/assets/index-abc123.js")
        assert asset.status_code == 200 and asset.text == "console.log(1)"
        assert "immutable" in asset.headers["cache-control"]
        assert (await c.get("/manifest.webmanifest")).headers["cache-control"] == "no-cache"
        assert (await c.head("/runs")).status_code == 200
        assert (await c.post("/runs/7")).status_code == 404


async def test_api_paths_and_missing_assets_never_get_the_page(built: Path, tmp_path: Path) -> None:
    async with await _client(_app(built, tmp_path)) as c:
        api = await c.get("/api/no-such-thing")
        assert api.status_code == 404
        assert api.headers["content-type"].startswith("application/problem+json")
        assert (await c.get("/assets/index-old999.js")).status_code == 404
        escape = await c.get("/..%2Fsecret.txt")
        assert escape.status_code == 200 and "outside" not in escape.text


async def test_routes_added_after_the_ui_still_answer(built: Path, tmp_path: Path) -> None:
    app = _app(built, tmp_path)

    @app.get("/later")
    async def later() -> dict[str, bool]:
        return {"later": True}

    async with await _client(app) as c:
        assert (await c.get("/later")).json() == {"later": True}


async def test_without_a_build_the_root_says_how_to_build(tmp_path: Path) -> None:
    async with await _client(_app(tmp_path / "nothing", tmp_path)) as c:
        resp = await c.get("/")
        assert resp.status_code == 200 and "make setup" in resp.text
