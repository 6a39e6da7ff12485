"""Failed sign-in attempts per client address, in a sliding window (in memory, per process)."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable


class FailureLimiter:
    """At most ``limit`` failures per ``window`` seconds per key; then callers must wait."""

    def __init__(
        self, limit: int = 5, window: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float]:
        now = self.clock()
        entries = self._failures.get(key)
        if entries is None:
            return deque()
        while entries and entries[0] <= now - self.window:
            entries.popleft()
        if not entries:
            del self._failures[key]
        return entries

    def retry_after(self, key: str) -> int | None:
        """Seconds to wait before ``key`` may try again, or None when it may try now."""
        entries = self._recent(key)
        if len(entries) < self.limit:
            return None
        return max(1, math.ceil(entries[0] + self.window - self.clock()))

    def failed(self, key: str) -> None:
        if len(self._failures) > 10_000:  # bound memory under a spray of addresses
            for stale in [k for k in self._failures if not self._recent(k)]:
                self._failures.pop(stale, None)
        self._failures.setdefault(key, deque()).append(self.clock())

    def reset(self, key: str) -> None:
        self._failures.pop(key, None)
