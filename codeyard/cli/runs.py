"""Run commands: run, ls, show, logs, msg, start, cancel, pause, resume."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from rich.text import Text

from codeyard.cli.client import ApiClient, CliError, run_path
from codeyard.cli.format import as_dict
from codeyard.cli.render import Transcript
from codeyard.cli.sse import IDLE_STATUSES, follow_run
from codeyard.cli.state import CliState, get_state
from codeyard.cli.views import run_label, run_panel, run_summary, run_table

#: Statuses in which ``run --follow`` counts as a success.
SUCCESS_STATUSES = frozenset({"review", "completed"})
EVENTS_PAGE = 500

RunArg = typer.Argument(..., help="Run number (7 or #7) or id (run_…).", show_default=False)


def run(
    ctx: typer.Context,
    prompt: str = typer.Argument(..., help="What the agent should do.", show_default=False),
    repo: Path | None = typer.Option(
        None,
        "--repo",
        help="Git work tree to work on. Default: the current directory.",
        show_default=False,
    ),
    provider: str | None = typer.Option(
        None,
        "--provider",
        "-p",
        help="Agent provider: claude-code, codex, gemini, copilot, opencode, qwen, codex-acp, "
        "claude-acp, kilo, aider, acp or script (`codeyard doctor` says which run here).",
    ),
    agent: str | None = typer.Option(
        None, "--agent", "--profile", help="Agent profile: its name or id (agt_…)."
    ),
    model: str | None = typer.Option(
        None, "--model", "-m", help="Model for the provider (see GET /api/models)."
    ),
    env: list[str] | None = typer.Option(
        None,
        "--env",
        "-e",
        help="KEY=VALUE for the agent's environment (repeatable; sent as agent_options.env).",
        show_default=False,
    ),
    env_set: list[str] | None = typer.Option(
        None,
        "--env-set",
        help="Env set to attach, by name or id (repeatable; its secrets stay on the server).",
        show_default=False,
    ),
    option: list[str] | None = typer.Option(
        None,
        "--option",
        "-o",
        help="key=value agent option (repeatable). The value is read as JSON when it parses "
        "(true, 3, {...}), else as text. Dotted keys nest: -o env.LOG=debug sets "
        "agent_options.env.LOG.",
        show_default=False,
    ),
    options_json: str | None = typer.Option(
        None,
        "--options-json",
        help="All agent_options as one JSON object (what `codeyard fake-llm` prints); "
        "--env, --option and --permission-mode are applied on top.",
        show_default=False,
    ),
    scenario: Path | None = typer.Option(
        None,
        "--scenario",
        exists=True,
        dir_okay=False,
        readable=True,
        help="JSON scenario for the script provider (sent as agent_options.scenario). "
        "Implies --provider script unless --provider or --agent is given.",
    ),
    title: str | None = typer.Option(None, "--title", "-t", help="Run title."),
    draft: bool = typer.Option(False, "--draft", help="Create only; start later with `start`."),
    budget: float | None = typer.Option(
        None, "--budget", min=0, help="Spending cap for this run, in USD."
    ),
    follow: bool = typer.Option(
        False, "--follow", "-f", help="Stream the transcript until the run is idle."
    ),
    permission_mode: str | None = typer.Option(
        None,
        "--permission-mode",
        help="default (ask before writes and commands), plan (no writes) or auto (allow; hard "
        "gates still ask). Default: the agent profile's, else the server's.",
    ),
) -> None:
    """Start a run: an agent works on PROMPT in its own worktree and branch.

    With --follow, the exit code is 0 when the run ends in review or completed and 1 otherwise.
    Ctrl-C stops following (exit 130) and leaves the run going.
    """
    state = get_state(ctx)
    if provider and agent:
        raise CliError("Use either --provider or --agent, not both.")
    if draft and follow:
        raise CliError("A draft does not run until it is started: drop --follow or --draft.")
    repo_path = (repo or Path.cwd()).expanduser().resolve()
    if not repo_path.is_dir():
        raise CliError(f"{repo_path} is not a directory.")
    if permission_mode not in (None, "default", "plan", "auto"):
        raise CliError("--permission-mode takes default, plan or auto.")
    body: dict[str, Any] = {"prompt": prompt, "repo_path": str(repo_path)}
    options = agent_options(options_json, option or [], env or [])
    if scenario is not None:
        options["scenario"] = _read_scenario(scenario)
        if not provider and not agent:
            provider = "script"
    if permission_mode:
        options["permission_mode"] = permission_mode
    if options:
        body["agent_options"] = options
    optional = {
        "provider": provider,
        "agent_id": agent,
        "model": model,
        "title": title,
        "budget_usd": budget,
        "draft": draft or None,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    with state.client() as api:
        if env_set:
            body["env_set_ids"] = [_env_set_id(api, name) for name in env_set]
        if agent and not agent.startswith("agt_"):
            body["agent_id"] = _profile_id(api, agent)
        created = as_dict(api.post("/api/runs", body))
        key = str(created.get("number") or created.get("id"))
        state.out.print(_created_line(created))
        if not follow:
            hint = f"codeyard start {key}" if draft else f"codeyard logs {key} -f"
            state.out.print(Text(f"{'Start' if draft else 'Follow'} it with `{hint}`.", "dim"))
            return
        final = _follow(state, api, str(created.get("id") or key), key, after=0)
    raise typer.Exit(0 if final in SUCCESS_STATUSES else 1)


def ls(
    ctx: typer.Context,
    status: str | None = typer.Option(
        None, "--status", "-s", help="Only runs in this status (comma-separated for several)."
    ),
    all_: bool = typer.Option(False, "--all", "-a", help="Include archived runs."),
    limit: int = typer.Option(30, "--limit", "-n", min=1, help="How many runs to show."),
) -> None:
    """List runs, newest first."""
    state = get_state(ctx)
    with state.client() as api:
        runs = list(api.pages("/api/runs", limit=limit, status=status, archived="false"))
        if all_:
            runs += api.pages("/api/runs", limit=limit, status=status, archived="true")
            runs.sort(key=lambda r: (str(r.get("created_at", "")), r.get("number") or 0))
            runs = runs[::-1][:limit]
    if not runs:
        message = "No runs match." if status else 'No runs yet. Start one: codeyard run "…"'
        state.out.print(Text(message, style="dim"))
        return
    state.out.print(run_table(runs))


def show(ctx: typer.Context, run: str = RunArg) -> None:
    """Show one run: status and reason, branch, usage and cost, diff stats."""
    state = get_state(ctx)
    with state.client() as api:
        state.out.print(run_panel(as_dict(api.get(run_path(run)))))


def logs(
    ctx: typer.Context,
    run: str = RunArg,
    follow: bool = typer.Option(
        False, "--follow", "-f", help="Keep streaming new events until the run is idle."
    ),
) -> None:
    """Print a run's events as a readable transcript.

    With -f, keep following live until the run is idle; Ctrl-C stops following (exit 130).
    """
    state = get_state(ctx)
    with state.client() as api:
        current = as_dict(api.get(run_path(run)))
        run_id = str(current.get("id") or run)
        transcript = Transcript()
        last_id = 0
        for event in _backfill(api, run_id):
            _print_event(state, transcript, event)
            last_id = max(last_id, _event_id(event))
        _flush(state, transcript)
        if not follow or str(current.get("status")) in IDLE_STATUSES:
            return
        _follow(state, api, run_id, str(current.get("number") or run), after=last_id)


def msg(
    ctx: typer.Context,
    run: str = RunArg,
    text: str = typer.Argument(..., help="The message.", show_default=False),
) -> None:
    """Send a message to a run's agent (in review or failed, it starts a new turn)."""
    state = get_state(ctx)
    with state.client() as api:
        api.post(run_path(run, "messages"), {"text": text})
        current = as_dict(api.get(run_path(run)))
    state.out.print(
        Text(f"Message sent to run {run_label(current) if current else run}.", style="green")
    )


