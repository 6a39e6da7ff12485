"""``codeyard gc``: reclaim the worktrees of long-finished runs now, and say what was freed."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from codeyard.cli.format import as_dict
from codeyard.cli.state import get_state


def human_bytes(count: Any) -> str:
    """``1.5 MB``-style sizes (powers of 1024, as ``du -h`` shows them)."""
    value = float(count or 0)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _branches(entry: dict[str, Any]) -> str:
    kept = [str(b.get("branch")) for b in entry.get("branches_kept") or [] if isinstance(b, dict)]
    return ", ".join(kept) if kept else "—"


def gc(
    ctx: typer.Context,
    older_than: int | None = typer.Option(
        None,
        "--older-than",
        min=0,
        help="Reclaim runs finished at least this many days ago. Default: retention_days.",
        show_default=False,
    ),
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Only show what would be freed."),
) -> None:
    """Remove worktrees of runs finished long ago (review, completed, failed, cancelled).

    Runs, their events and unmerged branches are kept; only the working files go.
    """
    state = get_state(ctx)
    body: dict[str, Any] = {"dry_run": dry_run}
    if older_than is not None:
        body["older_than_days"] = older_than
    with state.client() as api:
        result = as_dict(api.post("/api/gc", body))
    if result.get("retention_days") is None:
        state.out.print(
            Text(
                "Retention is off (retention_days is not set): nothing removed. "
                "Pass --older-than DAYS, or set retention_days with PUT /api/settings.",
                style="yellow",
            )
        )
        return
    runs = [as_dict(r) for r in result.get("runs") or []]
    verb = "Would free" if dry_run else "Freed"
    if runs:
        table = Table(box=None, pad_edge=False)
        for column in ("run", "status", "finished", "size", "kept branches"):
            table.add_column(column, justify="right" if column == "size" else "left")
        for entry in runs:
            table.add_row(
                f"#{entry.get('number')}",
                str(entry.get("status")),
                str(entry.get("finished_at") or ""),
                human_bytes(entry.get("bytes")),
                _branches(entry),
            )
        state.out.print(table)
    days = result["retention_days"]
    summary = (
        f"{verb} {human_bytes(result.get('freed_bytes'))} from {len(runs)} "
        f"run{'s' if len(runs) != 1 else ''} finished more than {days} days ago."
    )
    state.out.print(Text(summary, style="green" if runs else "dim"))
    for error in result.get("errors") or []:
        problem = as_dict(error)
        state.err.print(
            Text(f"Could not reclaim {problem.get('run_id')}: {problem.get('message')}", "red")
        )
