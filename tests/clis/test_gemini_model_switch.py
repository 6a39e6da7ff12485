"""A model switch mid-turn reaches a real ACP agent (issue 18): Gemini CLI.

It lists its models in ``session/new``; ``PUT /api/runs/{id}/model`` while a shell tool
runs makes the adapter send ``session/set_model``, and the CLI's next request to the (fake)
model API, in the same turn, is for the new model.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from codeyard.testing.fake_llm import FakeLLM, Reply
from tests.clis import acp_support as acp
from tests.clis.acp_cases import GEMINI
from tests.clis.agent_cases import AgentCase
from tests.clis.support import events, wait_model_calls
from tests.conftest import Api

pytestmark = pytest.mark.anyio
#: The model each agent is switched to.
OTHER = {"gemini": "gemini-2.5-flash"}


def _model_of(case: AgentCase, fake: FakeLLM, index: int) -> str:
    """The model a recorded request asked for (Gemini's API names it in the path)."""
    call = fake.model_calls(case.api)[index]
    return call.path if case.api == "gemini" else str(call.body.get("model"))


@pytest.mark.parametrize("case", [GEMINI], ids=lambda c: c.name)
async def test_a_switch_during_a_tool_reaches_the_next_model_call(
    case: AgentCase, sqlite_api: Api, git_repo: Path, fake: FakeLLM, tmp_path: Path
) -> None:
    acp.require(case.provider())
    api = sqlite_api
    other = OTHER[case.name]
    slow = case.call("sleep 6 && echo ok")
    fake.script([Reply(text="Waiting first.", tool_calls=(slow,)), Reply(text="Done.")])
    opts = case.options(fake, tmp_path / "home", permission_mode="auto")
    run = await acp.create(api, git_repo, case.name, case.model, opts, "Wait, then finish")
    await wait_model_calls(fake, 1)
    with anyio.fail_after(acp.WAIT):  # the tool runs: the turn is between two model calls
        while not await events(api, run["id"], "tool.call"):
            await anyio.sleep(0.05)
    switched = await api.client.put(f"/api/runs/{run['id']}/model", json={"model": other})
    assert switched.status_code == 200, switched.text
    assert switched.json()["applies"] == "next_model_call"

    done = await api.wait_status(run["id"], "review", "failed", timeout=acp.WAIT)
    assert done["status"] == "review", done
    assert done["turns"] == 1
    assert case.model in _model_of(case, fake, 0)
    assert other in _model_of(case, fake, -1)
    applied = await events(api, run["id"], "run.model_applied")
    assert [e["data"] for e in applied] == [{"model": other, "turn": 1}]
