"""Failed sign-ins, counted so guessing is slow.

Password failures are counted per client address *and* per username (``FailureLimiter`` in
memory; ``SharedFailures`` in the database when several API servers share PostgreSQL): the
sixth within a minute on either answers 429. A success clears only its own username's count,
never the address's, so signing in to one's own account between guesses does not reset the
count for other accounts. Other ways in (emailed codes) and account routes that re-check the
password use the same counts.
"""

from __future__ import annotations

from typing import Protocol

from codeyard.auth.ratelimit import FailureLimiter
from codeyard.cluster.failures import SharedFailures
from codeyard.domain.errors import TooManyRequests


class Counters(Protocol):
    """Where failures are counted: the process's limiter, or the database's when shared
    (``services.auth.AuthState``)."""

    limiter: FailureLimiter
    shared: SharedFailures | None


def address_key(client: str) -> str:
    return f"addr:{client}"


def username_key(username: str) -> str:
    return f"user:{username.strip().lower()}"


async def _retry_after(state: Counters, key: str) -> int | None:
    if state.shared is not None:
        return await state.shared.retry_after(key)
    return state.limiter.retry_after(key)


async def _count(state: Counters, *keys: str) -> None:
    if state.shared is not None:
        await state.shared.failed(*keys)
        return
    for key in keys:
        state.limiter.failed(key)


async def reset_failures(state: Counters, key: str) -> None:
    """Forget ``key``'s failures (a username after its successful sign-in)."""
    if state.shared is not None:
        await state.shared.reset(key)
    else:
        state.limiter.reset(key)


async def guard(state: Counters, client: str, username: str | None = None) -> None:
    """429 while the address, or the username, has used up its failures."""
    keys = [(address_key(client), "from this address")]
    if username is not None:
        keys.append((username_key(username), "for this username"))
    for key, where in keys:
        wait = await _retry_after(state, key)
        if wait is not None:
            raise TooManyRequests(
                f"Too many failed sign-in attempts {where}; try again in {wait} s.",
                retry_after=wait,
            )


async def failed(state: Counters, client: str, username: str | None = None) -> None:
    keys = [address_key(client)]
    if username is not None:
        keys.append(username_key(username))
    await _count(state, *keys)


async def guard_sign_in(state: Counters, client: str, account: str | None = None) -> None:
    """The sign-in limiter for other ways in (emailed codes): the same counts as passwords."""
    await guard(state, client, account)


async def sign_in_failed(state: Counters, client: str, account: str | None = None) -> None:
    await failed(state, client, account)


async def guard_password_check(state: Counters, username: str) -> None:
    """For account routes that re-check the password: limited per username like sign-in."""
    wait = await _retry_after(state, username_key(username))
    if wait is not None:
        raise TooManyRequests(
            f"Too many wrong passwords for this account; try again in {wait} s.",
            retry_after=wait,
        )


async def password_check_failed(state: Counters, username: str) -> None:
    await _count(state, username_key(username))
