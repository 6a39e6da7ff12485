"""The pure delegation rules: depth, fan-out, budget slices and who may decide an approval."""

from __future__ import annotations

import pytest

from codeyard.domain import delegation as rules
from codeyard.domain.errors import Forbidden, ValidationFailed

LIMITS = rules.Limits(max_depth=2, max_children=3, budget_share=0.5)


def test_depth_counts_from_the_person_started_run() -> None:
    assert rules.check_depth(0, LIMITS) == 1
    assert rules.check_depth(1, LIMITS) == 2
    with pytest.raises(Forbidden, match="depth limit"):
        rules.check_depth(2, LIMITS)


def test_fan_out_stops_at_the_limit() -> None:
    rules.check_fan_out(2, LIMITS)
    with pytest.raises(Forbidden, match="Fan-out limit"):
        rules.check_fan_out(3, LIMITS)


def test_budget_slice_is_a_share_of_what_is_left() -> None:
    # $10 budget, $2 spent, $3 held by siblings: $5 left, at most half of it.
    assert rules.budget_slice(10.0, 2.0, 3.0, None, LIMITS) == pytest.approx(2.5)
    assert rules.budget_slice(10.0, 2.0, 3.0, 1.0, LIMITS) == pytest.approx(1.0)
    with pytest.raises(ValidationFailed) as too_much:
        rules.budget_slice(10.0, 2.0, 3.0, 3.0, LIMITS)
    assert too_much.value.extra["max_budget_usd"] == pytest.approx(2.5)
    with pytest.raises(Forbidden, match="no budget left"):
        rules.budget_slice(1.0, 1.2, 0.0, None, LIMITS)
    assert rules.budget_slice(None, 5.0, 0.0, None, LIMITS) is None  # no cap to slice
    assert rules.budget_slice(None, 5.0, 0.0, 4.0, LIMITS) == 4.0
    with pytest.raises(ValidationFailed):
        rules.budget_slice(None, 0.0, 0.0, 0.0, LIMITS)


@pytest.mark.parametrize(
    ("agent", "lineage", "allowed"),
    [
        ("parent", ["child", "parent", "root"], True),  # a sub-run's approval
        ("root", ["grandchild", "child", "root"], True),  # deeper descendants too
        ("child", ["child", "parent"], False),  # its own
        ("child", ["parent", "root"], False),  # an ancestor's
        ("sibling", ["child", "parent"], False),  # a sibling's
        ("stranger", [], False),
    ],
)
def test_who_may_decide(agent: str, lineage: list[str], allowed: bool) -> None:
    if allowed:
        rules.check_may_decide(agent, lineage)
    else:
        with pytest.raises(Forbidden):
            rules.check_may_decide(agent, lineage)
