"""Run-creation limits shared by two API servers on one PostgreSQL (issue 16).

Both apps run in this process and share only the database. A caller alternating between them
gets the limit once, not once per server: the window is counted in ``rate_hits``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from codeyard.config import Settings
from codeyard.testing.postgres import PostgresCluster
from tests.conftest import TOKEN, running_api
from tests.support.auth import PASSWORD, add_user, anonymous

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


def _settings(tmp_path: Path, name: str, url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / name,
        database_url=url,
        admin_token=TOKEN,
        bash_timeout_seconds=30,
        run_create_per_minute=3,
    )


async def test_the_run_creation_limit_is_one_window_for_the_cluster(
    pg_cluster: PostgresCluster, tmp_path: Path, git_repo: Path
) -> None:
    url = pg_cluster.create_database()
    body = {"prompt": "limited", "repo_path": str(git_repo), "provider": "script", "draft": True}
    async with (
        running_api(_settings(tmp_path, "a", url)) as a,
        running_api(_settings(tmp_path, "b", url)) as b,
    ):
        codes = [(await api.post("/api/runs", json=body)).status_code for api in (a, b, a)]
        assert codes == [201, 201, 201]
        for api in (b, a):  # the fourth and fifth in the minute, on either server
            refused = await api.post("/api/runs", json=body)
            assert refused.status_code == 429, refused.text
            assert 1 <= int(refused.headers["Retry-After"]) <= 60
            assert "CODEYARD_RUN_CREATE_PER_MINUTE" in refused.json()["detail"]


async def test_sign_in_failures_on_one_server_count_on_the_other(
    pg_cluster: PostgresCluster, tmp_path: Path
) -> None:
    url = pg_cluster.create_database()
    async with (
        running_api(_settings(tmp_path, "a", url)) as a,
        running_api(_settings(tmp_path, "b", url)) as b,
    ):
        await add_user(a, "gil", "member")
        await add_user(a, "hal", "member")
        wrong = {"username": "gil", "password": "guess-guess"}
        async with anonymous(a) as on_a, anonymous(b) as on_b:
            first = time.monotonic()
            for client in (on_a, on_b, on_a, on_b, on_a):  # five between them, not five each
                assert (await client.post("/api/auth/login", json=wrong)).status_code == 401
            right = {"username": "gil", "password": PASSWORD}
            refused = await on_b.post("/api/auth/login", json=right)
            assert refused.status_code == 429, refused.text
            # The window counts from the first failure: a loaded machine may take seconds
            # over the five sign-ins (each hashes a password), so the bound follows the clock.
            spent = math.ceil(time.monotonic() - first)
            assert 60 - spent - 1 <= int(refused.headers["Retry-After"]) <= 60
            assert "from this address" in refused.json()["detail"]
            # The address is spent too (both servers see the same client): another account
            # from it is refused on either server, before its password is even checked.
            other = {"username": "hal", "password": PASSWORD}
            assert (await on_a.post("/api/auth/login", json=other)).status_code == 429
            token = await on_b.post("/api/auth/token-login", json={"token": TOKEN})
            assert token.status_code == 429
        for api in (a, b):
            state = api.app.state.auth
            assert state.shared is not None  # counted in the database, not in the process
            assert state.limiter.retry_after("addr:127.0.0.1") is None


async def test_a_successful_sign_in_clears_its_username_on_every_server(
    pg_cluster: PostgresCluster, tmp_path: Path
) -> None:
    url = pg_cluster.create_database()
    async with (
        running_api(_settings(tmp_path, "a", url)) as a,
        running_api(_settings(tmp_path, "b", url)) as b,
    ):
        await add_user(a, "ivy", "member")
        state_a, state_b = a.app.state.auth, b.app.state.auth
        for _ in range(4):
            await state_a.shared.failed("user:ivy")
        assert await state_b.shared.retry_after("user:ivy") is None
        await state_b.shared.failed("user:ivy")
        assert 55 <= (await state_a.shared.retry_after("user:ivy") or 0) <= 60
        await state_b.shared.reset("user:ivy")
        assert await state_a.shared.retry_after("user:ivy") is None
