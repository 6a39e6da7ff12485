"""Checks that keep agents honest (issue 21): the pure rules of local checks and fix loops.

A repository names check commands (``pytest -q``, ``npm test``); :mod:`codeyard.checks.runner`
runs them sandboxed in a run's worktrees, and ``codeyard.services.checks`` turns the results into
``check.*`` events, gates landing on them, and hands failures back to the agent. What a failure
is remembered by, how its log is trimmed and what the agent is told are decided here, without
I/O, so the CI fix loop of ``codeyard.github`` shares them.
"""

from __future__ import annotations

from codeyard.checks.spec import (
    MAX_ATTEMPTS,
    CheckResult,
    CheckSpec,
    ci_prompt,
    local_failure_key,
    local_prompt,
    review_prompt,
    trim_log,
)

__all__ = [
    "MAX_ATTEMPTS",
    "CheckResult",
    "CheckSpec",
    "ci_prompt",
    "local_failure_key",
    "local_prompt",
    "review_prompt",
    "trim_log",
]