def _action(ctx: typer.Context, run: str, action: str, body: dict[str, Any] | None = None) -> None:
    state = get_state(ctx)
    with state.client() as api:
        answer = as_dict(api.post(run_path(run, action), body))
    label = run_label(answer) if answer.get("number") is not None else run
    status = answer.get("status")
    state.out.print(
        Text(f"Run {label} {'is now ' + str(status) if status else action + ' requested'}.")
    )


def start(ctx: typer.Context, run: str = RunArg) -> None:
    """Start a draft run."""
    _action(ctx, run, "start")


def cancel(ctx: typer.Context, run: str = RunArg) -> None:
    """Cancel a run (the worktree and branch are kept)."""
    _action(ctx, run, "cancel")


def pause(ctx: typer.Context, run: str = RunArg) -> None:
    """Pause a running or waiting run; `resume` continues it."""
    _action(ctx, run, "pause")


def resume(
    ctx: typer.Context,
    run: str = RunArg,
    message: str | None = typer.Option(
        None, "--message", "-m", help="Message for the agent when it continues."
    ),
) -> None:
    """Resume a paused, interrupted or failed run."""
    _action(ctx, run, "resume", {"message": message} if message else None)


def agent_options(options_json: str | None, options: list[str], env: list[str]) -> dict[str, Any]:
    """``agent_options`` from ``--options-json``, then ``--option key=value``, then ``--env``."""
    merged: dict[str, Any] = {}
    if options_json is not None:
        try:
            loaded = json.loads(options_json)
        except ValueError as exc:
            raise CliError(f"--options-json is not valid JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise CliError("--options-json must be a JSON object, like '{\"env\": {...}}'.")
        merged = loaded
    for item in options:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise CliError(f"--option {item!r}: write it as key=value.")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        parts = [p for p in key.strip().split(".") if p]
        node = merged
        for part in parts[:-1]:
            child = node.get(part)
            node[part] = child = child if isinstance(child, dict) else {}
            node = child
        node[parts[-1]] = value
    for item in env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise CliError(f"--env {item!r}: write it as KEY=VALUE.")
        current = merged.get("env")
        merged["env"] = {**(current if isinstance(current, dict) else {}), name: value}
    return merged


def _by_name(api: ApiClient, path: str, wanted: str, what: str, command: str) -> str:
    rows = [as_dict(r) for r in api.pages(path, limit=1000)]
    for row in rows:
        if wanted in (row.get("id"), row.get("name")):
            return str(row["id"])
    names = ", ".join(sorted(str(r.get("name")) for r in rows)) or "none yet"
    raise CliError(f"No {what} named {wanted!r} (there are: {names}).", notes=[command])


def _env_set_id(api: ApiClient, wanted: str) -> str:
    hint = "Env sets are made in the web UI's settings (or POST /api/env-sets)."
    return _by_name(api, "/api/env-sets", wanted, "env set", hint)


def _profile_id(api: ApiClient, wanted: str) -> str:
    hint = "Agent profiles are made in the web UI's settings (or POST /api/agents)."
    return _by_name(api, "/api/agents", wanted, "agent profile", hint)


def _created_line(run: dict[str, Any]) -> Text:
    out = Text(f"Created run {run_label(run)}", style="bold green")
    parts = [str(run[k]) for k in ("id", "branch", "status") if run.get(k)]
    if parts:
        out.append(" · " + " · ".join(parts), style="dim")
    return out


def _read_scenario(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CliError(f"Cannot read the scenario {path}: {exc}") from exc


def _backfill(api: ApiClient, run_id: str) -> Iterator[dict[str, Any]]:
    """Every stored event of the run, in order (``GET …/events?after=``, paged)."""
    after = 0
    while True:
        body = api.get(run_path(run_id, "events"), after=after, limit=EVENTS_PAGE)
        items = body.get("data", []) if isinstance(body, dict) else body or []
        start = after
        for event in items:
            yield event
            after = max(after, _event_id(event))
        more = (isinstance(body, dict) and body.get("next_cursor")) or len(items) >= EVENTS_PAGE
        if not items or not more or after == start:
            return


def _event_id(event: dict[str, Any]) -> int:
    try:
        return int(event.get("id", 0))
    except (TypeError, ValueError):
        return 0


def _print_event(state: CliState, transcript: Transcript, event: dict[str, Any]) -> None:
    rendered = transcript.render(event)
    if rendered is not None:
        state.out.print(rendered)


def _flush(state: CliState, transcript: Transcript) -> None:
    pending = transcript.flush()
    if pending is not None:
        state.out.print(pending)


def _follow(state: CliState, api: ApiClient, run_id: str, key: str, *, after: int) -> str:
    """Print the live transcript until the run is idle; its final status.

    Ctrl-C stops following with exit code 130; the run itself goes on.
    """
    transcript = Transcript()

    def on_retry(attempt: int, problem: str) -> None:
        state.err.print(
            Text(
                f"Connection lost ({problem}); reconnecting ({attempt}/{state.retries})…",
                style="yellow",
            )
        )

    events = follow_run(
        api, run_id, after=after, retries=state.retries, sleep=state.sleep, on_retry=on_retry
    )
    try:
        for event in events:
            _print_event(state, transcript, event)
    except KeyboardInterrupt:
        _flush(state, transcript)
        state.err.print(
            Text(
                f"Stopped following run {key}; it keeps going. "
                f"Follow it again with `codeyard logs {key} -f`.",
                style="yellow",
            )
        )
        raise typer.Exit(130) from None
    _flush(state, transcript)
    final = as_dict(api.get(run_path(run_id)))
    state.out.print(run_summary(final))
    return str(final.get("status"))
