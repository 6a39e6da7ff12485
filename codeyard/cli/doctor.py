"""``codeyard doctor``: check this machine and the server, and say how to fix each problem."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import typer
from rich.console import Group
from rich.table import Table
from rich.text import Text

from codeyard.cli.client import (
    ApiClient,
    ApiError,
    CliError,
    Target,
    Unreachable,
    read_server_file,
)
from codeyard.cli.format import as_dict
from codeyard.cli.state import CliState, get_state
from codeyard.config import Settings
from codeyard.locator import pid_alive
from codeyard.sandbox import priority, probe

Level = Literal["ok", "warn", "fail"]
MARKS: dict[Level, tuple[str, str]] = {
    "ok": ("✓", "green"),
    "warn": ("!", "yellow"),
    "fail": ("✗", "bold red"),
}
#: ``git merge-tree --write-tree`` (conflict checks before merging) needs this version.
GIT_MIN = (2, 38)


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    level: Level
    detail: str
    fix: str | None = None


def doctor(ctx: typer.Context) -> None:
    """Check git, the data directory, the database, the server and the agent providers.

    Prints every provider (available, version, path, and the fix when it cannot run) and a fix
    for each problem; the exit code is 1 when any check fails, including when the default agent
    profile's provider is unavailable.
    """
    state = get_state(ctx)
    checks = [check_git()]
    try:
        settings = state.settings
    except CliError as exc:
        checks.append(
            Check(
                "settings",
                "fail",
                exc.message + " " + " ".join(exc.notes),
                "Fix or unset the CODEYARD_* environment variables named above.",
            )
        )
        _print(state, checks, None)
        raise typer.Exit(1) from None
    found = state.target.data_dir
    if found is not None and found != settings.data_dir:  # a server started with --data-dir
        settings = settings.model_copy(update={"data_dir": found})
    checks += [
        check_data_dir(settings.data_dir),
        check_database(settings),
        check_sandbox(settings),
        check_priority(settings),
    ]
    server_checks, providers = check_server(state, settings)
    checks += server_checks
    _print(state, checks, providers)
    if any(c.level == "fail" for c in checks):
        raise typer.Exit(1)


def check_git() -> Check:
    git = shutil.which("git")
    install = "Install git, e.g. `apt-get install git` (Debian/Ubuntu) or `brew install git`."
    if git is None:
        return Check("git", "fail", "git not found on PATH", install)
    try:
        done = subprocess.run(
            [git, "--version"], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return Check("git", "fail", f"{git} --version failed: {exc}", install)
    text = done.stdout.strip()
    match = re.search(r"(\d+)\.(\d+)", text)
    version = (int(match[1]), int(match[2])) if match else None
    if version is not None and version < GIT_MIN:
        return Check(
            "git",
            "warn",
            f"{text} ({git})",
            f"git {GIT_MIN[0]}.{GIT_MIN[1]}+ is needed to check merge conflicts "
            "before merging; upgrade git.",
        )
    return Check("git", "ok", f"{text} ({git})")


def check_data_dir(path: Path) -> Check:
    fix_writable = f"Make it writable (`chown -R $USER {path}`) or set CODEYARD_HOME elsewhere."
    if path.exists():
        if not path.is_dir():
            return Check(
                "data dir",
                "fail",
                f"{path} is not a directory",
                "Remove it or set CODEYARD_HOME to a directory.",
            )
        if not os.access(path, os.W_OK | os.X_OK):
            return Check("data dir", "fail", f"{path} is not writable", fix_writable)
        token = path / "admin.token"
        if token.exists() and token.stat().st_mode & 0o077:
            return Check(
                "data dir",
                "warn",
                f"{path}; admin.token is readable by others",
                f"chmod 600 {token}",
            )
        return Check("data dir", "ok", str(path))
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is None or not os.access(parent, os.W_OK | os.X_OK):
        return Check(
            "data dir",
            "fail",
            f"{path} does not exist and cannot be created",
            f"Create it (`mkdir -p {path}`) or set CODEYARD_HOME elsewhere.",
        )
    return Check(
        "data dir",
        "warn",
        f"{path} does not exist yet",
        "`codeyard serve` creates it at first start.",
    )


def check_priority(settings: Settings) -> Check:
    """Do the run's processes run below the server's CPU priority (``agent_niceness``)?"""
    state = priority.state(settings.agent_niceness)
    fix = "Set CODEYARD_AGENT_NICENESS (1-19; default 10) so agents yield the CPU to the server."
    if not state["applied"]:
        why = "agent_niceness is 0" if settings.agent_niceness <= 0 else "`nice` is not on PATH"
        return Check("priority", "warn", f"run processes run at the server's priority ({why})", fix)
    groups = ", and their session's autogroup" if state["autogroups"] else ""
    if state["autogroups"] and not state["privileged"]:
        groups += " (without CAP_SYS_ADMIN: at most ten groups a second host-wide)"
    return Check(
        "priority",
        "ok",
        f"run processes niced by {settings.agent_niceness}{groups}; this process at "
        f"niceness {state['server_niceness']}",
    )


def check_sandbox(settings: Settings) -> Check:
    """Can bubblewrap contain agents on this machine (with this ``bwrap_path``)?"""
    found = probe(settings.bwrap_path)
    if found.ok:
        return Check("sandbox", "ok", f"bubblewrap {found.version or '?'} ({found.path}) works")
    return Check(
        "sandbox",
        "fail",
        "agents cannot be sandboxed here: runs will fail while the sandbox setting is on",
        found.problem,
    )


def check_server_sandbox(api: ApiClient) -> Check:
    """The server's ``sandbox`` setting: off is said loudly, on-but-broken fails."""
    try:
        status = as_dict(as_dict(api.get("/api/settings")).get("sandbox_status"))
    except CliError as exc:
        return Check("sandbox setting", "warn", f"could not read the settings: {exc.message}")
    if not status:
        return Check("sandbox setting", "warn", "this server does not report its sandbox")
    if status.get("mode") == "off":
        return Check(
            "sandbox setting",
            "warn",
            str(status.get("warning") or "SANDBOX OFF"),
            'An admin can turn it on: PUT /api/settings {"sandbox": "on"}.',
        )
    if not status.get("available"):
        return Check(
            "sandbox setting",
            "fail",
            "on, but the server cannot run bubblewrap: every run fails",
            str(status.get("problem") or ""),
        )
    return Check("sandbox setting", "ok", f"on ({status.get('bwrap')})")


