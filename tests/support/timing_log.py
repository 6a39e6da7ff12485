"""The server's timing milestones (``codeyard.agents.timing``), captured while a test runs."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from codeyard.agents import timing


class TimingLines(logging.Handler):
    """Every line the timing logger writes, as text."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextlib.contextmanager
def timing_lines(*, debug: bool = True) -> Iterator[TimingLines]:
    """Capture the timing logger's lines; at DEBUG (the milestones' level) unless told not."""
    handler = TimingLines()
    log = logging.getLogger(timing.LOGGER)
    level = log.level
    log.addHandler(handler)
    if debug:
        log.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
