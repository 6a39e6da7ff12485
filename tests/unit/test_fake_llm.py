"""The fake model server over real HTTP: every dialect, the script format, the request log."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from codeyard.testing.fake_llm import (
    FakeLLM,
    Reply,
    ScriptError,
    ToolCall,
    Usage,
    load_script,
    parse_replies,
)
from codeyard.testing.postgres import free_port

TOOLS = [{"name": "Bash", "input_schema": {"type": "object"}}]


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


def sse_data(text: str) -> list[Any]:
    return [
        json.loads(line[6:])
        for line in text.splitlines()
        if line.startswith("data: ") and line != "data: [DONE]"
    ]


def anthropic(fake: FakeLLM, stream: bool, **body: Any) -> httpx.Response:
    payload = {"model": "claude-x", "messages": [{"role": "user", "content": "hi"}], **body}
    return httpx.post(
        f"{fake.url}/v1/messages?beta=true", json={**payload, "stream": stream}, timeout=10
    )


def test_anthropic_stream_carries_text_tool_use_and_usage(fake: FakeLLM) -> None:
    fake.script(
        [
            Reply(
                thinking="hmm",
                text="Running it.",
                tool_calls=(ToolCall("Bash", {"command": "ls {cwd}"}),),
                usage=Usage(120, 7, 30, 4),
            )
        ]
    )
    system = "Primary working directory: /work/tree\n"
    resp = anthropic(fake, True, tools=TOOLS, system=system)
    assert resp.headers["content-type"].startswith("text/event-stream")
    frames = sse_data(resp.text)
    assert [f["type"] for f in frames][:2] == ["message_start", "ping"]
    start = frames[0]["message"]
    assert start["model"] == "claude-x" and start["usage"]["input_tokens"] == 120
    assert start["usage"]["cache_read_input_tokens"] == 30
    blocks = [f["content_block"]["type"] for f in frames if f["type"] == "content_block_start"]
    assert blocks == ["thinking", "text", "tool_use"]
    tool_json = "".join(
        f["delta"]["partial_json"]
        for f in frames
        if f["type"] == "content_block_delta" and f["delta"]["type"] == "input_json_delta"
    )
    assert json.loads(tool_json) == {"command": "ls /work/tree"}
    delta = next(f for f in frames if f["type"] == "message_delta")
    assert delta["delta"]["stop_reason"] == "tool_use" and delta["usage"]["output_tokens"] == 7
    assert frames[-1]["type"] == "message_stop"
    call = fake.model_calls("anthropic")[0]
    assert call.reply_index == 0 and call.query == "beta=true" and call.notes == []
    assert "Primary working directory" in call.text()


def test_anthropic_json_errors_default_and_side_calls(fake: FakeLLM) -> None:
    fake.script(
        [
            Reply(text="plain"),
            Reply(http_error=parse_replies([{"http_error": 529}])[0][0].http_error),
            Reply(tool_calls=(ToolCall("Nope", {}),)),
        ]
    )
    body = anthropic(fake, False, tools=TOOLS).json()
    assert body["content"] == [{"type": "text", "text": "plain"}]
    assert body["stop_reason"] == "end_turn" and body["usage"]["output_tokens"] == 12
    # A side call (no tools / structured output) does not use up the script.
    schema = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}
    side = anthropic(
        fake, False, tools=[], output_config={"format": {"type": "json_schema", "schema": schema}}
    )
    assert json.loads(side.json()["content"][0]["text"]) == {"title": "Fake answer"}
    error = anthropic(fake, False, tools=TOOLS)
    assert error.status_code == 529 and error.json()["error"]["type"] == "overloaded_error"
    anthropic(fake, False, tools=TOOLS)
    assert "not among the 1 tools declared" in fake.model_calls()[-1].notes[0]
    exhausted = anthropic(fake, False, tools=TOOLS).json()
    assert "no scripted reply left" in exhausted["content"][0]["text"]
    assert fake.model_calls()[-1].reply_index is None
    assert (
        httpx.post(f"{fake.url}/v1/messages/count_tokens", json={"messages": []}).json()[
            "input_tokens"
        ]
        >= 1
    )
    assert httpx.head(f"{fake.url}/api/hello").status_code == 200
    assert httpx.get(f"{fake.url}/v1/nothing").status_code == 404
    assert {m["id"] for m in httpx.get(f"{fake.url}/v1/models").json()["data"]} >= {"gpt-5"}


def test_openai_responses_chat_and_gemini(fake: FakeLLM) -> None:
    call = (ToolCall("exec_command", {"cmd": "ls"}),)
    fake.script([Reply(tool_calls=call), Reply(text="chat", tool_calls=call), Reply(text="gem")])
    responses = httpx.post(
        f"{fake.url}/v1/responses", json={"model": "gpt-5", "stream": True, "input": []}
    )
    events = sse_data(responses.text)
    assert events[0]["type"] == "response.created" and events[-1]["type"] == "response.completed"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    item = events[-1]["response"]["output"][0]
    assert item["type"] == "function_call" and json.loads(item["arguments"]) == {"cmd": "ls"}
    chat = httpx.post(
        f"{fake.url}/v1/chat/completions",
        json={"model": "gpt-4.1", "stream": True, "messages": []},
    )
    assert chat.text.rstrip().endswith("data: [DONE]")
    chunks = sse_data(chat.text)
    assert chunks[-1]["usage"]["prompt_tokens"] == 100
    assert any("tool_calls" in c["choices"][0]["delta"] for c in chunks if c["choices"])
    gemini = httpx.post(
        f"{fake.url}/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse",
        json={"contents": []},
    )
    parts = sse_data(gemini.text)[0]["candidates"][0]["content"]["parts"]
    assert parts == [{"text": "gem"}]
    router = httpx.post(
        f"{fake.url}/v1beta/models/flash:generateContent",
        json={"generationConfig": {"responseMimeType": "application/json"}},
    )
    assert router.status_code == 200 and fake.state.pending == 0
    assert [r.api for r in fake.model_calls()] == ["openai-responses", "openai-chat", "gemini"]


def test_delay_holds_the_answer(fake: FakeLLM) -> None:
    fake.script([Reply(text="late", delay=0.3)])
    started = time.monotonic()
    assert anthropic(fake, True, tools=TOOLS).status_code == 200
    assert time.monotonic() - started >= 0.3


def test_script_format_is_validated(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(
        json.dumps({"replies": ["hi", {"tool_call": {"name": "Bash"}}], "default": "x"})
    )
    replies, default = load_script(path)
    assert replies[0].text == "hi" and replies[1].tool_calls[0].name == "Bash"
    assert default is not None and default.text == "x"
    for bad, msg in [
        ([{"txt": "typo"}], "unknown fields"),
        ([{"delay": -1}], "delay"),
        ([{"http_error": 200}], "between 400 and 599"),
        ([{"http_error": 500, "text": "x"}], "cannot also have"),
        ([{"usage": {"input": 1}}], "unknown usage fields"),
        ({"replies": [], "extra": 1}, "unknown script fields"),
    ]:
        with pytest.raises(ScriptError, match=msg):
            parse_replies(bad)
    path.write_text("{")
    with pytest.raises(ScriptError, match="not valid JSON"):
        load_script(path)


def test_fake_llm_command_serves_a_script(tmp_path: Path) -> None:
    script = tmp_path / "replies.json"
    script.write_text(json.dumps([{"text": "from the command"}]))
    port = free_port()
    main = "from codeyard.cli import main; main()"
    cmd = [sys.executable, "-c", main, "fake-llm", "--script", str(script)]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}" in banner and "1 scripted replies" in banner
        url = f"http://127.0.0.1:{port}/v1/messages"
        body = {"model": "m", "messages": [], "tools": TOOLS}
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx.post(url, json=body, timeout=30).json()
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline, "the command never started listening"
                time.sleep(0.1)
        assert answer["content"][0]["text"] == "from the command"
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
