"""A turn's milestones as DEBUG lines on the ``codeyard.timing`` logger, for the overhead bench.

``bench/overhead.py`` splits a run's time into phases (turn set-up, the agent's spawn to its
first model request, the model calls, the turn's end, the CLI's exit, the checkpoint) and sets
that logger to DEBUG in the server it starts; everywhere else it is off and :func:`mark` costs
one level check. A line is ``<run id> <milestone> <unix time>``; the run is the one whose turn
the calling task drives (:func:`for_run`), so a spawn deep in an adapter or the SDK needs no
run id passed down.
"""

from __future__ import annotations

import logging
import time
from contextvars import ContextVar

__all__ = ["LOGGER", "for_run", "mark", "mark_of"]

LOGGER = "codeyard.timing"
log = logging.getLogger(LOGGER)
_run: ContextVar[str | None] = ContextVar("codeyard_timing_run", default=None)


def for_run(run_id: str) -> None:
    """Milestones marked from now on in this task (and tasks it starts) are ``run_id``'s."""
    _run.set(run_id)


def mark(milestone: str) -> None:
    """Log ``milestone`` of the current run now (only when the logger is at DEBUG)."""
    if log.isEnabledFor(logging.DEBUG):
        run = _run.get()
        if run is not None:
            log.debug("%s %s %.6f", run, milestone, time.time())


def mark_of(run: str, milestone: str) -> None:
    """Log ``milestone`` of ``run`` now, from a task that does not drive its turn (yet)."""
    if log.isEnabledFor(logging.DEBUG):
        log.debug("%s %s %.6f", run, milestone, time.time())
