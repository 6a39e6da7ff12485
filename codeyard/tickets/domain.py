"""Ticket rules without I/O: statuses and moves, prompts, search terms, queue scheduling."""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from codeyard.domain.errors import Conflict


class TicketStatus(StrEnum):
    INBOX = "inbox"
    BACKLOG = "backlog"
    IN_PROGRESS = "in_progress"
    IN_REVIEW = "in_review"
    DONE = "done"
    CANCELLED = "cancelled"


T = TicketStatus
STATUSES: tuple[str, ...] = tuple(s.value for s in TicketStatus)
KINDS = ("bug", "feature", "task", "chore")
PRIORITIES = ("urgent", "high", "medium", "low", "none")
VERDICTS = ("approved", "changes_requested", "commented")
CLOSED = frozenset({T.DONE, T.CANCELLED})
_OPEN = frozenset(T) - CLOSED

#: Open tickets move freely (a board lets a card go to any column); a closed one is reopened
#: into the inbox or backlog first, so "done" is never left for "in review" by a stray drag.
MOVES: dict[TicketStatus, frozenset[TicketStatus]] = {
    **{s: frozenset(T) - {s} for s in _OPEN},
    T.DONE: frozenset({T.INBOX, T.BACKLOG}),
    T.CANCELLED: frozenset({T.INBOX, T.BACKLOG}),
}


def check_move(number: int, current: str, wanted: str) -> None:
    """409 naming the allowed moves when ``current → wanted`` is not one."""
    frm, to = TicketStatus(current), TicketStatus(wanted)
    if to == frm:
        return
    if to not in MOVES[frm]:
        allowed = ", ".join(sorted(MOVES[frm]))
        raise Conflict(
            f"Ticket #{number} is '{frm}'; it can move to: {allowed}. Reopen it into 'backlog' "
            "first.",
            current_status=str(frm),
        )


def mentions(text: str) -> list[str]:
    """``@name`` mentions in Markdown text, in order, without repeats (not inside code spans)."""
    plain = re.sub(r"`[^`]*`", "", text)
    # A name ends with a letter, digit or underscore: "@ana." at the end of a sentence is "ana".
    found = re.findall(r"(?<![\w@])@([A-Za-z0-9](?:[A-Za-z0-9_.-]{0,61}[A-Za-z0-9_])?)", plain)
    return list(dict.fromkeys(found))


def run_prompt(ticket: Mapping[str, Any], comments: Sequence[Mapping[str, Any]]) -> str:
    """The agent's task for a ticket: its title, body and the discussion so far."""
    parts = [f"Ticket #{ticket['number']}: {ticket['title']}"]
    if ticket.get("body"):
        parts.append(str(ticket["body"]).strip())
    if comments:
        lines = [f"- {c.get('author') or 'someone'}: {str(c['body']).strip()}" for c in comments]
        parts.append("Comments on the ticket:\n" + "\n".join(lines))
    return "\n\n".join(parts)


def review_message(body: str, comments: Sequence[Mapping[str, Any]]) -> str:
    """A "changes requested" review as the agent's next turn: the summary, then each anchored
    comment with its file and line."""
    head = "A reviewer requested changes." + (f"\n\n{body.strip()}" if body.strip() else "")
    lines = []
    for c in comments:
        where = f"{c['path']}:{c['line']}" if c.get("line") else str(c["path"])
        lines.append(f"- {where}: {str(c['body']).strip()}")
    return head + ("\n\nOn the diff:\n" + "\n".join(lines) if lines else "")


def status_for_run(run_status: str, resolution: str | None) -> TicketStatus | None:
    """The ticket status a run's status implies (None: leave the ticket as it is)."""
    if run_status == "review":
        return T.IN_REVIEW
    if run_status == "completed" and resolution in ("merged", "pr_created"):
        return T.DONE if resolution == "merged" else T.IN_REVIEW
    if run_status == "completed" and resolution == "discarded":
        return T.BACKLOG
    return None


_WORD = re.compile(r"\w+", re.UNICODE)


def search_terms(query: str) -> list[str]:
    """The words of a search box query (punctuation and operators dropped), at most 16."""
    return _WORD.findall(query.lower())[:16]


def fts5_match(terms: Iterable[str]) -> str:
    """An FTS5 MATCH expression requiring every term, each as a quoted prefix: user text never
    reaches FTS5's query syntax."""
    return " AND ".join(f'"{t}"*' for t in terms)


# --- work queues ------------------------------------------------------------------------------

PENDING, RUNNING, DONE, FAILED, SKIPPED = "pending", "running", "done", "failed", "skipped"
#: Item states after which the queue no longer waits on the item.
SETTLED = frozenset({DONE, SKIPPED})


@dataclass(frozen=True, slots=True)
class QueueStep:
    """What the queue should do now: start these tickets, or finish."""

    start: list[str]
    finished: bool


def next_step(
    order: Sequence[str],
    items: Mapping[str, Mapping[str, Any]],
    blockers: Mapping[str, Sequence[str]],
    ticket_status: Mapping[str, str],
    max_parallel: int,
) -> QueueStep:
    """Which pending items to start, in queue order, within ``max_parallel``.

    An item is eligible when each of its blockers is done: settled in this queue, or a ticket
    whose status is ``done``. An item blocked by an item that failed in this queue waits (the
    queue is paused then anyway).
    """
    states = {tid: items.get(tid, {}).get("state", PENDING) for tid in order}
    running = sum(1 for s in states.values() if s == RUNNING)
    if all(s in SETTLED for s in states.values()):
        return QueueStep([], True)
    start: list[str] = []
    for tid in order:
        if running + len(start) >= max_parallel:
            break
        if states[tid] != PENDING:
            continue
        ready = all(
            states.get(b) in SETTLED or ticket_status.get(b) == T.DONE
            for b in blockers.get(tid, [])
        )
        if ready:
            start.append(tid)
        elif max_parallel == 1:
            break  # sequential: keep the order even if a later item could go
    return QueueStep(start, False)


def eta_seconds(
    remaining_kinds: Sequence[str], samples: Mapping[str, Sequence[float]], max_parallel: int
) -> tuple[float | None, int]:
    """How long the remaining tickets should take, from how long landed tickets took.

    Each remaining ticket counts the median of landed tickets of its kind (else of all landed
    tickets); ``max_parallel`` run side by side, so the total is split over that many lanes
    (at least one ticket's time while any remain). Returns ``(seconds, samples used)``;
    ``None`` seconds when there is no history yet.
    """
    if not remaining_kinds:
        return 0.0, 0
    everything = [d for ds in samples.values() for d in ds]
    if not everything:
        return None, 0
    overall = statistics.median(everything)
    typical = [
        statistics.median(samples[k]) if samples.get(k) else overall for k in remaining_kinds
    ]
    lanes = min(max_parallel, len(typical))
    return max(max(typical), math.fsum(typical) / lanes), len(everything)


def budget_left(budget_usd: float | None, spent_usd: float) -> float | None:
    """What the queue may still spend (``None``: no budget; never below zero)."""
    return None if budget_usd is None else max(0.0, budget_usd - spent_usd)
