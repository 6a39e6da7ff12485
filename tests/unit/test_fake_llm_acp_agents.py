"""What the fake model server does for the ACP agents: OpenCode's title side call, error headers."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from codeyard.testing.fake_llm import FakeLLM, HttpError, Reply, ScriptError, parse_reply


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


def chat(fake: FakeLLM, system: str, tools: bool) -> httpx.Response:
    body = {
        "model": "fake/fake-model",
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": "Hi"}],
        "tools": [{"type": "function", "function": {"name": "bash"}}] if tools else [],
    }
    return httpx.post(f"{fake.url}/v1/chat/completions", json=body, timeout=10)


def test_opencode_title_call_does_not_consume_the_script(fake: FakeLLM) -> None:
    fake.script([Reply(text="The scripted answer.")])
    title = chat(fake, "You are a title generator. You output ONLY a thread title.", tools=False)
    assert title.json()["choices"][0]["message"]["content"] == "Fake title"
    answer = chat(fake, "You are opencode, an interactive CLI tool.", tools=True)
    assert answer.json()["choices"][0]["message"]["content"] == "The scripted answer."
    assert len(fake.model_calls()) == 1 and fake.requests[0].notes[0].startswith("title")
    # Any other call without tools is a model call like any other.
    chat(fake, "You are a helpful assistant.", tools=False)
    assert len(fake.model_calls()) == 2


def test_scripted_errors_carry_their_headers(fake: FakeLLM) -> None:
    body = {"error": {"message": "Backend exploded"}}
    fake.script([Reply(http_error=HttpError(500, body, {"retry-after-ms": "0"}))])
    resp = chat(fake, "x", tools=True)
    assert resp.status_code == 500 and resp.headers["retry-after-ms"] == "0"
    assert resp.json() == body
    reply = parse_reply({"http_error": {"status": 503, "headers": {"retry-after": "1"}}})
    assert reply.http_error == HttpError(503, None, {"retry-after": "1"})
    with pytest.raises(ScriptError, match="headers"):
        parse_reply({"http_error": {"status": 503, "headers": {"retry-after": 1}}})
