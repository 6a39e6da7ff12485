"""The fake model server: one Starlette app serving every dialect, run in a background thread.

A thread (not a task on the caller's loop) keeps the server answering while a test's own loop is
busy or blocked, and lets synchronous code (the ``codeyard fake-llm`` command, plain scripts) use
the same class.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from codeyard.config import KEEP_ALIVE_SECONDS
from codeyard.testing.fake_llm import anthropic, gemini, openai
from codeyard.testing.fake_llm.core import FakeState, RecordedRequest
from codeyard.testing.fake_llm.http import record
from codeyard.testing.fake_llm.script import Reply, load_script

__all__ = ["FakeLLM", "build_app"]

log = logging.getLogger("codeyard.fake_llm")
HOST = "127.0.0.1"
STARTUP_TIMEOUT = 30.0


def build_app(state: FakeState) -> Starlette:
    """The ASGI app: every dialect's routes, a health answer at ``/``, 404 (logged) otherwise."""

    async def root(request: Request) -> Response:
        await record(state, request, "meta")
        return PlainTextResponse("codeyard fake LLM\n")

    async def unknown(request: Request) -> Response:
        entry = await record(state, request, "unknown")
        if request.method == "HEAD":  # connectivity probes (Claude Code: HEAD /api/hello)
            return Response(status_code=200)
        entry.notes.append("no such endpoint in the fake model server")
        log.warning("fake LLM: unknown endpoint %s %s", request.method, request.url.path)
        detail = f"The fake model server has no endpoint {request.method} {request.url.path}."
        return JSONResponse({"error": {"type": "not_found_error", "message": detail}}, 404)

    routes = [
        Route("/", root, methods=["GET", "HEAD"]),
        *anthropic.routes(state),
        *openai.routes(state),
        *gemini.routes(state),
        Route("/{path:path}", unknown, methods=["GET", "POST", "PUT", "DELETE", "HEAD"]),
    ]
    return Starlette(routes=routes)


class FakeLLM:
    """A scripted model server on ``127.0.0.1``: queue replies, point an agent at ``url``.

    Use as a context manager (``with FakeLLM() as fake:``) or call ``start()``/``stop()``.
    ``port=0`` picks a free port.
    """

    def __init__(
        self,
        replies: Iterable[Reply] = (),
        *,
        default: Reply | None = None,
        port: int = 0,
        host: str = HOST,
    ) -> None:
        self.state = FakeState(replies, default)
        self._host = host
        self._port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @classmethod
    def from_file(cls, path: Path, *, port: int = 0) -> FakeLLM:
        replies, default = load_script(path)
        return cls(replies, default=default, port=port)

    @property
    def port(self) -> int:
        if self._socket is None:
            raise RuntimeError("the fake LLM is not started")
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        """Base URL without a path (agents append ``/v1/...`` themselves)."""
        return f"http://{self._host}:{self.port}"

    def script(self, replies: Iterable[Reply]) -> None:
        """Queue more replies; they answer model calls in order."""
        self.state.script(replies)

    @property
    def requests(self) -> list[RecordedRequest]:
        return self.state.requests

    def model_calls(self, api: str | None = None) -> list[RecordedRequest]:
        return self.state.model_calls(api)

    def wait_for_model_calls(self, count: int, timeout: float = 30.0) -> list[RecordedRequest]:
        return self.state.wait_for_model_calls(count, timeout)

    def start(self) -> FakeLLM:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._port))
        self._socket = sock
        config = uvicorn.Config(
            build_app(self.state),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
            # An agent idle ~5 s (awaiting an approval) then calling the model must not meet a
            # connection the server is closing: uvicorn's 5 s is a client's own expiry.
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="codeyard-fake-llm", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not server.started:  # uvicorn offers no event to wait on
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the fake LLM server did not start; see the log above")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = None

    def __enter__(self) -> FakeLLM:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
