"""Run creation rate per principal: ``CODEYARD_RUN_CREATE_PER_MINUTE`` → 429 with Retry-After.

A dependency of the runs router: it counts the requests that create runs (``POST /runs``, a
follow-up, a retry) per authenticated caller in a sliding one-minute window: in memory on SQLite
(one server), in the database on PostgreSQL (``cluster.ratelimit``: every API server counts the
same window).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

from fastapi import Request

from codeyard.api.auth import authenticate
from codeyard.cluster.ratelimit import SharedWindow
from codeyard.domain.errors import TooManyRequests

__all__ = ["CREATING_ROUTES", "SlidingWindow", "limit_run_creation"]

#: Handlers (of the runs router, where this dependency is installed) that create a run.
CREATING_ROUTES = frozenset({"create_run", "follow_up", "retry"})
_WINDOW = 60.0
_MAX_KEYS = 10_000


class SlidingWindow:
    """At most ``limit`` hits per ``window`` seconds per key."""

    def __init__(
        self, limit: int, window: float = _WINDOW, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._hits: dict[str, deque[float]] = {}

    def hit(self, key: str) -> int | None:
        """Count a hit; None when allowed, else the seconds until the next one would be."""
        now = self.clock()
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            return max(1, math.ceil(hits[0] + self.window - now))
        if len(self._hits) > _MAX_KEYS:  # bound memory: drop keys idle for a whole window
            for stale in [k for k, v in self._hits.items() if not v or v[-1] <= now - self.window]:
                self._hits.pop(stale, None)
            hits = self._hits.setdefault(key, hits)
        hits.append(now)
        return None


async def limit_run_creation(request: Request) -> None:
    """429 when the caller has created ``run_create_per_minute`` runs in the last minute."""
    endpoint = request.scope.get("endpoint")
    if request.method != "POST" or getattr(endpoint, "__name__", None) not in CREATING_ROUTES:
        return
    principal = await authenticate(request)
    limiter: SlidingWindow | SharedWindow = request.app.state.run_rate
    key = principal.user_id or f"{principal.kind}:{principal.name}"
    wait = await limiter.hit(key) if isinstance(limiter, SharedWindow) else limiter.hit(key)
    if wait is not None:
        raise TooManyRequests(
            f"Too many runs created: at most {limiter.limit} per minute per caller. Try again "
            f"in {wait} s, or raise CODEYARD_RUN_CREATE_PER_MINUTE.",
            retry_after=wait,
        )
