"""OpenAI dialects: Responses (Codex, Copilot) and Chat Completions (Copilot,
OpenCode, Aider). Event sequences are the ones those CLIs accepted (research §10.2, §10.3).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from codeyard.testing.fake_llm.core import FakeState, new_id
from codeyard.testing.fake_llm.http import error_response, record, sse, sse_response
from codeyard.testing.fake_llm.script import Reply

__all__ = [
    "EMBEDDING_DIM",
    "chat_chunks",
    "chat_json",
    "embedding",
    "response_events",
    "response_json",
    "routes",
]

#: Length of the fake embeddings (small: tests compare a handful of files).
EMBEDDING_DIM = 256
#: A few words the fake model "knows" mean the same thing, so a test can tell a search by
#: meaning from one by words: each maps to the concept it is counted as.
_SYNONYMS = {
    "automobile": "car",
    "vehicle": "car",
    "motor": "car",
    "email": "mail",
    "smtp": "mail",
    "letter": "mail",
    "postal": "mail",
    "invoice": "bill",
    "vat": "bill",
}
_WORD = re.compile(r"[a-z]+")


def embedding(text: str) -> list[float]:
    """A deterministic unit vector: a hashed bag of words (synonyms folded together)."""
    vec = [0.0] * EMBEDDING_DIM
    for word in _WORD.findall(text.lower()):
        word = _SYNONYMS.get(word, word)
        digest = hashlib.sha256(word.encode()).digest()
        vec[digest[0] % EMBEDDING_DIM] += 1.0 if digest[1] % 2 else -1.0
    norm = math.sqrt(sum(x * x for x in vec)) or 1.0
    return [x / norm for x in vec]


def _declared(body: Any) -> list[str]:
    names: list[str] = []
    for tool in (body.get("tools") if isinstance(body, dict) else None) or []:
        if not isinstance(tool, dict):
            continue
        name = tool.get("name") or (tool.get("function") or {}).get("name") or tool.get("type")
        if isinstance(name, str):
            names.append(name)
        if tool.get("type") == "namespace":  # Responses: a group of tools (Codex: MCP servers)
            names += [t["name"] for t in tool.get("tools") or [] if isinstance(t.get("name"), str)]
    return names


#: How OpenCode's session-title side call starts its system prompt.
TITLE_PROMPT = "You are a title generator"


def _title_call(body: dict[str, Any]) -> bool:
    """OpenCode's title generation (no tools, its own system prompt): a side call."""
    messages = body.get("messages")
    first = messages[0] if isinstance(messages, list) and messages else None
    content = first.get("content") if isinstance(first, dict) else None
    return not body.get("tools") and isinstance(content, str) and content.startswith(TITLE_PROMPT)


def _error_body(status: int) -> dict[str, Any]:
    return {"error": {"message": "scripted error", "type": "server_error", "code": status}}


# --- Responses -------------------------------------------------------------------------------


def _response_items(reply: Reply) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if reply.thinking:
        items.append(
            {
                "id": new_id("rs_"),
                "type": "reasoning",
                "summary": [{"type": "summary_text", "text": reply.thinking}],
            }
        )
    if reply.text or not reply.tool_calls:
        items.append(
            {
                "id": new_id("msg_"),
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": reply.text or "", "annotations": []}],
            }
        )
    for call in reply.tool_calls:
        items.append(
            {
                "id": new_id("fc_"),
                "type": "function_call",
                "status": "completed",
                "arguments": json.dumps(call.input),
                "call_id": call.id or new_id("call_"),
                "name": call.name,
                **({"namespace": call.namespace} if call.namespace else {}),
            }
        )
    return items


def response_json(reply: Reply, model: str, status: str = "completed") -> dict[str, Any]:
    u = reply.usage
    return {
        "id": new_id("resp_"),
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "model": model,
        "output": _response_items(reply),
        "usage": {
            "input_tokens": u.input_tokens,
            "input_tokens_details": {"cached_tokens": u.cache_read_tokens},
            "output_tokens": u.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": u.input_tokens + u.output_tokens,
        },
    }


def response_events(reply: Reply, model: str) -> list[dict[str, Any]]:
    """The Responses stream events (each also gets ``sequence_number`` when framed)."""
    done = response_json(reply, model)
    shell = {**done, "status": "in_progress", "output": [], "usage": None}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": shell},
        {"type": "response.in_progress", "response": shell},
    ]
    for index, item in enumerate(done["output"]):
        if item["type"] == "message":
            opened = {**item, "status": "in_progress", "content": []}
            part = item["content"][0]
            text = part["text"]
            events += [
                {"type": "response.output_item.added", "output_index": index, "item": opened},
                {
                    "type": "response.content_part.added",
                    "item_id": item["id"],
                    "output_index": index,
                    "content_index": 0,
                    "part": {**part, "text": ""},
                },
                {
                    "type": "response.output_text.delta",
                    "item_id": item["id"],
                    "output_index": index,
                    "content_index": 0,
                    "delta": text,
                },
                {
                    "type": "response.output_text.done",
                    "item_id": item["id"],
                    "output_index": index,
                    "content_index": 0,
                    "text": text,
                },
                {
                    "type": "response.content_part.done",
                    "item_id": item["id"],
                    "output_index": index,
                    "content_index": 0,
                    "part": part,
                },
            ]
        elif item["type"] == "function_call":
            opened = {**item, "status": "in_progress", "arguments": ""}
            events += [
                {"type": "response.output_item.added", "output_index": index, "item": opened},
                {
                    "type": "response.function_call_arguments.delta",
                    "item_id": item["id"],
                    "output_index": index,
                    "delta": item["arguments"],
                },
                {
                    "type": "response.function_call_arguments.done",
                    "item_id": item["id"],
                    "output_index": index,
                    "arguments": item["arguments"],
                },
            ]
        else:
            events.append(
                {"type": "response.output_item.added", "output_index": index, "item": item}
            )
        events.append({"type": "response.output_item.done", "output_index": index, "item": item})
    events.append({"type": "response.completed", "response": done})
    return events


