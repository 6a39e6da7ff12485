"""The Codex JSON-RPC connection's handshake against a scripted stand-in for ``codex app-server``
(a Python process on the other end of real pipes): ``initialize``, ``initialized`` and the
thread's request are written at once, without waiting for ``initialize``'s answer."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from codeyard.agents.codex.rpc import Connection, RpcError

pytestmark = pytest.mark.anyio

#: Reads messages and logs each method to argv[1]; answers as argv[2] says:
#: ``after-first``: initialize is answered only once the thread's request has arrived (a client
#: that waits for that answer before sending it never gets it); ``early``: the first thread
#: request is refused "Not initialized", as a server that takes it before initialize is done
#: would; ``refuse-init``: initialize gets an error.
SERVER = r"""
import json, sys
log, mode = open(sys.argv[1], "a"), sys.argv[2]
held, refused = None, False
def send(message):
    sys.stdout.write(json.dumps(message) + "\n"); sys.stdout.flush()
for line in sys.stdin:
    message = json.loads(line)
    method = message.get("method")
    log.write(method + "\n"); log.flush()
    if method == "initialize":
        if mode == "refuse-init":
            send({"id": message["id"], "error": {"code": -32600, "message": "bad client"}})
        elif mode == "after-first":
            held = message["id"]
        else:
            send({"id": message["id"], "result": {"userAgent": "stand-in"}})
    elif method.startswith("thread/"):
        if mode == "early" and not refused:
            refused = True
            send({"id": message["id"], "error": {"code": -32600, "message": "Not initialized"}})
            continue
        if held is not None:
            send({"id": held, "result": {"userAgent": "stand-in"}})
            held = None
        send({"id": message["id"], "result": {"thread": {"id": "t-1"}}})
"""


@asynccontextmanager
async def stand_in(tmp_path: Path, mode: str) -> AsyncIterator[tuple[Connection, Path]]:
    received = tmp_path / "received.log"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SERVER,
        str(received),
        mode,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    conn = Connection(proc)
    try:
        yield conn, received
    finally:
        await conn.aclose()
        await proc.wait()


CLIENT: dict[str, Any] = {"name": "codeyard", "title": "Codeyard", "version": "1"}


async def test_the_threads_request_goes_before_initialize_is_answered(tmp_path: Path) -> None:
    async with stand_in(tmp_path, "after-first") as (conn, received):
        async with asyncio.timeout(10):
            result = await conn.handshake(CLIENT, "thread/start", {"cwd": str(tmp_path)})
        assert result == {"thread": {"id": "t-1"}}
        assert received.read_text().split() == ["initialize", "initialized", "thread/start"]
        assert not conn._waiting


async def test_a_thread_request_taken_before_initialize_is_sent_again(tmp_path: Path) -> None:
    async with stand_in(tmp_path, "early") as (conn, received):
        async with asyncio.timeout(10):
            result = await conn.handshake(CLIENT, "thread/resume", {"threadId": "t-1"})
        assert result == {"thread": {"id": "t-1"}}
        methods = received.read_text().split()
        assert methods == ["initialize", "initialized", "thread/resume", "thread/resume"]


async def test_an_initialize_error_is_raised_as_initializes(tmp_path: Path) -> None:
    async with stand_in(tmp_path, "refuse-init") as (conn, _received):
        with pytest.raises(RpcError) as raised:
            async with asyncio.timeout(10):
                await conn.handshake(CLIENT, "thread/start", {})
        assert raised.value.method == "initialize"
        assert "bad client" in str(raised.value)
        assert not conn._waiting  # nothing left waiting for the thread's answer


async def test_a_plain_request_still_waits_for_its_answer(tmp_path: Path) -> None:
    async with stand_in(tmp_path, "early") as (conn, _received):
        async with asyncio.timeout(10):
            with pytest.raises(RpcError, match="Not initialized"):
                await conn.request("thread/start", {})
            assert json.dumps(await conn.request("thread/start", {})) == json.dumps(
                {"thread": {"id": "t-1"}}
            )
