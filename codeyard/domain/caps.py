"""Per-user caps on concurrent work (open event streams, clones): 429 beyond the cap.

In memory, per process, like the other limiters: a cap bounds what one caller can hold open
on this server at once, so one user (or one leaked token) cannot exhaust it for everyone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from codeyard.domain.errors import TooManyRequests

__all__ = ["Caps", "caller_key"]


class Caps:
    """Counters of what each key holds, per kind (``"stream"``, ``"clone"``)."""

    def __init__(self) -> None:
        self._held: dict[tuple[str, str], int] = {}

    def held(self, kind: str, key: str) -> int:
        return self._held.get((kind, key), 0)

    def acquire(self, kind: str, key: str, limit: int, hint: str) -> Callable[[], None]:
        """Take one of ``key``'s ``limit`` slots of ``kind`` (429 when none is free); returns
        the function that gives it back (safe to call more than once)."""
        slot = (kind, key)
        if self._held.get(slot, 0) >= limit:
            raise TooManyRequests(
                f"Too many concurrent {kind}s: at most {limit} per user at once. {hint}",
                retry_after=1,
            )
        self._held[slot] = self._held.get(slot, 0) + 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            left = self._held[slot] - 1
            if left:
                self._held[slot] = left
            else:
                del self._held[slot]

        return release

    @contextmanager
    def hold(self, kind: str, key: str, limit: int, hint: str) -> Iterator[None]:
        """Hold one of ``key``'s ``limit`` slots of ``kind`` for the ``with`` block."""
        release = self.acquire(kind, key, limit, hint)
        try:
            yield
        finally:
            release()


def caller_key(user_id: str | None, name: str) -> str:
    """The key a caller's caps count under: the user, or the admin token's name."""
    return user_id or f"admin:{name}"
