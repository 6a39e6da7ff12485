"""schemathesis over the whole OpenAPI schema, against a real server, as the admin and as a
member signed in with a browser session (cookie + CSRF header).

Every operation gets generated requests (coverage and fuzzing phases, a few examples each),
then the stateful phase follows the links schemathesis infers between operations (an id a
POST returns feeds the GET/PUT/DELETE that take it). Checks: no 5xx, and every documented
response body matches its schema. Bounded by ``--max-time`` so it stays under two minutes.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import TOKEN, ServerProcess

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
MAX_EXAMPLES = 3
MAX_SECONDS = 40


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    # Fuzzed run creation must reach the handlers, not the per-minute limit.
    srv = ServerProcess(tmp_path / "data", env={"CODEYARD_RUN_CREATE_PER_MINUTE": "100000"})
    srv.start()
    yield srv
    srv.stop()


def test_the_api_survives_schemathesis(server: ServerProcess, tmp_path: Path) -> None:
    _schemathesis(server, tmp_path, ["--header", f"Authorization: Bearer {TOKEN}"])


def test_the_api_survives_schemathesis_as_a_member_session(
    server: ServerProcess, tmp_path: Path
) -> None:
    """A member's own session: ownership checks (403s), CSRF and scopes on every operation.
    Routes that would end the session or change its password are left out."""
    admin = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=server.url, timeout=10) as client:
        user = {"username": "mia", "password": "correct horse battery", "role": "member"}
        assert client.post("/api/users", json=user, headers=admin).status_code == 201
        resp = client.post("/api/auth/login", json={k: user[k] for k in ("username", "password")})
        assert resp.status_code == 200, resp.text
        cookies = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
        csrf = resp.json()["csrf_token"]
    _schemathesis(
        server,
        tmp_path,
        [
            "--header",
            f"Cookie: {cookies}",
            "--header",
            f"X-CSRF-Token: {csrf}",
            "--exclude-path-regex",
            "^/api/auth/(logout|sessions|password|mfa/.*)$",
        ],
    )
    with httpx.Client(base_url=server.url, timeout=10) as client:  # it fuzzed signed in
        me = client.get("/api/auth/me", headers={"Cookie": cookies})
        assert me.status_code == 200 and me.json()["name"] == "mia"


def _schemathesis(server: ServerProcess, tmp_path: Path, auth: list[str]) -> None:
    done = subprocess.run(
        [
            str(SCHEMATHESIS),
            "run",
            f"{server.url}/api/openapi.json",
            *auth,
            "--checks",
            "not_a_server_error,response_schema_conformance",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--max-time",
            str(MAX_SECONDS),
            "--workers",
            "1",
            "--seed",
            "1",
            "--request-timeout",
            "20",
            "--generation-database",
            "none",
            "--no-color",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=MAX_SECONDS + 60,
    )
    out = done.stdout + done.stderr
    generated = re.search(r"(\d+) generated", out)
    print(f"schemathesis generated {generated.group(1) if generated else '?'} cases")
    assert done.returncode == 0, out[-6000:] + "\n--- server log ---\n" + server.log_tail(80)
    assert generated is not None and int(generated.group(1)) > 200, out[-3000:]
