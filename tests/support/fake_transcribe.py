"""A fake OpenAI-compatible transcription server (``POST /v1/audio/transcriptions``) on a real
loopback port, in a thread. It cannot recognize speech: it checks that a real audio file
arrived (a RIFF/WAVE header and a duration), records the form fields, and answers the text
the test queued — the part that cannot exist here, faked at the wire."""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


@dataclass
class Received:
    fields: dict[str, str]
    filename: str
    audio: bytes
    authorization: str | None
    seconds: float


@dataclass
class FakeTranscriber:
    answer: str = "run the tests"
    requests: list[Received] = field(default_factory=list)

    def app(self) -> Starlette:
        async def transcriptions(request: Request) -> JSONResponse:
            async with request.form() as form:
                upload: Any = form.get("file")
                audio = await upload.read()
                filename = upload.filename
                fields = {k: str(v) for k, v in form.items() if k != "file"}
            if audio[:4] != b"RIFF" or audio[8:12] != b"WAVE":
                return JSONResponse({"error": {"message": "unsupported audio"}}, 400)
            (rate,) = struct.unpack("<I", audio[24:28])
            (block,) = struct.unpack("<H", audio[32:34])
            seconds = (len(audio) - 44) / (rate * block)
            self.requests.append(
                Received(fields, filename, audio, request.headers.get("authorization"), seconds)
            )
            return JSONResponse({"text": f" {self.answer} "})

        return Starlette(
            routes=[Route("/v1/audio/transcriptions", transcriptions, methods=["POST"])]
        )

    def __enter__(self) -> FakeTranscriber:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self._sock = sock
        config = uvicorn.Config(self.app(), log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        while not self._server.started:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"
