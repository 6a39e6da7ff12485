"""Rules for runs that agents start through Codeyard's MCP server (recursion-safe delegation).

An agent that can start agents could multiply itself without bound, spend its parent's money
twice, or approve its own risky calls through a child. These pure rules close each door: a depth
limit and a fan-out limit on the lineage, a budget slice carved from what the parent has left,
and the rule that an agent may decide only approvals of its own descendants. The services feed
them rows; nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from codeyard.domain.errors import Forbidden, ValidationFailed


@dataclass(frozen=True, slots=True)
class Limits:
    """``max_depth``: delegated runs below a person's run; ``max_children``: sub-runs one run
    may start; ``budget_share``: the largest fraction of the parent's remaining budget."""

    max_depth: int
    max_children: int
    budget_share: float


def check_depth(parent_depth: int, limits: Limits) -> int:
    """The child's depth, or 403 when it would go deeper than allowed."""
    depth = parent_depth + 1
    if depth > limits.max_depth:
        raise Forbidden(
            f"Delegation depth limit reached: this run is already {parent_depth} level(s) below "
            f"a person's run and sub-runs may go {limits.max_depth} deep "
            "(CODEYARD_MCP_MAX_DEPTH). Do the work in this run instead.",
            depth=parent_depth,
            max_depth=limits.max_depth,
        )
    return depth


def check_fan_out(children: int, limits: Limits) -> None:
    """403 when the parent already started ``max_children`` sub-runs."""
    if children >= limits.max_children:
        raise Forbidden(
            f"Fan-out limit reached: this run already started {children} sub-run(s), the most "
            f"one run may start (CODEYARD_MCP_MAX_CHILDREN={limits.max_children}). Wait for "
            "them and reuse their results.",
            children=children,
            max_children=limits.max_children,
        )


def budget_slice(
    parent_budget: float | None,
    parent_spent: float,
    reserved: float,
    requested: float | None,
    limits: Limits,
) -> float | None:
    """The sub-run's budget in USD.

    With a parent budget, the child gets at most ``budget_share`` of what is left after the
    parent's own spending and the slices its other children already hold; asking for more is
    a 422 naming the most it may ask. Without a parent budget the request stands (None: none).
    """
    if requested is not None and requested <= 0:
        raise ValidationFailed(
            "budget_usd must be positive.",
            errors=[{"loc": ["budget_usd"], "msg": "must be > 0"}],
        )
    if parent_budget is None:
        return requested
    remaining = max(0.0, parent_budget - parent_spent - reserved)
    most = round(remaining * limits.budget_share, 6)
    if most <= 0:
        raise Forbidden(
            f"The parent run has no budget left to give (budget ${parent_budget:.4f}, spent "
            f"${parent_spent:.4f}, ${reserved:.4f} held by its other sub-runs).",
            remaining_usd=remaining,
        )
    if requested is None:
        return most
    if requested > most:
        raise ValidationFailed(
            f"budget_usd {requested} is more than this run may give a sub-run: at most "
            f"${most:.4f} ({limits.budget_share:.0%} of the ${remaining:.4f} it has left).",
            errors=[{"loc": ["budget_usd"], "msg": f"at most {most}"}],
            max_budget_usd=most,
        )
    return requested


def check_may_decide(agent_run_id: str, approval_lineage: Sequence[str]) -> None:
    """An agent may answer an approval only when it was asked by one of its descendants.

    ``approval_lineage`` is the asking run's id followed by its ancestors' ids, nearest first.
    The asking run itself being the agent (its own approval) or the agent not being among the
    asking run's strict ancestors (a parent's, a sibling's, a stranger's) is refused.
    """
    if not approval_lineage or approval_lineage[0] == agent_run_id:
        raise Forbidden(
            "An agent cannot decide its own approvals; a person (or an ancestor run) must.",
            reason="own_approval",
        )
    if agent_run_id not in approval_lineage[1:]:
        raise Forbidden(
            "An agent may decide only approvals of the sub-runs it started (and theirs); this "
            "approval belongs to its own ancestor or to an unrelated run.",
            reason="not_a_descendant",
        )
