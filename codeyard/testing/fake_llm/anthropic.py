"""Anthropic Messages dialect (Claude Code; Copilot with ``COPILOT_PROVIDER_TYPE=anthropic``).

``POST /v1/messages`` (Claude Code adds ``?beta=true``) streaming as SSE or as one JSON message,
plus the calls a client may make around it: ``count_tokens`` and the model list. Frames follow
the sequence Claude Code was observed to accept (research notes §10.1).

Side calls do not consume scripted replies: a request that declares no tools, or asks for
structured output (Claude Code names each session that way), is answered with a sample value, so
a script only describes the agent's own turns.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from codeyard.testing.fake_llm.core import FakeState, new_id, sample_for_schema
from codeyard.testing.fake_llm.http import error_response, record, sse, sse_response
from codeyard.testing.fake_llm.script import Reply

__all__ = ["MODELS", "message_blocks", "message_json", "routes", "stream_frames"]

API = "anthropic"
MODELS = ("claude-sonnet-4-5", "claude-opus-4-5", "claude-haiku-4-5")
OPENAI_MODELS = ("gpt-5", "gpt-4.1")
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def declared_tools(body: Any) -> list[str]:
    tools = body.get("tools") if isinstance(body, dict) else None
    return [t["name"] for t in tools or [] if isinstance(t, dict) and "name" in t]


def side_call_reply(body: dict[str, Any]) -> Reply | None:
    """The automatic answer to a side call, or ``None`` for an agent turn."""
    fmt = (body.get("output_config") or {}).get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        return Reply(text=json.dumps(sample_for_schema(fmt.get("schema"))))
    if not declared_tools(body):
        return Reply(text="Fake answer.")
    return None


def message_blocks(reply: Reply) -> list[dict[str, Any]]:
    """The reply's content blocks, complete (as a non-streaming response carries them)."""
    blocks: list[dict[str, Any]] = []
    if reply.thinking:
        blocks.append(
            {"type": "thinking", "thinking": reply.thinking, "signature": new_id("sig_", 32)}
        )
    if reply.text or not reply.tool_calls:
        blocks.append({"type": "text", "text": reply.text or ""})
    for call in reply.tool_calls:
        blocks.append(
            {
                "type": "tool_use",
                "id": call.id or new_id("toolu_"),
                "name": call.name,
                "input": call.input,
            }
        )
    return blocks


def _stop_reason(reply: Reply) -> str:
    return reply.stop_reason or ("tool_use" if reply.tool_calls else "end_turn")


def _usage(reply: Reply, output_tokens: int | None = None) -> dict[str, int]:
    u = reply.usage
    return {
        "input_tokens": u.input_tokens,
        "cache_creation_input_tokens": u.cache_write_tokens,
        "cache_read_input_tokens": u.cache_read_tokens,
        "output_tokens": u.output_tokens if output_tokens is None else output_tokens,
    }


def message_json(reply: Reply, model: str) -> dict[str, Any]:
    return {
        "id": new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": message_blocks(reply),
        "stop_reason": _stop_reason(reply),
        "stop_sequence": None,
        "usage": _usage(reply),
    }


def _block_frames(index: int, block: dict[str, Any]) -> list[str]:
    kind = block["type"]
    start: dict[str, Any]
    deltas: list[dict[str, Any]]
    if kind == "thinking":
        start = {"type": "thinking", "thinking": ""}
        deltas = [
            {"type": "thinking_delta", "thinking": block["thinking"]},
            {"type": "signature_delta", "signature": block["signature"]},
        ]
    elif kind == "text":
        start = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": block["text"]}] if block["text"] else []
    else:
        start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
        text = json.dumps(block["input"])
        cut = len(text) // 2  # two chunks, as real streams split tool input
        deltas = [
            {"type": "input_json_delta", "partial_json": part}
            for part in (text[:cut], text[cut:])
            if part
        ]
    frames = [
        sse(
            {"type": "content_block_start", "index": index, "content_block": start},
            "content_block_start",
        )
    ]
    frames += [
        sse({"type": "content_block_delta", "index": index, "delta": d}, "content_block_delta")
        for d in deltas
    ]
    frames.append(sse({"type": "content_block_stop", "index": index}, "content_block_stop"))
    return frames


def stream_frames(reply: Reply, model: str) -> list[str]:
    """The SSE frames of one streamed message."""
    message = message_json(reply, model)
    start = {**message, "content": [], "stop_reason": None, "usage": _usage(reply, 1)}
    frames = [sse({"type": "message_start", "message": start}, "message_start")]
    frames.append(sse({"type": "ping"}, "ping"))
    for index, block in enumerate(message["content"]):
        frames += _block_frames(index, block)
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
        "usage": {"output_tokens": reply.usage.output_tokens},
    }
    frames.append(sse(delta, "message_delta"))
    frames.append(sse({"type": "message_stop"}, "message_stop"))
    return frames


def _error_body(status: int, message: str) -> dict[str, Any]:
    kind = _ERROR_TYPES.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


def routes(state: FakeState) -> list[Route]:
    async def messages(request: Request) -> Response:
        entry = await record(state, request, API)
        body = entry.body
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return JSONResponse(_error_body(400, "messages: field required"), status_code=400)
        side = side_call_reply(body)
        if side is not None:
            entry.notes.append("side call: answered without consuming the script")
            reply = side
        else:
            reply = state.prepare(state.take(entry), entry, declared_tools(body))
        model = str(body.get("model") or MODELS[0])
        if reply.http_error is not None:
            return await error_response(reply, _error_body(reply.http_error.status, "scripted"))
        if body.get("stream"):
            return sse_response(stream_frames(reply, model), reply.delay)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        return JSONResponse(message_json(reply, model))

    async def count_tokens(request: Request) -> Response:
        entry = await record(state, request, API)
        return JSONResponse({"input_tokens": max(1, len(json.dumps(entry.body)) // 4)})

    async def models(request: Request) -> Response:
        await record(state, request, API)
        # One list in both shapes: Anthropic's (type, display_name) and OpenAI's (object).
        data = [
            {
                "type": "model",
                "object": "model",
                "id": m,
                "display_name": m,
                "created_at": "2025-01-01T00:00:00Z",
                "created": 1735689600,
                "owned_by": "fake",
            }
            for m in (*MODELS, *OPENAI_MODELS)
        ]
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "has_more": False,
                "first_id": data[0]["id"],
                "last_id": data[-1]["id"],
            }
        )

    async def model(request: Request) -> Response:
        await record(state, request, API)
        name = request.path_params["model"]
        return JSONResponse(
            {
                "type": "model",
                "id": name,
                "display_name": name,
                "created_at": "2025-01-01T00:00:00Z",
            }
        )

    return [
        Route("/v1/messages", messages, methods=["POST"]),
        Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/models/{model:path}", model, methods=["GET"]),
    ]
