"""A work queue's ETA and budget arithmetic without I/O."""

from __future__ import annotations

from codeyard.tickets.domain import budget_left, eta_seconds


def test_queue_eta_uses_the_median_of_the_same_kind_over_the_lanes() -> None:
    samples = {"bug": [10.0, 30.0, 20.0], "feature": [100.0]}
    assert eta_seconds([], samples, 1) == (0.0, 0)
    assert eta_seconds(["bug"], {}, 1) == (None, 0)
    assert eta_seconds(["bug", "bug", "feature"], samples, 1) == (140.0, 4)
    # Two lanes split the work, but never below the longest single ticket.
    assert eta_seconds(["bug", "feature"], samples, 2) == (100.0, 4)
    assert eta_seconds(["bug", "bug", "bug", "bug"], samples, 2) == (40.0, 4)
    assert eta_seconds(["chore"], samples, 1) == (25.0, 4)  # no chores landed: all kinds
    assert budget_left(None, 3.0) is None
    assert budget_left(1.0, 0.25) == 0.75 and budget_left(1.0, 2.0) == 0.0
