"""Every real agent CLI as the contract suite (``test_agent_contract.py``) drives it: one
:class:`AgentCase` per provider — its wire names, how it is pointed at the fake model server, how
it tells the model about a rejection, and its quirks. Adding a provider is adding a case.

Claude Code (stream-json) and Codex (app-server) have protocols of their own and their cases are
here; the agents speaking ACP have theirs in ``acp_cases.py``. The suite does not care: it drives
each through the Codeyard API and reads what the fake server was sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from claude_agent_sdk._cli_version import __cli_version__ as BUNDLED_CLAUDE_CODE

from codeyard.agents.base import Provider
from codeyard.agents.claude import ClaudeCodeProvider
from codeyard.agents.codex import CodexProvider
from codeyard.testing.fake_llm import FakeLLM, RecordedRequest, ToolCall


def codex_options(fake: FakeLLM, home: Path, **extra: Any) -> dict[str, Any]:
    """Codex (bare or under Zed's adapter) pointed at the fake server, its state in ``home``."""
    (home / ".codex").mkdir(parents=True, exist_ok=True)
    provider = {
        "name": "Fake",
        "base_url": f"{fake.url}/v1",
        "env_key": "FAKE_API_KEY",
        "wire_api": "responses",
        "request_max_retries": 0,
        "stream_max_retries": 0,
    }
    env = {"CODEX_HOME": str(home / ".codex"), "HOME": str(home), "FAKE_API_KEY": "test"}
    config = {"model_provider": "fake", "model_providers.fake": provider}
    return {"env": env, "config": config, **extra}


def claude_options(fake: FakeLLM, home: Path, **extra: Any) -> dict[str, Any]:
    """Claude Code (bare or under Zed's adapter) pointed at the fake server."""
    env = {
        "ANTHROPIC_BASE_URL": fake.url,
        "ANTHROPIC_API_KEY": "test",
        "HOME": str(home),  # sessions and settings stay in the test's directory
        "CLAUDE_CODE_MAX_RETRIES": "0",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    return {"env": env, **extra}


def anthropic_rejection(fake: FakeLLM, at: int) -> str:
    """The last ``tool_result`` Claude Code sent in model call ``at`` (Messages API)."""
    body = fake.model_calls("anthropic")[at].body
    blocks = [
        b
        for m in body["messages"]
        if isinstance(m.get("content"), list)
        for b in m["content"]
        if b.get("type") == "tool_result"
    ]
    content = blocks[-1]["content"]
    return content if isinstance(content, str) else json.dumps(content)


def gemini_rejection(fake: FakeLLM, at: int) -> str:
    """The error of the last ``functionResponse`` Gemini CLI sent in model call ``at``."""
    body = fake.model_calls("gemini")[at].body
    parts = [p for c in body["contents"] for p in c.get("parts", [])]
    told = [p["functionResponse"] for p in parts if "functionResponse" in p][-1]
    assert told["name"] == "run_shell_command"
    return str(told["response"]["error"])


def responses_rejection(fake: FakeLLM, at: int) -> str:
    """The output of the last ``function_call_output`` in model call ``at`` (Responses API)."""
    body = fake.model_calls("openai-responses")[at].body
    outputs = [i for i in body["input"] if i.get("type") == "function_call_output"]
    return str(outputs[-1]["output"])


def chat_rejection(fake: FakeLLM, at: int) -> str:
    """What the CLI told the model about the last tool result in model call ``at`` (chat API)."""
    body = fake.model_calls("openai-chat")[at].body
    return [str(m.get("content")) for m in body["messages"] if m.get("role") == "tool"][-1]


def codex_rejection(fake: FakeLLM, at: int) -> str:
    """What Codex told the model in call ``at``: the declined call's output and, in the same
    call (no extra model call was needed), Codeyard's reason as a user message after it."""
    calls = fake.model_calls("openai-responses")
    assert len(calls) == at + 1, "the reason rides along the declined call's output"
    output, told = calls[at].body["input"][-2:]
    assert output["type"] == "function_call_output" and "rejected" in output["output"]
    assert told["role"] == "user"
    return json.dumps(told)


def anthropic_side_calls(fake: FakeLLM) -> list[RecordedRequest]:
    """Claude Code's own small model calls (not the turn's): counted in its usage."""
    return [r for r in fake.requests if r.path == "/v1/messages" and not r.model_call]


def codex_steered(fake: FakeLLM, message: str) -> None:
    """Codex let the command finish, then sent its output and the message in the next call."""
    calls = fake.model_calls("openai-responses")
    assert message not in calls[0].text()
    output, sent = calls[1].body["input"][-2:]
    assert output["type"] == "function_call_output" and "slept" in output["output"]
    assert sent["role"] == "user" and calls[1].text().count(message) == 1
    assert json.dumps(sent).count(message) == 1


def codex_restarted_call(fake: FakeLLM, message: str) -> None:
    """Codex dropped the model call still waiting for output and asked again with the message."""
    calls = fake.model_calls("openai-responses")
    assert message not in calls[0].text() and calls[1].text().count(message) == 1
    assert calls[1].body["input"][-1]["role"] == "user"


@dataclass(frozen=True)
class AgentCase:
    """One provider as the contract suite drives it."""

    #: The wire name (``provider`` of a run, of ``agent.session``).
    name: str
    provider: Callable[[], Provider]
    cli_version: str
    model: str
    #: The CLI's shell tool, as the model calls it.
    shell: str
    #: The fake server's API the CLI speaks (``gemini``, ``openai-chat``).
    api: str
    options: Callable[..., dict[str, Any]]
    #: How the turn's failure is worded (``<label> failed the turn``).
    label: str
    #: What the model is told about a rejected call, and how to read it from the fake server.
    rejection_phrase: str
    #: What the CLI sent the model about the rejected call in model call ``at``.
    rejection_told: Callable[[FakeLLM, int], str]
    #: The CLI ends the turn at a rejection: the model learns of it with the next message.
    rejection_ends_turn: bool
    #: The failing model reply's body and headers (retries, if any, at once).
    error_body: dict[str, Any]
    error_headers: dict[str, str] | None
    #: How many failing replies to script (enough for the CLI's own retries).
    error_replies: int
    #: Reports the exit code and output of a shell call in its ``tool.result``.
    reports_exit_code: bool
    #: Its usage counts only the turn's last model call (OpenCode's ACP, research §7.3).
    usage_of_last_call_only: bool
    #: Streams thinking and text the fake server sends (checked event by event).
    streams_thinking: bool
    #: Drops an interrupted turn from its session (Gemini CLI): the resumed turn repeats it.
    drops_interrupted_turn: bool
    #: Writes its configuration for the turn (OpenCode's ``opencode.json``), never in the tree.
    turn_config_file: str | None = None
    #: A HOME kept for the module (OpenCode's first start in a fresh one is slow).
    shared_home: bool = False
    #: The failing reply's HTTP status: a client error where the CLI's own retries of server
    #: errors cannot be shortened (Qwen Code backs off seven times from 1.5 s).
    error_status: int = 500
    #: A loaded session always holds the agent's own earlier replies. Qwen Code 0.15.10 in ACP
    #: mode may not: its session file sometimes lacks a reply when the turn's process is
    #: stopped right after the answer (observed both ways), so only the prompts are certain.
    session_keeps_replies: bool = True
    #: Reports the tokens a turn spent (its capabilities say ``usage``).
    reports_usage: bool = True
    #: The shell tool's argument holding the command (Codex: ``cmd``).
    shell_arg: str = "command"
    #: The shell tool's name in Codeyard's ``tool.call`` events and policy rules (an ACP
    #: agent's shell is always ``execute``).
    tool: str = "execute"
    #: Extra arguments of a shell call that must block (Codex returns to the model after a
    #: default wait unless told to yield later).
    blocking_args: dict[str, Any] | None = None
    #: The model is told Codeyard's reason for a rejection, with words against retrying.
    told_reason: bool = False
    #: How the CLI's usage arrives: one ``usage`` event per ``turn``, one per ``model_call``
    #: (Codex), or ``streamed`` as increments while the turn runs, estimates first (Claude Code).
    usage_counted: str = "turn"
    #: The CLI's own side calls are counted in its usage (their requests, from the fake server).
    side_calls: Callable[[FakeLLM], list[RecordedRequest]] | None = None
    #: Who priced the usage: the CLI (``reported``) or Codeyard's price map.
    cost_source: str = "price_map"
    #: The agent's processes are gone when the run reads ``paused`` (not only once stopped).
    gone_when_paused: bool = False
    #: What the provider logs when the CLI ended an interrupted turn itself (the protocol's
    #: interrupt answered), as opposed to being stopped by a signal.
    interrupted_log: str | None = None
    #: Where under ``home`` the CLI keeps its sessions, and how Codeyard words starting a new
    #: one when they are lost (``None``: not part of the contract for this provider yet).
    session_files: str | None = None
    lost_session_word: str = "new session"
    #: A message while the model answers is answered in the same turn: the CLI drops the call
    #: still waiting (Codex) or answers after the reply (Claude Code: two ``usage`` events).
    late_message_drops_the_call: bool = False
    #: Checks of the wire for a message that reached a running turn (``steered``) and one sent
    #: during a model call (``late``), beyond what every provider shows.
    steered: Callable[[FakeLLM, str], None] | None = None
    late: Callable[[FakeLLM, str], None] | None = None
    #: A failed model call is reported from the protocol, none of the CLI's stderr chatter.
    error_without_stderr: bool = False
    #: What follows the API's message in the failure reason (Codex names the error's kind).
    error_detail: str = ""

    def call(self, command: str) -> ToolCall:
        if self.shell_arg != "command":
            return ToolCall(self.shell, {self.shell_arg: command})
        return ToolCall(self.shell, {"command": command, "description": "Run it"})

    def blocking_call(self, command: str) -> ToolCall:
        call = self.call(command)
        return ToolCall(call.name, {**call.input, **(self.blocking_args or {})})

    @property
    def mid_turn_input(self) -> bool:
        """Takes a message into the running turn (its capabilities say ``mid_turn_input``)."""
        return self.provider().capabilities.mid_turn_input


CLAUDE_CODE = AgentCase(
    name="claude-code",
    provider=ClaudeCodeProvider,
    # The version claude-agent-sdk says it bundles (its own constant, not what Codeyard read):
    # pyproject takes a range of SDK releases, and a new one bundles a newer Claude Code.
    cli_version=BUNDLED_CLAUDE_CODE,
    model="claude-sonnet-4-5",
    shell="Bash",
    tool="Bash",
    api="anthropic",
    options=claude_options,
    label="Claude Code",
    rejection_phrase="Codeyard policy denied this tool call",
    rejection_told=anthropic_rejection,
    rejection_ends_turn=False,
    error_body={"type": "error", "error": {"type": "api_error", "message": "Backend exploded XYZ"}},
    error_headers=None,
    error_replies=1,
    reports_exit_code=False,
    usage_of_last_call_only=False,
    streams_thinking=True,
    drops_interrupted_turn=False,
    told_reason=True,
    side_calls=anthropic_side_calls,
    cost_source="reported",  # Claude Code prices its own usage
    usage_counted="streamed",
    gone_when_paused=True,
    session_files=".claude/projects",
)

CODEX = AgentCase(
    name="codex",
    provider=CodexProvider,
    cli_version="0.163.0",  # pinned by the openai-codex SDK
    model="gpt-5-codex",
    shell="exec_command",
    tool="shell",
    shell_arg="cmd",
    blocking_args={"yield_time_ms": 60000},
    api="openai-responses",
    options=codex_options,
    label="Codex",
    rejection_phrase="Codeyard policy denied this tool call",
    rejection_told=codex_rejection,
    rejection_ends_turn=False,
    # A request error: Codex passes the API's message on (a server error it words itself, see
    # test_codex.py); with no retries configured it asks once.
    error_body={"error": {"message": "Backend exploded XYZ", "type": "invalid_request_error"}},
    error_headers=None,
    error_replies=1,
    error_status=400,
    error_without_stderr=True,
    error_detail=" (other)",
    reports_exit_code=True,
    usage_of_last_call_only=False,
    streams_thinking=False,
    drops_interrupted_turn=False,
    told_reason=True,
    usage_counted="model_call",
    interrupted_log="Codex ended the turn: interrupted",
    session_files=".codex/sessions",
    lost_session_word="new thread",
    late_message_drops_the_call=True,
    steered=codex_steered,
    late=codex_restarted_call,
)

#: The providers with a protocol of their own (the ACP ones are in ``acp_cases.py``).
NATIVE_CASES = [CLAUDE_CODE, CODEX]
