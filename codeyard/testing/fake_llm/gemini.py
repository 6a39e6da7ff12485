"""Gemini dialect (Gemini CLI): ``models/<m>:streamGenerateContent?alt=sse``, ``:generateContent``
and ``:countTokens``. Gemini CLI's model router asks ``generateContent`` for a JSON answer
(``responseMimeType: application/json``); those side calls get a fixed JSON answer and do not
consume scripted replies, so a script only describes the agent's own turns.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from codeyard.testing.fake_llm.core import FakeState
from codeyard.testing.fake_llm.http import error_response, record, sse, sse_response
from codeyard.testing.fake_llm.script import Reply

__all__ = ["generate_json", "routes"]

API = "gemini"
ROUTER_ANSWER = {
    "reasoning": "The fake model always routes to the default.",
    "model_choice": "flash",
}


def _declared(body: Any) -> list[str]:
    names: list[str] = []
    for tool in (body.get("tools") if isinstance(body, dict) else None) or []:
        for decl in (tool or {}).get("functionDeclarations") or []:
            if isinstance(decl, dict) and isinstance(decl.get("name"), str):
                names.append(decl["name"])
    return names


def generate_json(reply: Reply, model: str) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    if reply.thinking:
        parts.append({"text": reply.thinking, "thought": True})
    if reply.text or not reply.tool_calls:
        parts.append({"text": reply.text or ""})
    parts += [{"functionCall": {"name": c.name, "args": c.input}} for c in reply.tool_calls]
    u = reply.usage
    return {
        "candidates": [
            {
                "content": {"role": "model", "parts": parts},
                "finishReason": reply.stop_reason or "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": u.input_tokens,
            "candidatesTokenCount": u.output_tokens,
            "cachedContentTokenCount": u.cache_read_tokens,
            "totalTokenCount": u.input_tokens + u.output_tokens,
        },
        "modelVersion": model,
    }


def _wants_json(body: Any) -> bool:
    config = body.get("generationConfig") if isinstance(body, dict) else None
    return isinstance(config, dict) and config.get("responseMimeType") == "application/json"


def routes(state: FakeState) -> list[Route]:
    async def model_call(request: Request) -> Response:
        entry = await record(state, request, API)
        model, _, method = request.path_params["target"].partition(":")
        body = entry.body if isinstance(entry.body, dict) else {}
        if method == "countTokens":
            return JSONResponse({"totalTokens": max(1, len(json.dumps(body)) // 4)})
        if method not in ("generateContent", "streamGenerateContent"):
            entry.notes.append(f"unknown Gemini method '{method}'")
            return JSONResponse({"error": {"code": 404, "message": "unknown method"}}, 404)
        if _wants_json(body):
            entry.notes.append("router side call: answered without consuming the script")
            return JSONResponse(generate_json(Reply(text=json.dumps(ROUTER_ANSWER)), model))
        reply = state.prepare(state.take(entry), entry, _declared(body))
        if reply.http_error is not None:
            status = reply.http_error.status
            return await error_response(
                reply, {"error": {"code": status, "message": "scripted error"}}
            )
        if method == "streamGenerateContent":
            return sse_response([sse(generate_json(reply, model))], reply.delay)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        return JSONResponse(generate_json(reply, model))

    return [
        Route("/v1beta/models/{target:path}", model_call, methods=["POST"]),
        Route("/v1/models/{target:path}", model_call, methods=["POST"]),
    ]