def check_database(settings: Settings) -> Check:
    url = settings.database_url
    if url:
        shown = re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)
        scheme = url.split(":", 1)[0].split("+", 1)[0]
        if scheme not in ("sqlite", "postgresql", "postgres"):
            return Check(
                "database",
                "fail",
                f"{shown} (CODEYARD_DATABASE_URL)",
                "Use a sqlite:/// or postgresql:// URL.",
            )
        return Check("database", "ok", f"{shown} (CODEYARD_DATABASE_URL)")
    db = settings.data_dir / "codeyard.db"
    if db.exists():
        return Check("database", "ok", f"SQLite {db} ({db.stat().st_size / 1e6:.1f} MB)")
    return Check("database", "ok", f"SQLite {db} (created at first start)")


def check_server(
    state: CliState, settings: Settings
) -> tuple[list[Check], list[dict[str, Any]] | None]:
    """Health (public), then the providers (which also proves the token works)."""
    target = state.target
    where = f"{target.url} (from {target.source})"
    with ApiClient(target, transport=state.transport) as api:
        try:
            health = as_dict(api.get("/api/health"))
        except CliError as exc:
            return [_server_down(where, settings, exc)], None
        detail = f"{where}, version {health.get('version', '?')}, {health.get('database', '?')}"
        checks = [Check("server", "ok", detail)]
        if health.get("setup_required"):
            checks.append(
                Check(
                    "accounts",
                    "warn",
                    "no user account yet",
                    "Open the login URL `codeyard serve` printed to set one up.",
                )
            )
        try:
            body = api.get("/api/providers")
        except ApiError as exc:
            checks.append(_auth_problem(target, exc))
            return checks, None
        except CliError as exc:
            checks.append(Check("providers", "fail", exc.message))
            return checks, None
        providers = body.get("data", []) if isinstance(body, dict) else body or []
        default = check_default_provider(api, providers)
        checks.append(check_server_sandbox(api))
    available = [p for p in providers if as_dict(p).get("available")]
    if not available:
        checks.append(
            Check(
                "providers",
                "fail",
                "no agent provider is available",
                "Install an agent CLI (see the providers table for each problem).",
            )
        )
    else:
        names = ", ".join(str(p.get("name")) for p in available)
        checks.append(Check("providers", "ok", f"{len(available)} available: {names}"))
    if default is not None:
        checks.append(default)
    return checks, providers


