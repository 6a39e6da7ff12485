"""Users, tokens and signed-in clients for the auth tests (all through the public API)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from tests.conftest import Api

PASSWORD = "correct horse battery"


def anonymous(api: Api) -> httpx.AsyncClient:
    """A client of the same app with no credentials (it keeps the cookies it is given)."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api.app), base_url="http://localhost"
    )


def bearer(api: Api, token: str) -> httpx.AsyncClient:
    client = anonymous(api)
    client.headers["Authorization"] = f"Bearer {token}"
    return client


async def add_user(api: Api, username: str, role: str, password: str = PASSWORD) -> dict[str, Any]:
    resp = await api.post(
        "/api/users", json={"username": username, "password": password, "role": role}
    )
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


@asynccontextmanager
async def sign_in(
    api: Api, username: str, password: str = PASSWORD
) -> AsyncIterator[httpx.AsyncClient]:
    """A client holding the session cookies of ``username``, sending the CSRF header."""
    async with anonymous(api) as client:
        body = {"username": username, "password": password}
        resp = await client.post("/api/auth/login", json=body)
        assert resp.status_code == 200, resp.text
        client.headers["X-CSRF-Token"] = resp.json()["csrf_token"]
        yield client


async def token_of(api: Api, username: str, scopes: list[str], password: str = PASSWORD) -> str:
    """A personal access token of ``username`` (created through their own session)."""
    async with sign_in(api, username, password) as client:
        resp = await client.post("/api/tokens", json={"name": "test", "scopes": scopes})
    assert resp.status_code == 201, resp.text
    token: str = resp.json()["token"]
    return token