# --- Chat Completions ------------------------------------------------------------------------


def _chat_usage(reply: Reply) -> dict[str, Any]:
    u = reply.usage
    return {
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.input_tokens + u.output_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cache_read_tokens},
    }


def _chat_tool_calls(reply: Reply) -> list[dict[str, Any]]:
    return [
        {
            "index": i,
            "id": c.id or new_id("call_"),
            "type": "function",
            "function": {"name": c.name, "arguments": json.dumps(c.input)},
        }
        for i, c in enumerate(reply.tool_calls)
    ]


def _finish(reply: Reply) -> str:
    return reply.stop_reason or ("tool_calls" if reply.tool_calls else "stop")


def chat_json(reply: Reply, model: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text}
    if reply.tool_calls:
        message["tool_calls"] = [
            {k: v for k, v in c.items() if k != "index"} for c in _chat_tool_calls(reply)
        ]
    return {
        "id": new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": _finish(reply)}],
        "usage": _chat_usage(reply),
    }


def chat_chunks(reply: Reply, model: str, include_usage: bool = True) -> list[dict[str, Any]]:
    base = {
        "id": new_id("chatcmpl-"),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    chunks = [chunk({"role": "assistant", "content": ""})]
    if reply.thinking:
        chunks.append(chunk({"reasoning_content": reply.thinking}))
    if reply.text:
        chunks.append(chunk({"content": reply.text}))
    if reply.tool_calls:
        chunks.append(chunk({"tool_calls": _chat_tool_calls(reply)}))
    chunks.append(chunk({}, _finish(reply)))
    if include_usage:
        chunks.append({**base, "choices": [], "usage": _chat_usage(reply)})
    return chunks


def routes(state: FakeState) -> list[Route]:
    async def responses(request: Request) -> Response:
        entry = await record(state, request, "openai-responses")
        body = entry.body if isinstance(entry.body, dict) else {}
        reply = state.prepare(state.take(entry), entry, _declared(body))
        model = str(body.get("model") or "gpt-5")
        if reply.http_error is not None:
            return await error_response(reply, _error_body(reply.http_error.status))
        if body.get("stream"):
            frames = [
                sse({**event, "sequence_number": n}, event["type"])
                for n, event in enumerate(response_events(reply, model))
            ]
            return sse_response(frames, reply.delay)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        return JSONResponse(response_json(reply, model))

    async def chat(request: Request) -> Response:
        entry = await record(state, request, "openai-chat")
        body = entry.body if isinstance(entry.body, dict) else {}
        if _title_call(body):
            entry.notes.append("title side call: answered without consuming the script")
            reply = Reply(text="Fake title")
        else:
            reply = state.prepare(state.take(entry), entry, _declared(body))
        model = str(body.get("model") or "gpt-4.1")
        if reply.http_error is not None:
            return await error_response(reply, _error_body(reply.http_error.status))
        if body.get("stream"):
            include = bool((body.get("stream_options") or {}).get("include_usage", True))
            frames = [sse(c) for c in chat_chunks(reply, model, include)] + [sse("[DONE]")]
            return sse_response(frames, reply.delay)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        return JSONResponse(chat_json(reply, model))

    async def embeddings(request: Request) -> Response:
        entry = await record(state, request, "openai-embeddings")
        body = entry.body if isinstance(entry.body, dict) else {}
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not all(isinstance(t, str) for t in inputs):
            detail = "input must be a string or a list of strings"
            error = {"type": "invalid_request_error", "message": detail}
            return JSONResponse({"error": error}, 400)
        data = [
            {"object": "embedding", "index": i, "embedding": embedding(t)}
            for i, t in enumerate(inputs)
        ]
        model = str(body.get("model") or "text-embedding-3-small")
        usage = {"prompt_tokens": sum(len(t.split()) for t in inputs)}
        return JSONResponse({"object": "list", "data": data, "model": model, "usage": usage})

    return [
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/embeddings", embeddings, methods=["POST"]),
        Route("/v1/responses", responses, methods=["POST"]),
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/responses", responses, methods=["POST"]),
        Route("/chat/completions", chat, methods=["POST"]),
    ]