def check_default_provider(api: ApiClient, providers: list[dict[str, Any]]) -> Check | None:
    """The provider of the default agent profile (settings) must be able to run here."""
    try:
        agent_id = as_dict(api.get("/api/settings")).get("default_agent_id")
        if not agent_id:
            return None
        agent = as_dict(api.get(f"/api/agents/{agent_id}"))
    except ApiError as exc:
        if exc.status == 404:  # a server without settings, or the profile just went away
            return None
        return Check("default provider", "warn", f"could not read the settings: {exc.message}")
    except CliError as exc:
        return Check("default provider", "warn", f"could not read the settings: {exc.message}")
    name = str(agent.get("provider") or "?")
    label = f"{name} (default agent '{agent.get('name') or agent_id}')"
    found = next((as_dict(p) for p in providers if as_dict(p).get("name") == name), None)
    if found is None:
        return Check(
            "default provider",
            "fail",
            f"{label} is not a provider of this server",
            "Pick another default agent (PUT /api/settings default_agent_id).",
        )
    if not found.get("available"):
        return Check(
            "default provider",
            "fail",
            f"{label} is not available",
            str(found.get("problem") or "See the providers table."),
        )
    return Check("default provider", "ok", label)


def _server_down(where: str, settings: Settings, exc: CliError) -> Check:
    if not isinstance(exc, Unreachable):
        return Check(
            "server",
            "fail",
            f"{where}: {exc.message}",
            "See the output of `codeyard serve` for the cause.",
        )
    detail = f"server not running at {where}"
    info = read_server_file(settings.data_dir)
    pid = info.get("pid") if info else None
    if isinstance(pid, int) and not pid_alive(pid):
        detail += f"; server.json is stale (pid {pid} is gone)"
    return Check("server", "fail", detail, "Start it with `codeyard serve`.")


def _auth_problem(target: Target, exc: ApiError) -> Check:
    if exc.status in (401, 403):
        how = "no token was found" if not target.token else "the token was refused"
        return Check(
            "auth",
            "fail",
            f"{how} ({exc.message})",
            "Pass --token / CODEYARD_TOKEN, or run on the server's machine so the "
            "CLI can read admin.token from the data directory.",
        )
    return Check("providers", "fail", exc.message)

    return True


def _print(state: CliState, checks: list[Check], providers: list[dict[str, Any]] | None) -> None:
    table = Table.grid(padding=(0, 1))
    for check in checks:
        mark, style = MARKS[check.level]
        table.add_row(Text(mark, style=style), Text(check.name, style="bold"), Text(check.detail))
        if check.fix and check.level != "ok":
            table.add_row("", "", Text(f"fix: {check.fix}", style=style))
    state.out.print(table)
    if providers:
        state.out.print(Group(Text(""), provider_table(providers)))
    failed = sum(c.level == "fail" for c in checks)
    summary = f"{failed} problem{'s' if failed != 1 else ''} found." if failed else "All good."
    state.out.print(Text(summary, style="bold red" if failed else "bold green"))


def provider_table(providers: list[dict[str, Any]]) -> Table:
    table = Table(title="providers", title_justify="left", box=None, header_style="bold")
    for column in ("name", "available", "version", "path", "problem / fix"):
        table.add_column(column)
    for provider in providers:
        ok = bool(provider.get("available"))
        table.add_row(
            str(provider.get("name", "?")),
            Text("yes" if ok else "no", style="green" if ok else "yellow"),
            str(provider.get("version") or "—"),
            str(provider.get("path") or "—"),
            Text(str(provider.get("problem") or ""), style="yellow"),
        )
    return table
