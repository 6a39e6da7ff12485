"""Run-creation limits shared by two API servers on one PostgreSQL (issue 16).

Both apps run in this process and share only the database. A caller alternating between them
gets the limit once, not once per server: the window is counted in ``rate_hits``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from codeyard.config import Settings
from codeyard.testing.postgres import PostgresCluster
from tests.conftest import TOKEN, running_api

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
