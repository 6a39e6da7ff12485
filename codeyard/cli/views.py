"""Runs and errors as Rich renderables: the ``ls`` table, the ``show`` panel, ``Error:`` lines."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from codeyard.cli.client import CliError
from codeyard.cli.format import age, as_dict, cost, status_style, timestamp, tokens


def error_lines(error: CliError) -> Group:
    """``Error: <message>`` in red, then the problem's extra members, indented."""
    lines = [Text(f"Error: {error.message}", style="bold red")]
    lines.extend(Text(f"  {note}", style="red") for note in error.notes)
    return Group(*lines)


def run_label(run: dict[str, Any]) -> str:
    return f"#{run['number']}" if run.get("number") is not None else str(run.get("id", "?"))


def diff_summary(run: dict[str, Any]) -> str:
    stats = as_dict(run.get("diff_stats"))
    if not stats:
        return "—"
    files = stats.get("files") or 0
    return (
        f"{files} file{'s' if files != 1 else ''} "
        f"+{stats.get('insertions') or 0} -{stats.get('deletions') or 0}"
    )


def run_table(runs: list[dict[str, Any]], *, now: datetime | None = None) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("provider", no_wrap=True)
    table.add_column("title", overflow="ellipsis", ratio=1)
    table.add_column("branch", no_wrap=True)  # for copying: never cut
    table.add_column("cost", justify="right", no_wrap=True)
    table.add_column("updated", justify="right", no_wrap=True)
    for run in runs:
        status = str(run.get("status", "?"))
        status_text = Text(status, style=status_style(status))
        if run.get("pending_approvals"):
            status_text.append(f" ({run['pending_approvals']} ⏸)", style="yellow")
        if run.get("archived"):
            status_text.append(" archived", style="dim")
        table.add_row(
            str(run.get("number", "")),
            status_text,
            str(run.get("provider") or "—"),
            Text(_first_line(run.get("title") or run.get("prompt"))),
            Text(str(run.get("branch") or "—"), style="cyan"),
            cost(as_dict(run.get("usage")).get("cost_usd")),
            age(run.get("updated_at"), now),
        )
    return table


def run_panel(run: dict[str, Any]) -> Panel:
    """Everything a person asks about one run, without the transcript."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    status = str(run.get("status", "?"))
    status_text = Text(status, style=status_style(status))
    if run.get("status_reason"):
        status_text.append(f" — {run['status_reason']}", style="dim")
    if run.get("resolution"):
        status_text.append(f" ({run['resolution']})")
    rows: list[tuple[str, RenderableType | None]] = [
        ("id", str(run.get("id", ""))),
        ("status", status_text),
        ("provider", " · ".join(str(run[k]) for k in ("provider", "model") if run.get(k))),
        ("agent", run.get("agent_id")),
        ("branch", Text(str(run["branch"]), style="cyan") if run.get("branch") else None),
        ("source", run.get("source_ref")),
        ("worktree", _worktrees(run.get("worktrees"))),
        ("parent", run.get("parent_run_id")),
        ("turns", str(run["turns"]) if run.get("turns") is not None else None),
        ("changes", diff_summary(run)),
        ("usage", _usage_line(as_dict(run.get("usage")))),
        ("budget", cost(run["budget_usd"]) if run.get("budget_usd") is not None else None),
        (
            "approvals",
            f"{run['pending_approvals']} pending" if run.get("pending_approvals") else None,
        ),
        ("pull request", _pull_request(run.get("pull_request"))),
        ("labels", ", ".join(str(label) for label in run.get("labels") or []) or None),
        ("archived", "yes" if run.get("archived") else None),
        ("created", timestamp(run.get("created_at"))),
        ("started", timestamp(run["started_at"]) if run.get("started_at") else None),
        ("finished", timestamp(run["finished_at"]) if run.get("finished_at") else None),
        ("updated", f"{timestamp(run.get('updated_at'))} ({age(run.get('updated_at'))})"),
    ]
    for name, value in rows:
        if value not in (None, ""):
            grid.add_row(name, value)
    prompt = str(run.get("prompt") or "").strip()
    body: RenderableType = grid
    if prompt:
        body = Group(grid, Text(""), Text("prompt", style="bold"), Text(prompt))
    title = f"Run {run_label(run)}"
    if run.get("title"):
        title += f" · {run['title']}"
    return Panel(body, title=Text(title, style="bold"), title_align="left", expand=False)


def run_summary(run: dict[str, Any]) -> Text:
    """One line after following a run: where it ended and what it produced."""
    status = str(run.get("status", "?"))
    out = Text(f"Run {run_label(run)} ", style="bold")
    out.append(status, style=status_style(status))
    if run.get("status_reason"):
        out.append(f" ({run['status_reason']})", style="dim")
    parts = [str(run["branch"])] if run.get("branch") else []
    if as_dict(run.get("diff_stats")):
        parts.append(diff_summary(run))
    usage = as_dict(run.get("usage"))
    if usage.get("cost_usd") is not None:
        parts.append(cost(usage["cost_usd"]))
    if parts:
        out.append(" · " + " · ".join(parts), style="dim")
    return out


def _first_line(value: Any) -> str:
    lines = str(value or "").strip().splitlines()
    return lines[0] if lines else ""


def _usage_line(usage: dict[str, Any]) -> str | None:
    if not usage:
        return None
    line = f"{tokens(usage.get('input_tokens'))} in / {tokens(usage.get('output_tokens'))} out"
    cached = (usage.get("cache_read_tokens") or 0) + (usage.get("cache_write_tokens") or 0)
    if cached:
        line += f" ({tokens(cached)} cached)"
    return f"{line} · {cost(usage.get('cost_usd'))}"


def _pull_request(value: Any) -> str | None:
    pr = as_dict(value)
    if not pr:
        return None
    number = f"#{pr['number']} " if pr.get("number") is not None else ""
    state = f" ({pr['state']})" if pr.get("state") else ""
    return f"{number}{pr.get('url', '')}{state}".strip() or None


def _worktrees(value: Any) -> str | None:
    """Where the run's files are (one path per repository), for `cd` and your editor."""
    paths = [str(p) for p in as_dict(value).values() if p]
    return "\n".join(paths) or None
