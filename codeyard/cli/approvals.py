"""Approval commands: see what waits for you, and answer it."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from codeyard.cli.client import ApiClient, CliError, run_path
from codeyard.cli.format import as_dict
from codeyard.cli.state import get_state

ApprovalArg = typer.Argument(..., help="Approval id (apr_…).", show_default=False)
Remember = typer.Option(
    None,
    "--remember",
    help="Also allow this exact call from now on, in this run ('run') or in every run of the "
    "project ('project'): the same command, or the same tool on the same file.",
)


def approvals(
    ctx: typer.Context,
    all_statuses: bool = typer.Option(False, "--all", help="Include answered and expired ones."),
) -> None:
    """List approvals waiting for an answer, across all runs."""
    state = get_state(ctx)
    query = "" if all_statuses else "?status=pending"
    with state.client() as api:
        rows = as_dict(api.get(f"/api/approvals{query}")).get("data") or []
        numbers = _run_numbers(api, {str(r["run_id"]) for r in rows})
    if not rows:
        state.out.print("Nothing is waiting for approval." if not all_statuses else "No approvals.")
        return
    table = Table(box=None, header_style="bold")
    table.add_column("id", no_wrap=True)  # ids are for copying: never cut them
    for column in ("run", "status", "tool", "what", "expires"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["id"],
            numbers.get(str(row["run_id"]), str(row["run_id"])),
            row["status"],
            row["tool"],
            row["title"],
            (row.get("expires_at") or "")[:16].replace("T", " "),
        )
    state.out.print(table)
    if not all_statuses:
        state.out.print(
            Text("Answer with `codeyard approve ID` or `codeyard reject ID`.", style="dim")
        )


def _answer(
    ctx: typer.Context, approval_id: str, decision: str, reason: str | None, remember: str | None
) -> None:
    state = get_state(ctx)
    body = {"decision": decision, "reason": reason, "remember": remember}
    with state.client() as api:
        row = as_dict(api.post(f"/api/approvals/{approval_id}/resolve", body))
    style = "green" if decision == "approved" else "yellow"
    state.out.print(Text(f"{row.get('title') or approval_id}: {decision}.", style=style))
    if remember and decision == "approved":
        where = "this run" if remember == "run" else "every run of this project"
        state.out.print(Text(f"Remembered for {where}: {remembered(row)}.", style=style))


def remembered(row: dict[str, Any]) -> str:
    """In words, what ``--remember`` allows from now on (``domain.approvals.remembered_rule``:
    the same command exactly, else the same tool on the same path, else the tool)."""
    tool = str(row.get("tool") or "this tool")
    data = as_dict(row.get("input"))
    command = data.get("command") or data.get("cmd")
    if command:
        return f"{tool} running exactly `{command}`"
    path = data.get("path") or data.get("file_path")
    if path:
        return f"{tool} on {path}"
    return f"every {tool} call"


def _run_numbers(api: ApiClient, run_ids: set[str]) -> dict[str, str]:
    """``#n`` for each run id (what people type), the id when the run cannot be read."""
    out: dict[str, str] = {}
    for run_id in run_ids:
        try:
            number = as_dict(api.get(run_path(run_id))).get("number")
        except CliError:
            continue
        if number is not None:
            out[run_id] = f"#{number}"
    return out


def approve(
    ctx: typer.Context,
    approval_id: str = ApprovalArg,
    remember: str | None = Remember,
    reason: str | None = typer.Option(None, "--reason", help="Why (shown in the audit log)."),
) -> None:
    """Approve a waiting tool call; the agent continues at once."""
    if remember not in (None, "run", "project"):
        raise typer.BadParameter("--remember takes 'run' or 'project'.")
    _answer(ctx, approval_id, "approved", reason, remember)


def reject(
    ctx: typer.Context,
    approval_id: str = ApprovalArg,
    reason: str | None = typer.Option(None, "--reason", help="Told to the agent, so it adapts."),
) -> None:
    """Reject a waiting tool call; the agent is told why and carries on without it."""
    _answer(ctx, approval_id, "rejected", reason, None)


def trust(ctx: typer.Context, run: str = typer.Argument(..., help="Run number or id.")) -> None:
    """Auto-approve this run's pending and future asks (hard gates still ask)."""
    state = get_state(ctx)
    with state.client() as api:
        answer = as_dict(api.post(f"/api/runs/{run.lstrip('#')}/trust", None))
    state.out.print(Text(f"Run {answer.get('number', run)} is trusted.", style="green"))
