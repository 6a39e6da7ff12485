"""``codeyard doctor``: providers with path and fix, and the default agent's provider."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from codeyard.cli.testing import invoke

HEALTH = {"status": "ok", "version": "0.1.0", "database": "sqlite"}
PROVIDERS = [
    {"name": "script", "available": True, "version": "1", "path": None},
    {
        "name": "claude-code",
        "available": True,
        "version": "2.1.197",
        "path": "/opt/claude/bin/claude",
    },
    {
        "name": "codex",
        "available": False,
        "version": None,
        "path": None,
        "problem": "Codex was not found: pip install openai-codex",
    },
]


def doctor(tmp_path: Path, routes: dict[tuple[str, str], Any]) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        answer = routes.get((request.method, request.url.path))
        if answer is None:
            return httpx.Response(404, json={"title": "Not Found", "status": 404})
        return answer if isinstance(answer, httpx.Response) else httpx.Response(200, json=answer)

    return invoke(
        ["doctor"],
        server="http://cy.test",
        token="tok",
        transport=httpx.MockTransport(handler),
        env={"CODEYARD_HOME": str(tmp_path), "CODEYARD_DATA_DIR": None},
    )


def base_routes(default_agent: dict[str, Any] | None) -> dict[tuple[str, str], Any]:
    routes: dict[tuple[str, str], Any] = {
        ("GET", "/api/health"): HEALTH,
        ("GET", "/api/providers"): {"data": PROVIDERS, "next_cursor": None},
        ("GET", "/api/settings"): {"default_agent_id": default_agent and default_agent["id"]},
    }
    if default_agent is not None:
        routes[("GET", f"/api/agents/{default_agent['id']}")] = default_agent
    return routes


def test_every_provider_is_listed_with_version_path_and_fix(tmp_path: Path) -> None:
    result = doctor(tmp_path, base_routes(None))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    header = next(line for line in lines if "available" in line and "path" in line)
    assert header.split() == ["name", "available", "version", "path", "problem", "/", "fix"]
    claude = next(line for line in lines if line.lstrip().startswith("claude-code"))
    assert claude.split() == ["claude-code", "yes", "2.1.197", "/opt/claude/bin/claude"]
    codex = next(line for line in lines if line.lstrip().startswith("codex"))
    assert "Codex was not found: pip install openai-codex" in codex
    assert "default provider" not in result.stdout  # no default agent configured


def test_an_unavailable_default_provider_fails(tmp_path: Path) -> None:
    agent = {"id": "agt_1", "name": "reviewer", "provider": "codex"}
    result = doctor(tmp_path, base_routes(agent))
    assert result.exit_code == 1, result.output
    assert "✗ default provider codex (default agent 'reviewer') is not available" in (result.stdout)
    assert "fix: Codex was not found: pip install openai-codex" in result.stdout


def test_an_available_default_provider_passes(tmp_path: Path) -> None:
    agent = {"id": "agt_2", "name": "main", "provider": "claude-code"}
    result = doctor(tmp_path, base_routes(agent))
    assert result.exit_code == 0, result.output
    assert "✓ default provider claude-code (default agent 'main')" in result.stdout


def test_a_default_provider_the_server_lacks_fails(tmp_path: Path) -> None:
    agent = {"id": "agt_3", "name": "old", "provider": "cursor"}
    result = doctor(tmp_path, base_routes(agent))
    assert result.exit_code == 1
    assert "cursor (default agent 'old') is not a provider of this server" in result.stdout


def test_settings_it_may_not_read_are_a_warning(tmp_path: Path) -> None:
    routes = base_routes(None)
    forbidden = {"title": "Forbidden", "status": 403, "detail": "needs settings:read"}
    routes[("GET", "/api/settings")] = httpx.Response(403, json=forbidden)
    result = doctor(tmp_path, routes)
    assert result.exit_code == 0, result.output
    assert "! default provider could not read the settings: needs settings:read" in (result.stdout)
