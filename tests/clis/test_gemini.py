"""The real Gemini CLI (``gemini --acp``, pinned in clis/): what only Gemini has. The scenarios
every ACP agent shares (tool calls, asks, pause and resume, a model error, cancel) are in
``test_agent_contract.py``, with Gemini CLI's case in ``acp_cases.py``.
"""

from __future__ import annotations

import pytest

from codeyard.agents.acp import GeminiProvider
from tests.clis import acp_support as acp
from tests.conftest import Api

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def _needs_gemini() -> None:
    acp.require(GeminiProvider())


async def test_providers_report_the_pinned_clis(sqlite_api: Api) -> None:
    rows = {p["name"]: p for p in (await sqlite_api.get("/api/providers")).json()["data"]}
    gemini = rows["gemini"]
    assert gemini["available"] is True and gemini["problem"] is None
    assert gemini["version"] == "0.61.0" and gemini["path"].endswith("/gemini")
    assert gemini["capabilities"]["approvals"] and gemini["capabilities"]["resume"]
    assert rows["acp"]["capabilities"]["resume"] is False
    assert {"copilot", "opencode"} <= set(rows)
