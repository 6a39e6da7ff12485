"""One model call per backend, each returning the reply's JSON text and its token counts.

Structured output is asked for in each API's own way: a JSON-schema ``response_format`` for
OpenAI-compatible servers, a forced tool whose input is the schema for Anthropic, and
``--json-schema`` for the Claude Code CLI (its ``structured_output``).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codeyard.sandbox import environment
from codeyard.utility_model.config import UtilityModelConfig


class BackendError(Exception):
    """The backend failed (HTTP error, unreachable, malformed answer); the message says how."""


@dataclass(frozen=True, slots=True)
class Raw:
    text: str
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: float | None = None


async def _post(url: str, headers: dict[str, str], body: dict[str, Any], timeout: float) -> Any:
    import httpx  # on first use, not at the server's start-up (issue 15)

    async with httpx.AsyncClient(timeout=timeout, trust_env=False) as client:
        try:
            resp = await client.post(url, headers=headers, json=body)
        except httpx.HTTPError as exc:
            raise BackendError(f"cannot reach {url}: {type(exc).__name__}") from exc
    if resp.status_code >= 400:
        raise BackendError(f"{url} answered {resp.status_code}: {resp.text[:300]}")
    try:
        return resp.json()
    except ValueError as exc:
        raise BackendError(f"{url} answered something that is not JSON") from exc


async def openai_chat(
    cfg: UtilityModelConfig, key: str | None, system: str, user: str, schema: dict[str, Any]
) -> Raw:
    body = {
        "model": cfg.model,
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": schema, "strict": False},
        },
    }
    headers = {"authorization": f"Bearer {key}"} if key else {}
    data = await _post(f"{cfg.url}/chat/completions", headers, body, cfg.timeout_seconds)
    try:
        text = data["choices"][0]["message"]["content"] or ""
        usage = data.get("usage") or {}
    except (KeyError, IndexError, TypeError) as exc:
        raise BackendError("the chat completion has no message content") from exc
    return Raw(
        str(text),
        str(data.get("model") or cfg.model),
        int(usage.get("prompt_tokens") or 0),
        int(usage.get("completion_tokens") or 0),
    )


async def anthropic_messages(
    cfg: UtilityModelConfig, key: str | None, system: str, user: str, schema: dict[str, Any]
) -> Raw:
    body = {
        "model": cfg.model,
        "max_tokens": 1024,
        "system": system,
        "messages": [{"role": "user", "content": user}],
        "tools": [{"name": "answer", "description": "Give the answer.", "input_schema": schema}],
        "tool_choice": {"type": "tool", "name": "answer"},
    }
    headers = {"anthropic-version": "2023-06-01"}
    if key:
        headers["x-api-key"] = key
    data = await _post(f"{cfg.url}/v1/messages", headers, body, cfg.timeout_seconds)
    blocks = data.get("content") if isinstance(data, dict) else None
    usage = (data.get("usage") if isinstance(data, dict) else None) or {}
    for block in blocks or []:
        if isinstance(block, dict) and block.get("type") == "tool_use":
            text = json.dumps(block.get("input"))
            break
    else:
        texts = [b.get("text", "") for b in blocks or [] if isinstance(b, dict)]
        text = "".join(str(t) for t in texts)
    return Raw(
        text,
        str(data.get("model") or cfg.model),
        int(usage.get("input_tokens") or 0),
        int(usage.get("output_tokens") or 0),
    )


def claude_binary() -> str:
    """The Claude Code CLI: on PATH, else the one bundled with ``claude-agent-sdk``."""
    found = shutil.which("claude")
    if found:
        return found
    import claude_agent_sdk  # only when no claude is on PATH: the SDK (and MCP) cost start-up

    return str(Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude")


async def claude_cli(
    cfg: UtilityModelConfig, env: dict[str, str], system: str, user: str, schema: dict[str, Any]
) -> Raw:
    """``claude -p`` with ``--json-schema`` (its StructuredOutput tool), no other tools, in an
    empty directory, with the sandbox's allowlisted environment plus the env set's variables
    (the user's own login, or ``ANTHROPIC_*`` for an endpoint)."""
    argv = [claude_binary(), "-p", f"{system}\n\n{user}", "--output-format", "json"]
    argv += ["--model", cfg.model, "--tools", "", "--json-schema", json.dumps(schema)]
    with tempfile.TemporaryDirectory(prefix="codeyard-utility-") as where:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=environment.build("claude-code", env, os.environ),
            cwd=where,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), cfg.timeout_seconds)
        except TimeoutError as exc:
            proc.kill()
            await proc.wait()
            raise BackendError(f"claude -p did not answer in {cfg.timeout_seconds:g} s") from exc
    try:
        data = json.loads(out.decode())
    except ValueError as exc:
        raise BackendError(f"claude -p failed: {err.decode(errors='replace')[-300:]}") from exc
    if data.get("is_error"):
        raise BackendError(f"claude -p failed: {str(data.get('result'))[:300]}")
    usage = data.get("usage") or {}
    structured = data.get("structured_output")
    text = json.dumps(structured) if structured is not None else str(data.get("result") or "")
    return Raw(
        text,
        cfg.model,
        int(usage.get("input_tokens") or 0),
        int(usage.get("output_tokens") or 0),
        float(data["total_cost_usd"]) if data.get("total_cost_usd") is not None else None,
    )
