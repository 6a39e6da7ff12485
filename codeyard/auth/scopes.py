"""Scopes and roles (API.md "Auth and users").

A principal's scopes are always *expanded*: ``admin`` implies every other scope, so a route's
check is plain membership. A token's effective scopes are its own scopes intersected with its
user's role scopes, so demoting a user narrows every token they hold at once.
"""

from __future__ import annotations

from collections.abc import Iterable

READ_SCOPES = ("runs:read", "settings:read")
SCOPES = (
    "runs:read",
    "runs:write",
    "runs:control",
    "approvals:resolve",
    "git:merge",
    "git:push",
    "settings:read",
    "settings:write",
    "admin",
)
ALL = frozenset(SCOPES)
ROLES = ("admin", "member", "viewer")
ROLE_SCOPES: dict[str, frozenset[str]] = {
    "admin": ALL,
    "member": ALL - {"admin"},
    "viewer": frozenset(READ_SCOPES),
}
#: Scopes that act on one run: a non-admin may use them only on runs they created.
RUN_ACTING = frozenset({"runs:write", "runs:control", "approvals:resolve", "git:merge", "git:push"})


def expand(scopes: Iterable[str]) -> frozenset[str]:
    """``scopes`` with ``admin`` expanded to every scope (unknown names dropped)."""
    given = frozenset(scopes) & ALL
    return ALL if "admin" in given else given


def for_role(role: str) -> frozenset[str]:
    return ROLE_SCOPES.get(role, frozenset())


def effective(token_scopes: Iterable[str], role: str) -> frozenset[str]:
    """What a token may do: its scopes, never more than its user's role allows."""
    return expand(token_scopes) & for_role(role)


def unknown(scopes: Iterable[str]) -> list[str]:
    return sorted(set(scopes) - ALL)
