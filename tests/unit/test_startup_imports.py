"""The ``serve`` path stays light: heavy libraries load when first used, not at start-up.

Start-up is almost all imports (issue 15). Each module below cost tens to hundreds of
milliseconds and serves one feature that a server may never use during its life; an import
added at module level anywhere on the serve path brings it back, and this test names it.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

#: Loaded on first use: the MCP SDK (first /mcp request, or a warm-up thread after start-up),
#: the Claude Agent SDK (a turn, a utility-model call), web push (a push), the GitHub client
#: (a GitHub request), Temporal (the temporal executor), the terminal emulator (a terminal),
#: SQLAlchemy's PostgreSQL dialect (a PostgreSQL database: ~90 ms that a SQLite server never needs),
#: and the sign-in and secrets libraries (~10 ms together): cryptography (the first secret
#: encrypted or decrypted), argon2-cffi (the first password), pyotp (the first TOTP code).
LAZY = (
    "mcp",
    "claude_agent_sdk",
    "pywebpush",
    "aiohttp",
    "requests",
    "githubkit",
    "temporalio",
    "pyte",
    "sqlalchemy.dialects.postgresql",
    "cryptography",
    "argon2",
    "pyotp",
)

#: The API modules the app itself needs before any request: authentication, middleware, the
#: problem handlers, the lazy-router machinery, and the preview proxy (its middleware answers
#: preview origins). Every router module loads on the first request under its paths
#: (``codeyard/api/lazy.py``).
API_AT_START = {
    "codeyard.api",
    "codeyard.api.auth",
    "codeyard.api.deps",
    "codeyard.api.hosts",
    "codeyard.api.lazy",
    "codeyard.api.limits",
    "codeyard.api.middleware",
    "codeyard.api.preview_host",
    "codeyard.api.problems",
    "codeyard.api.route_index",
    "codeyard.api.webui",
}

#: Codeyard's own modules that load after start-up (issue 15): the agent providers' protocol
#: stacks (registered by name, ``codeyard.agents.builtin``, built on first use) and their
#: contract (``codeyard.agents.base``), the background features (``codeyard.background``,
#: started after the first answer), and the executor's turn code with the policy engine and
#: the approval gate (``LocalExecutor._turns``, built when the workers start taking runs).
DEFERRED = (
    "codeyard.agents.acp",
    "codeyard.agents.aider",
    "codeyard.agents.base",
    "codeyard.agents.claude",
    "codeyard.agents.codex",
    "codeyard.analytics",
    "codeyard.background.features",
    "codeyard.cli_socket",
    "codeyard.domain.policy",
    "codeyard.executor.approvals",
    "codeyard.executor.handle",
    "codeyard.executor.preparation",
    "codeyard.executor.sink",
    "codeyard.executor.turn_end",
    "codeyard.executor.turn_options",
    "codeyard.executor.turns",
    "codeyard.notifications",
    "codeyard.policy",
    "codeyard.services.checks",
    "codeyard.services.github",
    "codeyard.services.github_app",
    "codeyard.services.github_poll",
    "codeyard.services.managed_docs",
    "codeyard.services.pr_loop",
    "codeyard.services.pr_sync",
    "codeyard.services.retention",
    "codeyard.tickets",
    "codeyard.workflows",
)

PROBE = """
import json, sys
import codeyard.server
from codeyard.app import create_app
from pydantic import BaseModel
create_app()

