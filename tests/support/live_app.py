"""The real app served by uvicorn inside the test's event loop, on a free loopback port.

For clients that need a real HTTP server (streamable HTTP answers while the request is still
open; agent CLIs connect back to the server) while the test keeps the app's services at hand.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import uvicorn

from codeyard.app import create_app
from codeyard.config import KEEP_ALIVE_SECONDS, Settings
from codeyard.crypto import secret_box
from codeyard.services.delegation import mint_run_token
from tests.conftest import TOKEN


@dataclass
class Live:
    url: str
    settings: Settings
    app: Any

    def rest(self, token: str = TOKEN) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def run_token(self, run_id: str) -> str:
        return mint_run_token(secret_box(self.settings.secret_key_path), run_id)

    async def wait_status(self, run_id: str, *statuses: str, timeout: float = 120) -> Any:
        """The run once its status is one of ``statuses`` (polled over HTTP, bounded)."""
        body: Any = {}
        async with self.rest() as rest:
            with anyio.move_on_after(timeout):
                while True:
                    body = (await rest.get(f"/api/runs/{run_id}")).json()
                    if body["status"] in statuses:
                        return body
                    await anyio.sleep(0.1)
        raise AssertionError(f"run {run_id} never reached {statuses}: {body}")


@contextlib.asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[Live]:
    """``settings.port`` must be free (``tests.support.server.free_port``)."""
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=settings.port,
        log_level="warning",
        lifespan="on",
        timeout_keep_alive=KEEP_ALIVE_SECONDS,  # as `codeyard serve`
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        deadline = asyncio.get_running_loop().time() + 60  # start-up on a saturated machine
        while not (server.started or task.done()):
            assert asyncio.get_running_loop().time() < deadline, "the server did not start"
            await asyncio.sleep(0.02)
        assert server.started, "the server did not start"
        yield Live(f"http://127.0.0.1:{settings.port}", settings, app)
    finally:
        server.should_exit = True
        await task
