"""Review and landing commands: diff, checkpoints, restore, land, share.

Everything the web UI's Changes tab does, from a terminal, so landing needs no curl. Each
command is one or two API calls; the server checks conflicts, scopes and states.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from codeyard.cli.client import ApiClient, CliError, run_path
from codeyard.cli.format import as_dict, short_sha, timestamp
from codeyard.cli.state import get_state
from codeyard.cli.views import diff_summary, run_label

RunArg = typer.Argument(..., help="Run number (7 or #7) or id (run_…).", show_default=False)

#: ``land`` flag → the resolve action it sends.
LAND_ACTIONS = {
    "merge": "merge",
    "squash": "squash",
    "rebase": "rebase",
    "pr": "create_pr",
    "discard": "discard",
    "agent_merge": "agent_merge",
}


def diff(
    ctx: typer.Context,
    run: str = RunArg,
    paths: list[str] | None = typer.Argument(
        None, help="Only these files or directories.", show_default=False
    ),
    stat: bool = typer.Option(False, "--stat", help="Only the number of files and lines."),
    color: bool | None = typer.Option(
        None, "--color/--no-color", help="Colour the diff. Default: when writing to a terminal."
    ),
) -> None:
    """Show everything the run changed against its base: committed, uncommitted, untracked."""
    state = get_state(ctx)
    with state.client() as api:
        if stat:
            stats = as_dict(api.get(run_path(run, "diff", "stats")))
            state.out.print(diff_summary({"diff_stats": stats}))
            return
        params = {"format": "text", "path": paths or None}
        text = api.request("GET", run_path(run, "diff"), params=params)
    text = text if isinstance(text, str) else ""
    if not text.strip():
        state.out.print(Text("No changes.", style="dim"))
        return
    use_color = state.out.is_terminal if color is None else color
    if use_color:
        state.out.print(Syntax(text, "diff", theme="ansi_dark", background_color="default"))
    else:
        typer.echo(text, nl=not text.endswith("\n"))


def checkpoints(ctx: typer.Context, run: str = RunArg) -> None:
    """List a run's checkpoints (one per turn, plus manual and pre-restore ones)."""
    state = get_state(ctx)
    with state.client() as api:
        rows = _checkpoints(api, run)
    if not rows:
        state.out.print(Text("No checkpoints: the run has not finished a turn.", style="dim"))
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("#", "id", "kind", "turn", "changes", "created", "description"):
        table.add_column(
            name, no_wrap=name != "description", ratio=1 if name == "description" else None
        )
    for row in rows:
        table.add_row(
            str(row.get("number", "")),
            str(row.get("id", "")),
            str(row.get("kind", "")),
            str(row.get("turn") if row.get("turn") is not None else "—"),
            diff_summary({"diff_stats": row.get("diff_stats")}),
            timestamp(row.get("created_at")),
            str(row.get("description") or ""),
        )
    state.out.print(table)
    key = run.lstrip("#")
    state.out.print(Text(f"Restore one with `codeyard restore {key} NUMBER`.", style="dim"))


def restore(
    ctx: typer.Context,
    run: str = RunArg,
    checkpoint: str = typer.Argument(
        ...,
        help="Checkpoint number on that run (see `checkpoints`) or id (ckp_…).",
        show_default=False,
    ),
) -> None:
    """Put the run's worktree back to a checkpoint (the present is checkpointed first: undo)."""
    state = get_state(ctx)
    with state.client() as api:
        checkpoint_id = _checkpoint_id(api, run, checkpoint)
        answer = as_dict(api.post(f"/api/checkpoints/{checkpoint_id}/restore"))
    restored = as_dict(answer.get("restored"))
    undo = as_dict(answer.get("undo_checkpoint"))
    state.out.print(
        Text(
            f"Restored checkpoint {restored.get('number', checkpoint)} of run {run.lstrip('#')} "
            f"({diff_summary({'diff_stats': answer.get('diff_stats')})} against the base).",
            style="green",
        )
    )
    if undo.get("number") is not None:
        state.out.print(
            Text(f"Undo with `codeyard restore {run.lstrip('#')} {undo['number']}`.", style="dim")
        )


