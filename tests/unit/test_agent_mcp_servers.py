"""MCP servers in the shape each CLI takes (``agents.mcp_servers``) and Codex's MCP tool
approval (an elicitation) parsed and matched to the call it asks about."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from codeyard.agents.codex.normalize import NormalizeState, mcp_tool_request, normalize
from codeyard.agents.codex.protocol import McpApproval, ServerRequest, parse
from codeyard.agents.codex.provider import settings_for
from codeyard.agents.mcp_servers import (
    STDIO_KEY,
    acp_servers,
    codex_config,
    errors,
    http_servers,
    stdio_servers,
)
from codeyard.config import Settings
from codeyard.mcp_server import offer

OFFER = {
    "codeyard": {
        "type": "http",
        "url": "http://127.0.0.1:8787/mcp",
        "headers": {"Authorization": "Bearer cy_run_secret", "X-Trace": "1"},
    }
}


def test_codex_gets_the_token_through_the_environment_never_on_its_command_line() -> None:
    config, env = codex_config({"mcp_servers": OFFER})
    assert config == {
        "mcp_servers.codeyard.url": "http://127.0.0.1:8787/mcp",
        "mcp_servers.codeyard.required": True,
        "mcp_servers.codeyard.bearer_token_env_var": "MCP_BEARER_TOKEN_CODEYARD",
        "mcp_servers.codeyard.http_headers": {"X-Trace": "1"},
    }
    assert env == {"MCP_BEARER_TOKEN_CODEYARD": "cy_run_secret"}
    assert "cy_run_secret" not in repr(config)


def test_codex_settings_merge_the_servers_under_the_profiles_own_config(tmp_path: Any) -> None:
    options = {
        "mcp_servers": OFFER,
        "env": {"HOME": "/h"},
        "config": {"mcp_servers.codeyard.required": False},
    }
    settings = settings_for(options, tmp_path / "codex")
    assert settings.env == {"HOME": "/h", "MCP_BEARER_TOKEN_CODEYARD": "cy_run_secret"}
    assert settings.config["mcp_servers.codeyard.required"] is False  # the profile wins
    assert settings.config["mcp_servers.codeyard.url"].endswith("/mcp")


def test_acp_agents_get_http_servers_only_when_they_say_they_speak_http() -> None:
    servers = http_servers({"mcp_servers": OFFER})
    listed = acp_servers(servers, {"mcpCapabilities": {"http": True, "sse": True}})
    assert listed == [
        {
            "type": "http",
            "name": "codeyard",
            "url": "http://127.0.0.1:8787/mcp",
            "headers": [
                {"name": "Authorization", "value": "Bearer cy_run_secret"},
                {"name": "X-Trace", "value": "1"},
            ],
        }
    ]
    assert acp_servers(servers, {"mcpCapabilities": {"http": False}}) == []
    assert acp_servers(servers, None) == []


def test_bad_server_options_name_the_fix() -> None:
    assert errors({"mcp_servers": OFFER, "codeyard_mcp": True}) == []
    cases: list[tuple[Any, str]] = [
        ([], "must be an object"),
        ({"bad name": {"url": "http://x"}}, "is not a server name"),
        ({"s": {"type": "stdio", "command": "x"}}, "must be an HTTP server"),
        ({"s": {"type": "http", "url": "file:///etc"}}, "needs a url"),
        ({"s": {"url": "http://x", "headers": {"a": 1}}}, "headers must be an object"),
    ]
    for servers, fix in cases:
        found = errors({"mcp_servers": servers})
        assert len(found) == 1 and fix in found[0]["msg"], (servers, found)
    assert errors({"codeyard_mcp": "yes"})[0]["loc"] == ["agent_options", "codeyard_mcp"]


COMMAND = {
    "codeyard": {
        "command": "/venv/bin/codeyard",
        "args": ["--server", "http://127.0.0.1:8787", "mcp"],
        "env": {"CODEYARD_TOKEN": "cy_run_secret"},
    }
}
STDIO_ENTRY = {
    "name": "codeyard",
    "command": "/venv/bin/codeyard",
    "args": ["--server", "http://127.0.0.1:8787", "mcp"],
    "env": [{"name": "CODEYARD_TOKEN", "value": "cy_run_secret"}],
}


def test_an_acp_agent_without_mcp_over_http_gets_codeyards_server_as_a_command() -> None:
    servers = http_servers({"mcp_servers": OFFER})
    commands = stdio_servers({STDIO_KEY: COMMAND})
    assert commands == COMMAND
    # Speaks HTTP: the server over HTTP, not twice.
    listed = acp_servers(servers, {"mcpCapabilities": {"http": True}}, commands)
    assert [s.get("type") for s in listed] == ["http"]
    # Does not (or says nothing): the command, with the token in its environment only.
    for caps in ({"mcpCapabilities": {"http": False}}, None):
        assert acp_servers(servers, caps, commands) == [STDIO_ENTRY]
    # ``codeyard_mcp: "stdio"`` offers no HTTP entry: the command whatever the agent says.
    assert acp_servers({}, {"mcpCapabilities": {"http": True}}, commands) == [STDIO_ENTRY]
    assert "cy_run_secret" not in repr(STDIO_ENTRY["args"])
    # Malformed entries are skipped rather than sent.
    assert (
        stdio_servers({STDIO_KEY: {"x": {"command": 1}, "y": {"command": "c", "args": [2]}}}) == {}
    )


def test_stdio_is_an_acp_choice_and_the_command_is_codeyards_to_set() -> None:
    assert errors({"codeyard_mcp": "stdio"}, stdio=True) == []
    assert "for ACP agents" in errors({"codeyard_mcp": "stdio"})[0]["msg"]  # Codex
    assert 'must be true, false or "stdio"' in errors({"codeyard_mcp": "yes"}, stdio=True)[0]["msg"]
    own = errors({STDIO_KEY: COMMAND}, stdio=True)
    assert own[0]["loc"] == ["agent_options", STDIO_KEY] and "set by Codeyard" in own[0]["msg"]


def test_the_offer_gives_http_and_a_command_or_only_the_command(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "data").mkdir()
    settings = Settings(data_dir=tmp_path / "data", host="127.0.0.1", port=8787)
    give = offer.hook(settings)
    run = {"id": "run_1"}
    assert give(run, {"scenario": 1}) == {"scenario": 1}  # not opted in: untouched
    assert give(run, {"codeyard_mcp": False}) == {"codeyard_mcp": False}

    both = give(run, {"codeyard_mcp": True, "mcp_servers": {"x": {"url": "http://x"}}})
    http = both["mcp_servers"]["codeyard"]
    token = http["headers"]["Authorization"].removeprefix("Bearer ")
    assert token.startswith("cy_run_") and set(both["mcp_servers"]) == {"x", "codeyard"}
    assert http["url"] == "http://127.0.0.1:8787/mcp"
    command = both[STDIO_KEY]["codeyard"]
    assert command["args"] == ["--server", "http://127.0.0.1:8787", "mcp"]
    assert command["env"] == {"CODEYARD_TOKEN": token}  # never on the command line
    assert Path(command["command"]).name == "codeyard" and Path(command["command"]).is_file()

    only = give(run, {"codeyard_mcp": "stdio"})
    assert "mcp_servers" not in only and set(only[STDIO_KEY]) == {"codeyard"}

    # Without a network the agent has its own loopback: offered, but said in the log.
    with caplog.at_level(logging.WARNING, logger="codeyard.mcp_server.offer"):
        give(run, {"codeyard_mcp": True, "network": "none"})
    assert "network 'none'" in caplog.text and "cy_run_" not in caplog.text


def _elicitation(message: str) -> dict[str, Any]:
    return {
        "method": "mcpServer/elicitation/request",
        "id": 7,
        "params": {
            "serverName": "codeyard",
            "mode": "form",
            "message": message,
            "_meta": {"codex_approval_kind": "mcp_tool_call", "tool_params": {"prompt": "p"}},
            "requestedSchema": {"type": "object", "properties": {}},
        },
    }


def test_codex_mcp_approval_is_matched_to_the_call_it_announced() -> None:
    state = NormalizeState()
    started = {
        "method": "item/started",
        "params": {
            "turnId": "t",
            "item": {
                "type": "mcpToolCall",
                "id": "call_1",
                "server": "codeyard",
                "tool": "start_run",
                "arguments": {"prompt": "p"},
                "status": "inProgress",
            },
        },
    }
    normalize(parse(started), state)
    approval = parse(_elicitation('Allow the codeyard MCP server to run tool "start_run"?'))
    assert approval == McpApproval(7, "codeyard", "start_run", {"prompt": "p"})
    assert isinstance(approval, McpApproval)
    request = mcp_tool_request(approval, state)
    assert (request.call_id, request.tool, request.kind) == (
        "call_1",
        "mcp__codeyard__start_run",
        "mcp",
    )
    assert request.input == {"prompt": "p"}


def test_an_unannounced_mcp_approval_names_its_tool_and_other_elicitations_stay_requests() -> None:
    approval = parse(_elicitation('Allow the codeyard MCP server to run tool "get_run"?'))
    assert isinstance(approval, McpApproval)
    request = mcp_tool_request(approval, NormalizeState())
    assert request.tool == "mcp__codeyard__get_run" and request.input == {"prompt": "p"}
    plain = _elicitation("Pick a colour")
    plain["params"]["_meta"] = {}
    assert isinstance(parse(plain), ServerRequest)
