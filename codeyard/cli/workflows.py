"""``codeyard workflow list|show|run|executions|cancel``: workflows from the terminal.

Everything goes through the HTTP API (``/api/workflows``); ``run --follow`` reads the
execution's event stream and prints one line per step event, reconnecting after ``Last-Event-ID``
when the connection drops.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.table import Table
from rich.text import Text

from codeyard.cli.client import ApiClient, CliError
from codeyard.cli.format import as_dict, cost, status_style, timestamp
from codeyard.cli.sse import parse_frames
from codeyard.cli.state import CliState, get_state

workflow_app = typer.Typer(
    help="Workflows: declarative multi-step agent work (definitions in .codeyard/workflows/).",
    no_args_is_help=True,
)
ENDED = frozenset({"completed", "failed", "cancelled", "interrupted"})
RECONNECTS = 5
WorkflowArg = typer.Argument(
    ..., help="Workflow name or id (wf_…).", show_default=False, metavar="WORKFLOW"
)
ExecutionArg = typer.Argument(
    ..., help="Execution id (wfx_…).", show_default=False, metavar="EXECUTION"
)


def workflow_id(api: ApiClient, ref: str) -> str:
    """The id of a workflow named by id or by name."""
    if ref.startswith("wf_"):
        return ref
    listed = as_dict(api.get("/api/workflows")).get("data") or []
    for row in listed:
        if row.get("name") == ref:
            return str(row["id"])
    names = ", ".join(sorted(str(r.get("name")) for r in listed)) or "none yet"
    raise CliError(
        f"No workflow is named {ref!r} (workflows: {names}).",
        notes=["Create one with POST /api/workflows, or load .codeyard/workflows/*.yaml."],
    )


@workflow_app.command("list")
def list_workflows(ctx: typer.Context) -> None:
    """Every workflow with its latest version and where it came from."""
    state = get_state(ctx)
    with state.client() as api:
        rows = as_dict(api.get("/api/workflows")).get("data") or []
    if not rows:
        state.out.print("No workflows yet. Add .codeyard/workflows/<name>.yaml to a repository.")
        return
    table = Table(box=None, header_style="bold")
    for column in ("id", "name", "version", "steps", "updated", "description"):
        table.add_column(column, no_wrap=column == "id")
    for row in rows:
        table.add_row(
            row["id"],
            row["name"],
            str(row["version"]),
            str(len((row.get("definition") or {}).get("steps") or [])),
            timestamp(row.get("updated_at")),
            row.get("description") or "",
        )
    state.out.print(table)


def _show_execution(state: CliState, body: dict[str, Any]) -> None:
    state.out.print(
        Text.assemble(
            (body["id"], "bold"),
            "  ",
            (body["status"], status_style(body["status"])),
            f"  spent {cost(body.get('spent_usd'))}",
        )
    )
    if body.get("status_reason"):
        state.out.print(Text(str(body["status_reason"]), "dim"))
    table = Table(box=None, header_style="bold")
    for column in ("step", "status", "attempts", "run", "error"):
        table.add_column(column)
    for step in body.get("steps") or []:
        table.add_row(
            step["key"],
            Text(step["status"], status_style(step["status"])),
            str(step.get("attempts") or 1),
            step.get("run_id") or "",
            (step.get("error") or "")[:120],
        )
    state.out.print(table)
    for pending in body.get("pending_approvals") or []:
        state.out.print(
            Text(f"Waiting for a decision on '{pending['key']}' (attempt {pending['attempt']}).")
        )
    if body.get("inputs"):
        state.out.print(Text(f"inputs: {json.dumps(body['inputs'])}"))
    if body.get("outputs"):
        state.out.print(Text(f"outputs: {json.dumps(body['outputs'])}"))


@workflow_app.command("show")
def show(
    ctx: typer.Context,
    ref: str = typer.Argument(
        ...,
        help="Workflow name or id (wf_…), or an execution id (wfx_…).",
        show_default=False,
        metavar="WORKFLOW|EXECUTION",
    ),
) -> None:
    """A workflow's definition and versions, or an execution's steps and their state."""
    state = get_state(ctx)
    with state.client() as api:
        if ref.startswith("wfx_"):
            _show_execution(state, as_dict(api.get(f"/api/workflows/executions/{ref}")))
            return
        row = as_dict(api.get(f"/api/workflows/{workflow_id(api, ref)}"))
    state.out.print(Text.assemble((row["name"], "bold"), f"  {row['id']}  v{row['version']}"))
    if row.get("description"):
        state.out.print(row["description"])
    if row.get("origin"):
        state.out.print(Text(f"from {row['origin']}", "dim"))
    versions = ", ".join(f"v{v['version']}" for v in row.get("versions") or [])
    if versions:
        state.out.print(Text(f"versions: {versions}", "dim"))
    _show_signature(state, row.get("definition") or {})
    state.out.print(row.get("source") or json.dumps(row["definition"], indent=2), markup=False)


def _constraints(spec: dict[str, Any]) -> str:
    """A spec's JSON Schema constraints, compactly (what the input or output must satisfy)."""
    skip = {"type", "description", "required", "default", "value"}
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in spec.items() if k not in skip)