def _models(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _models(sub)

print(json.dumps({{
    "lazy": sorted(m for m in {lazy!r} if m in sys.modules),
    "api": sorted(m for m in sys.modules if m == "codeyard.api" or m.startswith("codeyard.api.")),
    "deferred": sorted(
        m for m in sys.modules if any(m == d or m.startswith(d + ".") for d in {deferred!r})
    ),
    "built": sorted(
        f"{{k.__module__}}.{{k.__qualname__}}" for k in _models(BaseModel)
        if k.__module__.startswith("codeyard.") and k.__dict__.get("__pydantic_complete__")
    ),
}}))
"""


@pytest.fixture(scope="module")
def at_start() -> dict[str, list[str]]:
    """What a fresh interpreter holds once the serve path is imported and the app created."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(lazy=LAZY, deferred=DEFERRED)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    found: dict[str, list[str]] = json.loads(out.stdout.strip().splitlines()[-1])
    return found


def test_creating_the_app_imports_no_router_module(at_start: dict[str, list[str]]) -> None:
    extra = sorted(set(at_start["api"]) - API_AT_START)
    assert extra == [], (
        f"{extra} imported while the app is created: routers are registered by name in "
        "codeyard/app.py and load on their first request; import what the app needs at "
        "start-up from a module below codeyard.api, not from a router module"
    )


def test_creating_the_app_imports_no_lazy_library(at_start: dict[str, list[str]]) -> None:
    loaded = at_start["lazy"]
    assert loaded == [], (
        f"{loaded} imported while the app is created: import it inside the function that "
        "uses it (see codeyard/mcp_server/mount.py for a feature loaded after start-up)"
    )


def test_creating_the_app_imports_no_provider_or_background_feature(
    at_start: dict[str, list[str]],
) -> None:
    loaded = at_start["deferred"]
    assert loaded == [], (
        f"{loaded} imported while the app is created: providers register by name "
        "(codeyard/agents/builtin.py), background features start from "
        "codeyard/background/features.py after the first answer, and the executor's turn code "
        "loads in LocalExecutor._turns; import them from there (TYPE_CHECKING for annotations)"
    )


#: The pydantic models whose validators are built while the app is created: the settings it
#: reads. Every other model of Codeyard's is built on first use (``defer_build=True``): the
#: events, the executor's signals, the store's records (issue 15: ~0.2 ms each, ~60 of them).
BUILT_AT_START = ["codeyard.config.Settings"]


def test_creating_the_app_builds_no_model_but_the_settings(
    at_start: dict[str, list[str]],
) -> None:
    built = at_start["built"]
    assert built == BUILT_AT_START, (
        f"{sorted(set(built) - set(BUILT_AT_START))} built while the app is created: give the "
        "model (or its base) ConfigDict(defer_build=True) so it is built on first use"
    )


#: What ``codeyard serve`` must not import (issue 15): the client commands, their HTTP client
#: and Rich views; they are for every other command. Nor Typer: the serve command parses its
#: options with argparse (click is Uvicorn's, in the framework floor).
CLIENT_SIDE = ("codeyard.cli.app", "codeyard.cli.client", "codeyard.cli.state", "rich", "typer")

SERVE_PROBE = """
import json, sys
import codeyard.server

def record(settings):  # stands in for Uvicorn: what the console script imported by now
    loaded = [m for m in {names!r} if m in sys.modules]
    print(json.dumps({{"port": settings.port, "loaded": loaded}}))

codeyard.server.run_server = record
sys.argv = ["codeyard", "serve", "--port", "8999", "--data-dir", {data_dir!r}]
from codeyard.cli import main
main()
"""


def test_the_serve_command_imports_no_client_module(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", SERVE_PROBE.format(names=CLIENT_SIDE, data_dir=str(tmp_path))],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["port"] == 8999  # the options were parsed by the serve command itself
    assert found["loaded"] == [], f"{found['loaded']} imported by `codeyard serve`"


def test_the_serve_command_prints_bad_settings_as_an_error(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", "from codeyard.cli import main; main()", "serve"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CODEYARD_PORT": "not-a-port", "CODEYARD_DATA_DIR": str(tmp_path)},
    )
    assert out.returncode == 1
    assert "Error: Invalid Codeyard settings." in out.stderr
    assert "CODEYARD_PORT" in out.stderr
    assert "Traceback" not in out.stderr


def _serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from codeyard.cli import main; main()", "serve", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_serve_commands_help_and_option_errors() -> None:
    shown = _serve("--help")
    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())
    assert text.startswith("usage: codeyard serve")
    assert "Run the Codeyard server (API, web UI and agent executor) until Ctrl-C." in text
    for flag in ("--host", "--port", "--data-dir", "--tls-cert", "--tls-key"):
        assert flag in text
    assert "Where the database, worktrees and logs live. Default: ~/.codeyard" in text
    bad = _serve("--port", "70000")
    assert bad.returncode == 2
    assert "argument --port: 70000 is not in the range 1<=x<=65535." in bad.stderr
    unknown = _serve("--prot", "1")
    assert unknown.returncode == 2 and "unrecognized arguments: --prot 1" in unknown.stderr


def test_the_background_warm_up_lists_what_the_features_import() -> None:
    """``codeyard.background.MODULES`` loads the features' modules one per loop turn."""
    from codeyard import background

    source = Path(background.__file__).with_name("features.py").read_text()
    modules = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("codeyard."):
            for alias in node.names:  # `from package import module`, or a name of the module
                name, package = f"{node.module}.{alias.name}", importlib.import_module(node.module)
                is_module = hasattr(package, "__path__") and importlib.util.find_spec(name)
                modules.add(name if is_module else node.module)
    assert modules - {"codeyard.services.context"} == set(background.MODULES)


def test_describing_the_providers_imports_no_sdk_nor_mcp() -> None:
    """Providers are described in a worker thread while the loop thread may load the MCP
    endpoint: importing ``mcp`` in both at once met a partially initialized ``mcp.server``
    (seen in the suite). Finding Claude Code's bundled binary must not import its SDK."""
    code = (
        "import sys; from codeyard.agents import builtin, registry; builtin.register_all(); "
        "registry.describe_all(); "
        "print(sorted(m for m in ('mcp', 'claude_agent_sdk') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
