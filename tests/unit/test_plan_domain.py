"""The plan proposal's rules without I/O: refs, blockers inside the plan, cycles, the order
tickets are numbered in, and the per-project check of existing ticket numbers."""

from __future__ import annotations

from typing import Any, get_args

import pytest
from pydantic import ValidationError

from codeyard.plans import domain
from codeyard.tickets.domain import KINDS, PRIORITIES


def proposal(*tickets: dict[str, Any]) -> dict[str, Any]:
    return {"title": "Plan", "tickets": list(tickets)}


def test_kinds_and_priorities_are_the_tickets_own() -> None:
    assert get_args(domain.Kind) == KINDS and get_args(domain.Priority) == PRIORITIES


def test_blockers_come_first_otherwise_plan_order() -> None:
    p = domain.Proposal.model_validate(
        proposal(
            {"ref": "c", "title": "C", "blocked_by": ["b", "a"]},
            {"ref": "a", "title": "A"},
            {"ref": "d", "title": "D"},
            {"ref": "b", "title": "B", "blocked_by": ["a"]},
        )
    )
    assert [t.ref for t in domain.creation_order(p.tickets)] == ["a", "b", "c", "d"]
    numbers = {"a": 5, "b": 6}
    assert domain.blockers(p.tickets[0], numbers) == [6, 5]


@pytest.mark.parametrize(
    ("tickets", "message"),
    [
        ([{"ref": "a", "title": "A"}, {"ref": "a", "title": "B"}], "repeated: a"),
        ([{"ref": "a", "title": "A", "blocked_by": ["a"]}], "cannot block itself"),
        ([{"ref": "a", "title": "A", "blocked_by": ["zz"]}], "zz, which is not a ticket"),
        (
            [
                {"ref": "a", "title": "A", "blocked_by": ["c"]},
                {"ref": "b", "title": "B", "blocked_by": ["a"]},
                {"ref": "c", "title": "C", "blocked_by": ["b"]},
            ],
            "cycle: a → c → b → a",
        ),
        ([], "at least 1"),
    ],
)
def test_broken_proposals_are_refused_with_the_reason(
    tickets: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(ValidationError) as err:
        domain.Proposal.model_validate(proposal(*tickets))
    assert message in str(err.value)


def test_existing_ticket_numbers_are_checked_per_project() -> None:
    body = proposal({"ref": "a", "title": "A", "blocked_by_tickets": [3, 4]})
    assert domain.known_tickets_only([3, 4]).model_validate(body).tickets[0].blocked_by_tickets
    with pytest.raises(ValidationError, match="#4, which the project does not have"):
        domain.known_tickets_only([3]).model_validate(body)
    schema = domain.known_tickets_only([]).model_json_schema()
    assert schema["title"] == "Proposal" and schema["additionalProperties"] is False


def test_the_request_lists_open_tickets() -> None:
    text = domain.request_text(" Ship it ", [(7, "Fix login", "backlog")])
    assert text.startswith("Goal:\nShip it") and "#7 [backlog] Fix login" in text
    assert "no open tickets" in domain.request_text("x", [])
