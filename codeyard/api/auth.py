"""Who is calling. Today: the admin token; users, sessions and scopes plug in here later."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import Request
from starlette.requests import HTTPConnection

from codeyard.domain.errors import Unauthorized


@dataclass(frozen=True, slots=True)
class Principal:
    kind: str
    name: str
    scopes: frozenset[str]


ADMIN = Principal("admin_token", "admin", frozenset({"admin"}))


def _presented_token(conn: HTTPConnection) -> str | None:
    header = conn.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    return conn.query_params.get("access_token")


def authenticate(conn: HTTPConnection) -> Principal:
    """Resolve the caller or raise 401. Used by HTTP routes and the WebSocket alike."""
    token = _presented_token(conn)
    expected: str = conn.app.state.admin_token
    if token is None:
        raise Unauthorized(
            "Authentication required: send 'Authorization: Bearer <token>' "
            "(the admin token is in <data-dir>/admin.token)."
        )
    if not hmac.compare_digest(token.encode(), expected.encode()):
        raise Unauthorized(
            "The token is not valid. Use the admin token from <data-dir>/admin.token."
        )
    return ADMIN


async def require_principal(request: Request) -> Principal:
    return authenticate(request)
