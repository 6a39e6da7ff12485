"""Ticket rules without I/O: moves, mentions, prompts, search terms and queue scheduling."""

from __future__ import annotations

import pytest

from codeyard.domain.errors import Conflict
from codeyard.tickets import domain
from codeyard.tickets.domain import DONE, FAILED, PENDING, RUNNING, next_step


def test_open_tickets_move_anywhere_closed_ones_reopen_first() -> None:
    domain.check_move(1, "inbox", "done")
    domain.check_move(1, "in_review", "backlog")
    domain.check_move(1, "done", "backlog")
    with pytest.raises(Conflict, match="backlog"):
        domain.check_move(1, "done", "in_progress")
    with pytest.raises(Conflict):
        domain.check_move(1, "cancelled", "done")


def test_mentions_skip_code_spans_emails_and_repeats() -> None:
    text = "@ana see `@notme` and mail a@b.c, cc @bo-2 and @ana again"
    assert domain.mentions(text) == ["ana", "bo-2"]
    assert domain.mentions("Thanks @ana. And @j.doe, @x_!") == ["ana", "j.doe", "x_"]


def test_prompt_carries_ticket_and_discussion() -> None:
    ticket = {"number": 4, "title": "Fix totals", "body": "Totals round wrong."}
    prompt = domain.run_prompt(ticket, [{"author": "ana", "body": "Use Decimal."}])
    assert prompt.startswith("Ticket #4: Fix totals")
    assert "Totals round wrong." in prompt and "- ana: Use Decimal." in prompt


def test_review_message_lists_anchored_comments() -> None:
    text = domain.review_message(
        "Almost.", [{"path": "a.py", "line": 3, "body": "rename"}, {"path": "b.md", "body": "typo"}]
    )
    assert text.splitlines()[0] == "A reviewer requested changes."
    assert "- a.py:3: rename" in text and "- b.md: typo" in text


def test_search_terms_never_carry_query_syntax() -> None:
    terms = domain.search_terms('"cart* OR (total) NEAR/2 -x')
    assert terms == ["cart", "or", "total", "near", "2", "x"]
    assert domain.fts5_match(["cart", "tot"]) == '"cart"* AND "tot"*'


def test_queue_starts_eligible_items_in_order_within_max_parallel() -> None:
    order = ["a", "b", "c"]
    blockers = {"b": ["a"], "c": ["b"]}
    step = next_step(order, {}, blockers, {}, 1)
    assert step.start == ["a"] and not step.finished
    running = {"a": {"state": RUNNING}}
    assert next_step(order, running, blockers, {}, 2).start == []  # b waits for a
    assert next_step(order, {"a": {"state": DONE}}, blockers, {}, 1).start == ["b"]
    # A blocker outside the queue counts when its ticket is done.
    assert next_step(["c"], {}, {"c": ["z"]}, {"z": "done"}, 1).start == ["c"]
    assert next_step(["c"], {}, {"c": ["z"]}, {"z": "in_review"}, 1).start == []
    # Independent items run side by side up to max_parallel.
    assert next_step(order, {}, {}, {}, 2).start == ["a", "b"]
    # A failed item holds its dependents; all settled → finished.
    assert next_step(order, {"a": {"state": FAILED}}, blockers, {}, 1).start == []
    settled = {t: {"state": DONE} for t in order}
    assert next_step(order, settled, blockers, {}, 1).finished
    assert next_step(order, {"a": {"state": PENDING}}, {}, {}, 1).start == ["a"]
