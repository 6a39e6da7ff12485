"""docs/api.md documents everything a client can reach (Datasette's documentation tests).

Each route of the OpenAPI schema (and each WebSocket route), each setting (``CODEYARD_*`` in
codeyard/config.py and each stored setting of ``/api/settings``), each event type with each of its
fields, each ``codeyard`` CLI command and each problem title must appear in docs/api.md. The
failure lists exactly what is missing, so whoever adds a route sees what to write.

How the page is read: a route is a table row ``| GET/POST | `/api/x/{id}` … |`` (several
backticked paths may share a row; ``{…}`` matches any parameter name; ``ANY`` stands for every
method); an event type is a row ``| `type` | … |`` naming each field; settings, commands and
titles are backticked anywhere.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
import typer
from fastapi.routing import APIRoute, APIWebSocketRoute

from codeyard.api import problems
from codeyard.app import create_app
from codeyard.cli.app import app as cli_app
from codeyard.config import Settings
from codeyard.domain import errors
from codeyard.domain.events import EVENT_MODELS
from codeyard.services import settings as settings_service

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "api.md"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
_PARAM = re.compile(r"\{[^}]*\}")
_ROW = re.compile(r"^\|\s*([A-Z/ ]+?)\s*\|(.*)$")


def _norm(path: str) -> str:
    return _PARAM.sub("{}", path.split("?", 1)[0])


def _walk(routes: list[object], prefix: str = "") -> list[tuple[str, object]]:
    """Every route with its full path, through routers FastAPI includes lazily."""
    out: list[tuple[str, object]] = []
    for route in routes:
        if isinstance(route, APIRoute | APIWebSocketRoute):
            out.append((prefix + route.path, route))
        elif (included := getattr(route, "original_router", None)) is not None:
            out.extend(_walk(included.routes, prefix + route.include_context.prefix))
    return out


def served_routes() -> dict[str, str]:
    """``"METHOD /path"`` of every route of the OpenAPI schema, and ``"WS /path"``, with
    parameters as ``{}`` → the same with the server's parameter names (for messages)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a duplicate operation id is not this test's concern
        app = create_app(Settings())
        schema = app.openapi()
    found = {
        f"{method.upper()} {_norm(path)}": f"{method.upper()} {path}"
        for path, ops in schema["paths"].items()
        for method in ops
        if method.upper() in METHODS
    }
    for path, route in _walk(app.routes):
        if isinstance(route, APIWebSocketRoute):
            found[f"WS {_norm(path)}"] = f"WS {path}"
    return found


def documented_routes(text: str) -> set[str]:
    found = set()
    for line in text.splitlines():
        match = _ROW.match(line)
        if match is None:
            continue
        methods = [m.strip() for m in match[1].split("/") if m.strip()]
        methods = [m for ms in methods for m in (METHODS if ms == "ANY" else (ms,))]
        paths = re.findall(r"`(/api/[^`\s]*)`", match[2].split("|", 1)[0])
        found |= {f"{m} {_norm(p)}" for m in methods for p in paths}
    return found


def settings_names() -> list[str]:
    return [f"CODEYARD_{name.upper()}" for name in Settings.model_fields]


def stored_settings() -> list[str]:
    return [*settings_service.defaults(Settings()), "worktree_root"]


def cli_commands() -> list[str]:
    def walk(command: object, parts: list[str]) -> list[str]:
        subs = getattr(command, "commands", None)
        if subs is None:
            return [" ".join(parts)]
        return [name for key in sorted(subs) for name in walk(subs[key], [*parts, key])]

    return walk(typer.main.get_command(cli_app), ["codeyard"])


def _event_row(text: str, type_: str) -> str | None:
    match = re.search(rf"^\|\s*`{re.escape(type_)}`\s*\|(.*)$", text, re.M)
    return match[1] if match else None


def problem_titles() -> list[str]:
    titles = {
        cls.title
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.CodeyardError)
    }
    titles |= set(problems.TITLES.values())
    return sorted(titles - {"Error"})


def missing(text: str) -> dict[str, list[str]]:
    """What docs/api.md (given as ``text``) lacks, by kind; empty lists when complete."""
    ticked = set(re.findall(r"`([^`\n]+)`", text))
    documented = documented_routes(text)
    events = []
    for type_, model in EVENT_MODELS.items():
        row = _event_row(text, type_)
        if row is None:
            events.append(f"{type_} (no table row)")
            continue
        for name, field in model.model_fields.items():
            key = field.alias or name
            if name != "type" and not re.search(rf"\b{re.escape(key)}\b", row):
                events.append(f"{type_}.{key}")
    return {
        "routes": sorted(shown for key, shown in served_routes().items() if key not in documented),
        "settings (CODEYARD_*)": [s for s in settings_names() if s not in ticked],
        "stored settings (/api/settings)": [s for s in stored_settings() if s not in ticked],
        "event types and fields": events,
        "CLI commands": [c for c in cli_commands() if c not in ticked],
        "problem titles": [t for t in problem_titles() if t not in text],
    }


def _report(gaps: dict[str, list[str]]) -> str:
    lines = [f"docs/api.md is missing {sum(map(len, gaps.values()))} item(s):"]
    for kind, items in gaps.items():
        lines += [f"  {kind}:", *(f"    - {item}" for item in items)] if items else []
    return "\n".join(lines)


def test_api_docs_cover_every_route_setting_event_and_command() -> None:
    gaps = missing(DOC.read_text())
    assert not any(gaps.values()), _report(gaps)


def test_the_docs_have_no_routes_the_server_lacks() -> None:
    """A documented route that no longer exists misleads as much as a missing one."""
    stale = documented_routes(DOC.read_text()) - set(served_routes())
    assert not stale, f"docs/api.md documents routes the server does not have: {sorted(stale)}"


@pytest.mark.parametrize(
    ("needle", "kind", "expected"),
    [
        ("| POST | `/api/runs/{run_ref}/pause`", "routes", "POST /api/runs/{run_ref}/pause"),
        ("`CODEYARD_PORT`", "settings (CODEYARD_*)", "CODEYARD_PORT"),
        ("| `git.pushed` |", "event types and fields", "git.pushed (no table row)"),
        ("`codeyard token revoke`", "CLI commands", "codeyard token revoke"),
    ],
)
def test_the_check_fails_when_something_is_removed(needle: str, kind: str, expected: str) -> None:
    text = DOC.read_text()
    lines = [line for line in text.splitlines() if needle not in line]
    assert len(lines) < len(text.splitlines()), f"{needle!r} is not in docs/api.md"
    assert expected in missing("\n".join(lines))[kind]