def _show_signature(state: CliState, definition: dict[str, Any]) -> None:
    """The declared inputs (what ``execute --var`` must give) and outputs with their types."""
    inputs = definition.get("inputs") or {}
    if inputs:
        table = Table(box=None, header_style="bold", title="inputs", title_justify="left")
        for column in ("input", "type", "required", "default", "constraints", "description"):
            table.add_column(column)
        for name, spec in inputs.items():
            table.add_row(
                name,
                spec.get("type", "string"),
                "yes" if spec.get("required") else "",
                "" if spec.get("default") is None else json.dumps(spec["default"]),
                _constraints(spec),
                spec.get("description") or "",
            )
        state.out.print(table)
    outputs = definition.get("outputs") or {}
    if outputs:
        table = Table(box=None, header_style="bold", title="outputs", title_justify="left")
        for column in ("output", "type", "value", "constraints"):
            table.add_column(column)
        for name, spec in outputs.items():
            typed = spec if isinstance(spec, dict) else {"value": spec}
            table.add_row(
                name,
                typed.get("type") or "any",
                Text(str(typed.get("value", ""))),
                _constraints(typed),
            )
        state.out.print(table)


def parse_vars(pairs: list[str], raw_json: str | None) -> dict[str, Any]:
    """``--vars-json`` first, then each ``key=value`` (the value as JSON when it parses)."""
    out: dict[str, Any] = {}
    if raw_json:
        try:
            loaded = json.loads(raw_json)
        except ValueError as exc:
            raise CliError(f"--vars-json is not JSON: {exc}") from exc
        if not isinstance(loaded, dict):
            raise CliError("--vars-json must be a JSON object.")
        out.update(loaded)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(f"--var takes key=value, not {pair!r}.")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def describe(event: dict[str, Any], execution: str) -> Text | None:
    """One progress line for an execution event (None for ones not worth a line)."""
    kind, data = str(event["type"]), event.get("data") or {}
    key = str(data.get("key") or "")
    if kind == "workflow.step.started":
        return Text(f"▶ {key} ({data.get('type')})")
    if kind == "workflow.step.run":  # a run step's first record (no step.started before it)
        return Text(f"▶ {key} (run): run {data.get('run_id')}")
    if kind == "workflow.step.completed":
        output = data.get("output") or {}
        extra = f" after {data['attempts']} attempts" if int(data.get("attempts") or 1) > 1 else ""
        if "run_id" in output and "status" in output:
            extra += f" (run #{output.get('number')} {output['status']})"
        return Text(f"✓ {key}{extra}", "green")
    if kind == "workflow.step.failed":
        return Text(f"✗ {key}: {data.get('error')}", "red")
    if kind == "workflow.step.skipped":
        return Text(f"- {key} skipped: {data.get('reason')}", "dim")
    if kind == "workflow.step.retry":
        delay = float(data.get("delay_seconds") or 0)
        return Text(
            f"↻ {key}: attempt {data.get('attempt')} in {delay:g} s "
            f"({data.get('kind')}: {str(data.get('error'))[:200]})",
            "yellow",
        )
    if kind == "workflow.step.waiting":
        return Text(f"… {key}: watching run {data.get('run_id')}", "dim")
    if kind == "workflow.approval.requested":
        return Text(
            f"? {key} waits for a decision: {data.get('message') or ''} "
            f"(POST /api/workflows/executions/{execution}/steps/{key}/decide)",
            "yellow",
        )
    if kind == "workflow.approval.decided":
        verdict = "approved" if data.get("approved") else f"rejected: {data.get('reason')}"
        return Text(f"  {key} {verdict} by {data.get('by')}")
    if kind == "workflow.loop.capped":
        spent, cap = cost(data.get("cost_usd")), cost(data.get("max_cost_usd"))
        return Text(
            f"$ {key} stopped: its cost {spent} passed max_cost_usd {cap}",
            "red",
        )
    if kind.startswith("workflow.execution."):
        status = kind.rsplit(".", 1)[1]
        return Text(f"execution {status}", f"bold {status_style(status)}")
    return None


