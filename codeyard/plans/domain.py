"""A plan's proposal without I/O: its shape (the utility model's structured output and the
edit body are the same model), the dependency rules, and the order tickets get numbers in.

The rules live in a pydantic validator so that a model answer breaking them (a blocker that is
not in the plan, a cycle) is refused like malformed JSON, and the utility model is asked once
more with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Kind = Literal["bug", "feature", "task", "chore"]
Priority = Literal["urgent", "high", "medium", "low", "none"]
DRAFT, ACCEPTED = "draft", "accepted"
MAX_TICKETS = 40


class ProposedTicket(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ref: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$",
        description="Short id of this ticket inside the plan (t1, t2, …); blockers name it.",
    )
    title: str = Field(min_length=1, max_length=300)
    body: str = Field(default="", max_length=20_000, description="Markdown: what done means.")
    kind: Kind = "task"
    priority: Priority = "medium"
    blocked_by: list[str] = Field(
        default_factory=list, max_length=MAX_TICKETS, description="Refs of this plan's tickets."
    )
    blocked_by_tickets: list[int] = Field(
        default_factory=list,
        max_length=50,
        description="Numbers of the project's existing tickets to finish first.",
    )


class Proposal(BaseModel):
    """A plan: a title, a short summary, and its tickets with their dependencies."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=300)
    summary: str = Field(default="", max_length=20_000)
    tickets: list[ProposedTicket] = Field(min_length=1, max_length=MAX_TICKETS)

    @model_validator(mode="after")
    def _dependencies(self) -> Proposal:
        check_dependencies(self.tickets)
        return self


def check_dependencies(tickets: Sequence[ProposedTicket]) -> None:
    """Refs are unique, blockers name other tickets of the plan, and nothing waits for itself.

    Raises ``ValueError`` naming the ticket to fix (pydantic turns it into a validation error).
    """
    refs = [t.ref for t in tickets]
    if dupes := sorted({r for r in refs if refs.count(r) > 1}):
        raise ValueError(f"ticket refs must be unique; repeated: {', '.join(dupes)}")
    known = set(refs)
    for t in tickets:
        if t.ref in t.blocked_by:
            raise ValueError(f"ticket {t.ref} cannot block itself")
        if missing := [b for b in t.blocked_by if b not in known]:
            raise ValueError(
                f"ticket {t.ref} is blocked by {', '.join(missing)}, which is not a ticket of "
                f"this plan (refs: {', '.join(refs)})"
            )
    creation_order(tickets)  # raises on a cycle


def creation_order(tickets: Sequence[ProposedTicket]) -> list[ProposedTicket]:
    """The tickets with every blocker before the tickets it blocks, otherwise in plan order,
    so numbers read in the order work can happen. ``ValueError`` naming a cycle."""
    by_ref = {t.ref: t for t in tickets}
    placed: dict[str, ProposedTicket] = {}
    visiting: list[str] = []

    def place(ref: str) -> None:
        if ref in placed:
            return
        if ref in visiting:
            loop = [*visiting[visiting.index(ref) :], ref]
            raise ValueError(f"tickets wait for each other in a cycle: {' → '.join(loop)}")
        visiting.append(ref)
        for blocker in by_ref[ref].blocked_by:
            if blocker in by_ref:
                place(blocker)
        visiting.pop()
        placed[ref] = by_ref[ref]

    for t in tickets:
        place(t.ref)
    return list(placed.values())


def known_tickets_only(existing: Iterable[int]) -> type[Proposal]:
    """The proposal model for one project: ``blocked_by_tickets`` must name tickets it has
    (so an invented number is refused and the model asked again)."""
    numbers = frozenset(existing)

    class ForProject(Proposal):
        model_config = ConfigDict(extra="forbid", title="Proposal")

        @model_validator(mode="after")
        def _existing(self) -> ForProject:
            for t in self.tickets:
                if unknown := [n for n in t.blocked_by_tickets if n not in numbers]:
                    raise ValueError(
                        f"ticket {t.ref} is blocked by #{', #'.join(map(str, unknown))}, which "
                        "the project does not have; use only the listed ticket numbers"
                    )
            return self

    return ForProject


def blockers(ticket: ProposedTicket, numbers: dict[str, int]) -> list[int]:
    """A proposed ticket's blockers as ticket numbers: its plan refs (already numbered), then
    the existing tickets it names, without repeats."""
    return list(dict.fromkeys([numbers[r] for r in ticket.blocked_by] + ticket.blocked_by_tickets))


def request_text(goal: str, existing: Sequence[tuple[int, str, str]]) -> str:
    """The utility model's user message: the goal and the project's open tickets."""
    lines = [f"Goal:\n{goal.strip()}"]
    if existing:
        listed = "\n".join(f"#{n} [{status}] {title}" for n, title, status in existing)
        lines.append(f"Open tickets of the project (may be used in blocked_by_tickets):\n{listed}")
    else:
        lines.append("The project has no open tickets.")
    return "\n\n".join(lines)