def land(
    ctx: typer.Context,
    run: str = RunArg,
    merge: bool = typer.Option(False, "--merge", help="Merge commit into the target branch."),
    squash: bool = typer.Option(False, "--squash", help="One commit on the target branch."),
    rebase: bool = typer.Option(False, "--rebase", help="Rebase onto it, then fast-forward."),
    pr: bool = typer.Option(False, "--pr", help="Push the branch and open a pull request."),
    discard: bool = typer.Option(
        False, "--discard", help="Throw the work away: worktree and branch are removed."
    ),
    agent_merge: bool = typer.Option(
        False, "--agent-merge", help="Merge the target into the run; the agent fixes conflicts."
    ),
    target: str | None = typer.Option(
        None, "--into", "--target", help="Target branch. Default: the repository's default branch."
    ),
    message: str | None = typer.Option(None, "--message", "-m", help="Commit message."),
    title: str | None = typer.Option(None, "--title", help="Pull request title (--pr)."),
    body: str | None = typer.Option(None, "--body", help="Pull request description (--pr)."),
    draft: bool = typer.Option(False, "--draft", help="Open the pull request as a draft (--pr)."),
    yes: bool = typer.Option(
        False,
        "--yes",
        "-y",
        help="Do not ask before --discard, nor before landing into a branch that is checked "
        "out in one of your worktrees.",
    ),
) -> None:
    """Land a run in review: exactly one of --merge, --squash, --rebase, --pr, --discard.

    Conflicts are checked first: when there are any, nothing changes and the paths are listed
    (`--agent-merge` hands them to the agent). Landing into a branch checked out in your own
    worktree moves its files, so you are asked first (unless --yes).
    """
    state = get_state(ctx)
    chosen = [
        name
        for name, on in (
            ("merge", merge),
            ("squash", squash),
            ("rebase", rebase),
            ("pr", pr),
            ("discard", discard),
            ("agent_merge", agent_merge),
        )
        if on
    ]
    if len(chosen) != 1:
        raise CliError(
            "Choose one way to land: --merge, --squash, --rebase, --pr, --discard "
            "(or --agent-merge)."
        )
    action = LAND_ACTIONS[chosen[0]]
    if action == "discard" and not yes:
        typer.confirm(f"Discard run {run.lstrip('#')}: remove its worktree and branch?", abort=True)
    request: dict[str, Any] = {"action": action}
    extra = {"target_branch": target, "message": message, "title": title, "body": body}
    request.update({k: v for k, v in extra.items() if v is not None})
    if draft:
        request["draft"] = True
    with state.client() as api:
        if action in ("merge", "squash", "rebase") and not yes:
            params = {"target_branch": target} if target else {}
            check = as_dict(api.get(run_path(run, "land-check"), **params))
            if check.get("confirm"):
                typer.confirm(str(check["confirm"]), abort=True)
        answer = as_dict(api.post(run_path(run, "resolve"), request))
        shas = _landed_commits(api, str(answer.get("id") or run)) if action != "discard" else []
    label = run_label(answer) if answer.get("number") is not None else run
    status = str(answer.get("status", "?"))
    line = Text(f"Run {label} is {status}", style="bold green")
    if answer.get("status_reason"):
        line.append(f": {answer['status_reason']}", style="green")
    state.out.print(line)
    for sha, where in shas:
        state.out.print(Text(f"  {short_sha(sha)} on {where}", style="cyan"))
    pull = as_dict(answer.get("pull_request"))
    if pull.get("url"):
        state.out.print(Text(f"  pull request: {pull['url']}", style="cyan"))
    if action == "agent_merge":
        state.out.print(
            Text(f"Follow the agent with `codeyard logs {label.lstrip('#')} -f`.", style="dim")
        )


def share(
    ctx: typer.Context,
    run: str = RunArg,
    hours: float = typer.Option(24, "--hours", min=0.01, max=24 * 90, help="Link lifetime."),
) -> None:
    """Create a read-only link to the run (transcript and diff); the link is shown once."""
    state = get_state(ctx)
    with state.client() as api:
        link = as_dict(api.post(run_path(run, "share"), {"ttl_hours": hours}))
    state.out.print(Text(str(link.get("url", "")), style="bold cyan"), soft_wrap=True)
    state.out.print(
        Text(
            f"Read-only, expires {timestamp(link.get('expires_at'))}. It is shown only now; "
            f"revoke it with DELETE /api/runs/{run.lstrip('#')}/shares/{link.get('id')}.",
            style="dim",
        )
    )


def _checkpoints(api: ApiClient, run: str) -> list[dict[str, Any]]:
    return [as_dict(r) for r in as_dict(api.get(run_path(run, "checkpoints"))).get("data") or []]


def _checkpoint_id(api: ApiClient, run: str, checkpoint: str) -> str:
    wanted = checkpoint.strip().lstrip("#")
    if not wanted.isdigit():
        return wanted
    rows = _checkpoints(api, run)
    for row in rows:
        if str(row.get("number")) == wanted:
            return str(row["id"])
    numbers = ", ".join(str(r.get("number")) for r in rows) or "none"
    raise CliError(
        f"Run {run.lstrip('#')} has no checkpoint {wanted} (it has: {numbers}).",
        notes=[f"List them with `codeyard checkpoints {run.lstrip('#')}`."],
    )


def _landed_commits(api: ApiClient, run_id: str) -> list[tuple[str, str]]:
    """(sha, target branch) of each ``git.merged`` event of the run, the latest last."""
    body = as_dict(api.get(run_path(run_id, "events"), types="git.merged", limit=50))
    out: list[tuple[str, str]] = []
    for event in body.get("data") or []:
        data = as_dict(as_dict(event).get("data"))
        if data.get("sha"):
            out.append((str(data["sha"]), str(data.get("target") or "?")))
    return out
