"""The real Copilot CLI (``copilot --acp``, pinned in clis/): what only Copilot shows — any ACP
command runs as the ``acp`` provider. The scenarios every ACP agent shares (tool calls, asks,
pause and resume, a model error, cancel) are in ``test_agent_contract.py``, with Copilot CLI's
case in ``acp_cases.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from codeyard.agents.acp import CopilotProvider
from codeyard.testing.fake_llm import FakeLLM, Reply
from tests.clis import acp_support as acp
from tests.clis import support
from tests.clis.acp_cases import COPILOT
from tests.conftest import Api

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def _needs_copilot() -> None:
    acp.require(CopilotProvider())


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


async def test_any_acp_command_runs_as_the_acp_provider(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, tmp_path: Path
) -> None:
    api = sqlite_api
    fake.script([Reply(tool_calls=(COPILOT.call("echo hi > hi.txt"),)), Reply(text="Done.")])
    command = [CopilotProvider().path() or "copilot", "--acp", "--model", COPILOT.model]
    opts = COPILOT.options(fake, tmp_path / "home", command=command, permission_mode="auto")
    run = await acp.create(api, git_repo, "acp", None, opts, "Say hi")
    done = await api.wait_status(run["id"], "review", "failed", timeout=acp.WAIT)
    assert done["status"] == "review", done
    assert (support.worktree(api, run) / "hi.txt").read_text() == "hi\n"
    (session,) = [e["data"] for e in await support.events(api, run["id"], "agent.session")]
    assert session["provider"] == "acp" and session["cli_version"] == COPILOT.cli_version
    assert [e["data"]["ok"] for e in await support.events(api, run["id"], "tool.result")] == [True]
    body = {"prompt": "x", "repo_path": str(git_repo), "provider": "acp", "agent_options": {}}
    resp = await api.post("/api/runs", json=body)
    assert resp.status_code == 422 and "command is required" in resp.text
