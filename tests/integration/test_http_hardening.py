"""Security headers, the body limit, CORS, the WebSocket origin check and the run-creation rate."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from codeyard.api.limits import SlidingWindow
from codeyard.api.middleware import same_origin
from codeyard.config import Settings
from tests.conftest import TOKEN, Api, open_api
from tests.support.server import ServerProcess

pytestmark = pytest.mark.anyio


def assert_security_headers(headers: object) -> None:
    h = dict(headers)  # type: ignore[call-overload]
    csp = h["content-security-policy"]
    for directive in (
        "default-src 'self'",
        "script-src 'self'",
        "connect-src 'self'",
        "img-src 'self' data:",
        "frame-ancestors 'none'",
    ):
        assert directive in csp, csp
    assert "'unsafe-inline'" not in csp.split("script-src", 1)[1].split(";")[0]
    assert h["x-content-type-options"] == "nosniff"
    assert h["referrer-policy"] == "no-referrer"
    assert h["x-frame-options"] == "DENY"


def settings_with(tmp_path: Path, **kw: object) -> Settings:
    return Settings(data_dir=tmp_path / "data", admin_token=TOKEN, **kw)  # type: ignore[arg-type]


@pytest.fixture
async def small_api(tmp_path: Path) -> AsyncIterator[Api]:
    """The API with a 4 KiB body limit, three runs a minute and CORS for one origin."""
    settings = settings_with(
        tmp_path, max_body_bytes=4096, run_create_per_minute=3, cors_origins="https://ui.example"
    )
    async for api in open_api(settings):
        yield api


async def test_every_kind_of_response_carries_the_security_headers(sqlite_api: Api) -> None:
    api = sqlite_api
    for resp in (
        await api.get("/api/health"),
        await api.get("/api/settings"),
        await api.get("/api/runs/run_nope"),  # a problem
        await api.get("/api/nowhere"),  # no route
        await api.client.get("/api/settings", headers={"Authorization": "Bearer wrong"}),
    ):
        assert_security_headers(resp.headers)
    index = await api.client.get("/", headers={"Authorization": ""})  # the web UI
    assert_security_headers(index.headers)
    docs = await api.get("/api/docs")
    assert docs.status_code == 200
    csp = docs.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "http" not in csp  # nothing from a CDN, no inline JS
    assert "<script>" not in docs.text
    for src in ("/api/docs/assets/swagger-ui-bundle.js", "/api/docs/init.js"):
        assert f'src="{src}"' in docs.text
        asset = await api.client.get(src, headers={"Authorization": ""})  # public by design
        assert asset.status_code == 200 and "javascript" in asset.headers["content-type"]
    css = await api.client.get("/api/docs/assets/swagger-ui.css", headers={"Authorization": ""})
    assert css.status_code == 200 and ".swagger-ui" in css.text
    assert (await api.get("/api/docs/assets/..%2Fcore.py")).status_code == 404
    assert (await api.get("/api/docs/assets/redoc.standalone.js")).status_code == 404
    assert docs.headers["x-frame-options"] == "DENY"


async def test_bodies_over_the_limit_get_413(small_api: Api, git_repo: Path) -> None:
    api = small_api
    big = {"prompt": "x" * 5000, "repo_path": str(git_repo), "provider": "script"}
    resp = await api.post("/api/runs", json=big)
    assert resp.status_code == 413, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert (
        "4096 bytes" in resp.json()["detail"] and "CODEYARD_MAX_BODY_BYTES" in resp.json()["detail"]
    )
    assert_security_headers(resp.headers)

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
        yield b'{"prompt": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'", "provider": "script"}'

    streamed = await api.client.post(
        "/api/runs", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413, streamed.text
    assert streamed.json()["status"] == 413
    small = await api.post("/api/env-sets", json={"name": "fits", "variables": {"A": "1"}})
    assert small.status_code == 201


async def test_cors_is_off_by_default(sqlite_api: Api) -> None:
    preflight = await sqlite_api.client.options(
        "/api/runs",
        headers={"Origin": "https://ui.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    plain = await sqlite_api.get("/api/health", headers={"Origin": "https://ui.example"})
    assert "access-control-allow-origin" not in plain.headers


async def test_cors_allows_only_the_configured_origins(small_api: Api) -> None:
    ok = await small_api.client.options(
        "/api/runs",
        headers={"Origin": "https://ui.example", "Access-Control-Request-Method": "POST"},
    )
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == "https://ui.example"
    assert_security_headers(ok.headers)
    other = await small_api.client.options(
        "/api/runs",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in other.headers
    get = await small_api.get("/api/health", headers={"Origin": "https://ui.example"})
    assert get.headers["access-control-allow-origin"] == "https://ui.example"


async def test_run_creation_is_rate_limited_per_caller(small_api: Api, git_repo: Path) -> None:
    body = {"prompt": "x", "repo_path": str(git_repo), "provider": "script", "draft": True}
    created = [await small_api.post("/api/runs", json=body) for _ in range(3)]
    assert [r.status_code for r in created] == [201, 201, 201]
    limited = await small_api.post("/api/runs", json=body)
    assert limited.status_code == 429, limited.text
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert "CODEYARD_RUN_CREATE_PER_MINUTE" in limited.json()["detail"]
    retry = await small_api.post(f"/api/runs/{created[0].json()['id']}/retry")
    assert retry.status_code == 429
    # Reading and other writes are not counted.
    assert (await small_api.get("/api/runs")).status_code == 200
    assert (await small_api.post(f"/api/runs/{created[0].json()['id']}/archive")).status_code == 200


def test_sliding_window_frees_slots_as_they_age() -> None:
    now = [0.0]
    window = SlidingWindow(2, 60, clock=lambda: now[0])
    assert window.hit("a") is None and window.hit("a") is None
    assert window.hit("a") == 60 and window.hit("b") is None
    now[0] = 30.0
    assert window.hit("a") == 30
    now[0] = 60.5
    assert window.hit("a") is None


@pytest.mark.parametrize(
    ("origin", "host", "ok"),
    [
        ("http://127.0.0.1:8420", "127.0.0.1:8420", True),
        ("http://localhost:8420", "127.0.0.1:8420", False),
        ("http://127.0.0.1:9999", "127.0.0.1:8420", False),
        ("https://codeyard.example", "codeyard.example", False),  # scheme → port 443 vs 80
        ("http://codeyard.example", "codeyard.example:80", True),
        ("null", "127.0.0.1:8420", False),
        ("http://evil.example", "127.0.0.1:8420", False),
    ],
)
def test_same_origin(origin: str, host: str, ok: bool) -> None:
    assert same_origin(origin, host, "http") is ok


@pytest.fixture
def ws_server(tmp_path: Path) -> Iterator[ServerProcess]:
    srv = ServerProcess(
        tmp_path / "data", env={"CODEYARD_CORS_ORIGINS": "https://ui.example,https://b.example/"}
    )
    srv.start()
    yield srv
    srv.stop()


async def test_sse_still_streams_through_the_middleware(
    ws_server: ServerProcess, git_repo: Path
) -> None:
    """Headers arrive with the stream's start and frames arrive live (nothing buffers)."""
    async with (
        ws_server.client() as client,
        client.stream(
            "GET", "/api/events/stream", headers={"Accept": "text/event-stream"}
        ) as stream,
    ):
        assert stream.status_code == 200
        assert_security_headers(stream.headers)
        resp = await client.post(
            "/api/runs",
            json={
                "prompt": "hello",
                "repo_path": str(git_repo),
                "provider": "script",
                "agent_options": {"scenario": {"steps": []}},
            },
        )
        assert resp.status_code == 201, resp.text
        with anyio.fail_after(20):
            async for line in stream.aiter_lines():
                if line.startswith("event: run.created"):
                    break


async def test_websocket_origin_check(ws_server: ServerProcess) -> None:
    url = f"{ws_server.ws_url}/api/ws?access_token={ws_server.token}"
    for origin in (None, ws_server.url, "https://ui.example", "https://b.example"):
        kw = {"origin": origin} if origin else {}
        async with connect(url, **kw) as ws:  # type: ignore[arg-type]
            await ws.send('{"subscribe": {}}')
    for origin in ("https://evil.example", "http://127.0.0.1:1", "null"):
        with pytest.raises(InvalidStatus) as caught:
            async with connect(url, origin=origin):  # type: ignore[arg-type]
                pass
        assert caught.value.response.status_code == 403
