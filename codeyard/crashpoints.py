"""Test hook: ``kill -9`` the server at a named boundary of a run's durable steps (issue 12).

With ``CODEYARD_TEST_CRASH_AT`` set to a comma-separated list of point names, :func:`reached`
kills this process with SIGKILL when the first of them is reached, exactly where a crash hurts
most: after a step's effect (a shell step done, a worktree set up, a checkpoint ref written, a
target branch moved, a worktree removed) and before its result is stored. Tests start a real
server with it, then restart the server without it and check that the step is not done twice.
Unset (always, outside those tests), :func:`reached` does nothing.
"""

from __future__ import annotations

import logging
import os
import signal

__all__ = ["CRASH_AT_ENV", "POINTS", "reached"]

log = logging.getLogger(__name__)

CRASH_AT_ENV = "CODEYARD_TEST_CRASH_AT"

#: Every boundary a test can crash at (a name not listed here is refused, so a typo in a test
#: does not silently test nothing).
POINTS = frozenset(
    {
        # the script agent's bash step ended (its mark written); its result is not stored
        "script:step-done",
        # every worktree made and set up, recorded as ready, the run row not yet told
        "prepare:set-up",
        # the turn-end checkpoint's commit is on its ref, its row and the turn's end are not
        "checkpoint:ref-written",
        # a landing moved the target branches; the run is not yet completed
        "land:moved",
        # discard removed the worktrees and branch; the run is not yet completed
        "discard:removed",
        # a workflow's run step created its run; the execution's log does not name it yet
        "workflow:run-created",
    }
)


def reached(point: str) -> None:
    """SIGKILL this process if ``CODEYARD_TEST_CRASH_AT`` names ``point`` (see the module)."""
    wanted = os.environ.get(CRASH_AT_ENV)
    if not wanted:
        return
    if point not in POINTS:
        raise ValueError(f"unknown crash point {point!r}")
    if point in {p.strip() for p in wanted.split(",")}:
        log.warning("test hook %s: crashing at %s", CRASH_AT_ENV, point)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os.kill(os.getpid(), signal.SIGKILL)
