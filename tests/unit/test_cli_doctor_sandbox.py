"""``codeyard doctor`` on the sandbox: whether bubblewrap works here (a real probe of the real
binary, or of a configured path that does not exist) and the server's setting, said loudly
when it is off. The server is httpx's MockTransport, as in test_cli_doctor.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from codeyard.cli.testing import invoke
from codeyard.sandbox import probe
from tests.unit.test_cli_doctor import base_routes


def doctor(tmp_path: Path, status: dict[str, Any], bwrap: str | None = None) -> Any:
    routes = base_routes(None)
    routes[("GET", "/api/settings")] = {"default_agent_id": None, "sandbox_status": status}

    def handler(request: httpx.Request) -> httpx.Response:
        answer = routes.get((request.method, request.url.path))
        if answer is None:
            return httpx.Response(404, json={"title": "Not Found", "status": 404})
        return httpx.Response(200, json=answer)

    return invoke(
        ["doctor"],
        server="http://cy.test",
        token="tok",
        transport=httpx.MockTransport(handler),
        env={
            "CODEYARD_HOME": str(tmp_path),
            "CODEYARD_DATA_DIR": None,
            "CODEYARD_BWRAP_PATH": bwrap,
        },
    )


ON = {"mode": "on", "available": True, "bwrap": "/usr/bin/bwrap", "problem": None, "warning": None}


@pytest.mark.skipif(not probe(None).ok, reason="bubblewrap cannot run here")
def test_a_working_sandbox_passes(tmp_path: Path) -> None:
    result = doctor(tmp_path, ON)
    assert result.exit_code == 0, result.output
    assert "bubblewrap" in result.output and "works" in result.output


def test_a_missing_bwrap_fails_with_the_fix(tmp_path: Path) -> None:
    result = doctor(tmp_path, ON, bwrap=str(tmp_path / "nope" / "bwrap"))
    assert result.exit_code == 1, result.output
    assert "cannot be sandboxed" in result.output
    assert "apt-get install bubblewrap" in result.output


def test_the_sandbox_off_is_said_loudly(tmp_path: Path) -> None:
    off = {**ON, "mode": "off", "warning": "SANDBOX OFF: agents read everything"}
    result = doctor(tmp_path, off)
    assert "SANDBOX OFF" in result.output and '{"sandbox": "on"}' in result.output


def test_on_but_broken_on_the_server_fails(tmp_path: Path) -> None:
    broken = {**ON, "available": False, "problem": "bubblewrap was not found at /x."}
    result = doctor(tmp_path, broken)
    assert result.exit_code == 1 and "every run fails" in result.output


def test_the_run_processes_priority_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CODEYARD_AGENT_NICENESS", raising=False)  # the default (tests set 0)
    result = doctor(tmp_path, ON)
    assert "run processes niced by 10" in result.output, result.output
