"""A JSON-RPC connection to ``codex app-server`` over its stdio (one JSON object per line).

One reader task owns stdout: responses resolve the waiting request, everything else (the
server's notifications and its requests to us) goes to :attr:`Connection.inbox` in arrival
order, each with the raw line for the run's log. Stderr is drained into a bounded tail that
failures quote.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections import deque
from dataclasses import dataclass
from typing import Any

from codeyard.agents.codex.protocol import Response, ServerMessage, parse

__all__ = ["Closed", "Connection", "RpcError"]

log = logging.getLogger(__name__)
STDERR_LINES = 40
#: Terminal colour codes in Codex's log lines.
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
#: Longest line accepted from the app-server (a command's whole output can be in one).
LINE_LIMIT = 64 * 1024 * 1024


class RpcError(Exception):
    """The app-server answered a request with an error."""

    def __init__(self, method: str, error: dict[str, Any]) -> None:
        self.method = method
        self.error = error
        super().__init__(f"{method}: {error.get('message') or error}")


#: What the app-server answers a request sent before ``initialize`` is done (lower case).
NOT_INITIALIZED = "not initialized"


@dataclass(frozen=True, slots=True)
class _Sent:
    """A request written, waiting for its answer."""

    ident: int
    future: asyncio.Future[Response]


class Closed:
    """Put in the inbox when the app-server's stdout ends."""


class Connection:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        self.proc = proc
        self.inbox: asyncio.Queue[tuple[str, ServerMessage] | Closed] = asyncio.Queue()
        self.stderr: deque[str] = deque(maxlen=STDERR_LINES)
        self._next_id = 1
        self._waiting: dict[int | str, asyncio.Future[Response]] = {}
        self._tasks = [
            asyncio.create_task(self._read(proc.stdout)),
            asyncio.create_task(self._drain(proc.stderr)),
        ]

    async def _read(self, stream: asyncio.StreamReader) -> None:
        try:
            while True:
                line = await stream.readline()
                if not line:
                    break
                text = line.decode("utf-8", errors="replace").strip()
                if not text:
                    continue
                try:
                    message = parse(json.loads(text))
                except ValueError:
                    log.info("codex app-server wrote a line that is not JSON: %.200s", text)
                    continue
                if isinstance(message, Response) and message.id in self._waiting:
                    future = self._waiting.pop(message.id)
                    if not future.done():
                        future.set_result(message)
                    continue
                await self.inbox.put((text, message))
        finally:
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(ConnectionError("the Codex app-server exited"))
            self._waiting.clear()
            self.inbox.put_nowait(Closed())

    async def _drain(self, stream: asyncio.StreamReader) -> None:
        while True:
            line = await stream.readline()
            if not line:
                return
            text = _ANSI.sub("", line.decode("utf-8", errors="replace")).rstrip()
            if text:
                self.stderr.append(text)

    def _send(self, payload: dict[str, Any]) -> None:
        """Write one message now, in call order (the pipe's buffer takes it; drained later)."""
        stdin = self.proc.stdin
        assert stdin is not None
        if stdin.is_closing():
            raise ConnectionError("the Codex app-server's stdin is closed")
        stdin.write((json.dumps(payload, ensure_ascii=False) + "\n").encode())

    async def _flush(self) -> None:
        assert self.proc.stdin is not None
        await self.proc.stdin.drain()

    async def _write(self, payload: dict[str, Any]) -> None:
        self._send(payload)
        await self._flush()

    def _begin(self, method: str, params: dict[str, Any] | None) -> _Sent:
        """Send a request now; its answer comes to the returned future."""
        ident = self._next_id
        self._next_id += 1
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._waiting[ident] = future
        payload: dict[str, Any] = {"id": ident, "method": method}
        if params is not None:
            payload["params"] = params
        try:
            self._send(payload)
        except BaseException:
            self._waiting.pop(ident, None)
            raise
        return _Sent(ident, future)

    def _forget(self, sent: _Sent) -> None:
        """No longer wait for ``sent``'s answer (an exception it got is seen, not logged)."""
        self._waiting.pop(sent.ident, None)
        if not sent.future.done():
            sent.future.cancel()
        elif not sent.future.cancelled():
            sent.future.exception()

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send a request and wait for its result; :class:`RpcError` for an error answer."""
        sent = self._begin(method, params)
        try:
            await self._flush()
            response = await sent.future
        finally:
            self._forget(sent)
        if response.error is not None:
            raise RpcError(method, response.error)
        return response.result or {}

    async def handshake(
        self, client: dict[str, Any], method: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        """``initialize``, ``initialized`` and the first request (``thread/start`` or
        ``thread/resume``) written at once: the result of that request.

        The app-server takes one connection's messages in order, so the first request is
        handled once ``initialize`` is done. Waiting for ``initialize``'s answer before sending
        it cost a trip through this event loop (under load, a wait for the loop) while Codex sat
        idle. A server that answers it "Not initialized" (one that took it before
        ``initialize`` was done) gets it again once ``initialize`` is answered.
        """
        initializing = self._begin("initialize", {"clientInfo": client})
        first: _Sent | None = None
        try:
            self._send({"method": "initialized"})
            first = self._begin(method, params)
            await self._flush()
            answered = await initializing.future
            if answered.error is not None:
                raise RpcError("initialize", answered.error)
            response = await first.future
        finally:
            self._forget(initializing)
            if first is not None:
                self._forget(first)
        if response.error is None:
            return response.result or {}
        if NOT_INITIALIZED in str(response.error.get("message", "")).lower():
            log.info("the Codex app-server took %s before initialize was done: sent again", method)
            return await self.request(method, params)
        raise RpcError(method, response.error)

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        payload: dict[str, Any] = {"method": method}
        if params is not None:
            payload["params"] = params
        await self._write(payload)

    async def answer(self, ident: int | str, result: dict[str, Any]) -> None:
        """Answer one of the server's requests."""
        await self._write({"id": ident, "result": result})

    async def refuse(self, ident: int | str, message: str) -> None:
        """Answer a server request Codeyard does not support with an error."""
        await self._write({"id": ident, "error": {"code": -32601, "message": message}})

    def close_stdin(self) -> None:
        stdin = self.proc.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()

    async def aclose(self) -> None:
        """Stop reading (the process itself is stopped by its owner)."""
        self.close_stdin()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