def follow(state: CliState, api: ApiClient, execution: str, after: int = 0) -> str:
    """Print the execution's events until it ends; its final status."""
    path = f"/api/workflows/executions/{execution}/events/stream"
    failures = 0
    while True:
        try:
            with api.stream(path, params={"after": after}, headers={}) as response:
                for frame in parse_frames(response.iter_lines()):
                    event = frame.json()
                    after = int(event.get("seq") or after)
                    failures = 0
                    line = describe(event, execution)
                    if line is not None:
                        state.out.print(line)
        except (httpx.TransportError, httpx.TimeoutException) as exc:
            failures += 1
            if failures > RECONNECTS:
                raise CliError(f"Lost the execution's event stream: {exc}") from exc
            state.err.print(Text(f"stream interrupted ({exc}); reconnecting", "dim"))
            continue
        status = str(as_dict(api.get(f"/api/workflows/executions/{execution}"))["status"])
        if status in ENDED:
            return status


@workflow_app.command("run")
def run(
    ctx: typer.Context,
    ref: str = WorkflowArg,
    var: list[str] | None = typer.Option(
        None,
        "--var",
        "-v",
        help="key=value for an input (repeatable); the value is read as JSON when it parses.",
        show_default=False,
    ),
    vars_json: str | None = typer.Option(
        None, "--vars-json", help="All inputs as one JSON object (--var applies on top)."
    ),
    repo: Path | None = typer.Option(
        None, "--repo", help="Git work tree the run steps work on. Default: the current directory."
    ),
    project: str | None = typer.Option(
        None, "--project", help="Project id (prj_…) instead of --repo."
    ),
    budget: float | None = typer.Option(
        None, "--budget", min=0, help="Spending cap of the execution, in USD."
    ),
    follow_: bool = typer.Option(
        False, "--follow", "-f", help="Print each step's progress until the execution ends."
    ),
) -> None:
    """Start an execution of a workflow; its id is printed.

    With --follow, the exit code is 0 when the execution completes and 1 when it fails, is
    cancelled or interrupted. Ctrl-C stops following (exit 130) and leaves it running.
    """
    state = get_state(ctx)
    body: dict[str, Any] = {"variables": parse_vars(var or [], vars_json)}
    if project:
        body["project_id"] = project
    else:
        body["repo_path"] = str((repo or Path.cwd()).expanduser().resolve())
    if budget is not None:
        body["budget_usd"] = budget
    with state.client() as api:
        wf = workflow_id(api, ref)
        started = as_dict(api.post(f"/api/workflows/{wf}/execute", body))
        execution = str(started["execution_id"])
        state.out.print(Text.assemble("Started ", (execution, "bold"), f" of {ref}."))
        if not follow_:
            state.out.print(Text(f"Follow it with `codeyard workflow show {execution}`.", "dim"))
            return
        try:
            final = follow(state, api, execution)
        except KeyboardInterrupt:
            state.err.print(Text(f"Stopped following; {execution} goes on.", "dim"))
            raise typer.Exit(130) from None
        if final != "completed":
            reason = as_dict(api.get(f"/api/workflows/executions/{execution}")).get("status_reason")
            state.out.print(Text(f"{final}: {reason}", "red"))
    raise typer.Exit(0 if final == "completed" else 1)


@workflow_app.command("executions")
def executions(
    ctx: typer.Context,
    ref: str = WorkflowArg,
    status: str | None = typer.Option(
        None, "--status", "-s", help="Only these statuses, comma-separated (e.g. running,failed)."
    ),
    limit: int = typer.Option(20, "--limit", "-n", min=1, max=500, help="At most this many."),
) -> None:
    """A workflow's executions, newest first."""
    state = get_state(ctx)
    with state.client() as api:
        wf = workflow_id(api, ref)
        rows = (
            as_dict(api.get(f"/api/workflows/{wf}/executions", status=status, limit=limit)).get(
                "data"
            )
            or []
        )
    if not rows:
        state.out.print("No executions.")
        return
    table = Table(box=None, header_style="bold")
    for column in ("id", "status", "version", "spent", "started", "reason"):
        table.add_column(column, no_wrap=column == "id")
    for row in rows:
        table.add_row(
            row["id"],
            Text(row["status"], status_style(row["status"])),
            f"v{row['workflow_version']}",
            cost(row.get("spent_usd")),
            timestamp(row.get("created_at")),
            (row.get("status_reason") or "")[:80],
        )
    state.out.print(table)


@workflow_app.command("cancel")
def cancel(ctx: typer.Context, execution: str = ExecutionArg) -> None:
    """Cancel an execution: every running step's run is cancelled, then the execution."""
    state = get_state(ctx)
    with state.client() as api:
        body = as_dict(api.post(f"/api/workflows/executions/{execution}/cancel"))
    state.out.print(Text(f"{execution} {body['status']}.", status_style(body["status"])))
