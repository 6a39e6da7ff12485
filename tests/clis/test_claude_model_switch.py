"""A model switch mid-turn reaches the real Claude Code binary (issue 18).

``PUT /api/runs/{id}/model`` while a tool runs: the adapter sends Claude Code's ``set_model``
control request, the CLI's next request to the (fake) model API names the new model, and
``run.model_applied`` records it, all within the same turn.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from codeyard.testing.fake_llm import FakeLLM, Reply, ToolCall
from tests.clis.claude_support import MODEL, WAIT, create, options
from tests.clis.support import events, wait_model_calls
from tests.conftest import Api

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("needs_claude")]
OTHER = "claude-haiku-4-5"


async def test_a_switch_during_a_tool_reaches_the_next_model_call(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, tmp_path: Path
) -> None:
    api = sqlite_api
    slow = ToolCall("Bash", {"command": "sleep 6 && echo ok", "description": "Wait"})
    fake.script([Reply(text="Waiting first.", tool_calls=(slow,)), Reply(text="Done.")])
    run = await create(api, git_repo, options(fake, tmp_path / "home"), "Wait, then finish")
    await wait_model_calls(fake, 1)
    with anyio.fail_after(WAIT):  # the tool runs: the turn is between two model calls
        while not [e for e in await events(api, run["id"]) if e["type"] == "tool.call"]:
            await anyio.sleep(0.05)
    switched = await api.client.put(f"/api/runs/{run['id']}/model", json={"model": OTHER})
    assert switched.status_code == 200, switched.text
    assert switched.json()["applies"] == "next_model_call"

    done = await api.wait_status(run["id"], "review", "failed", timeout=WAIT)
    assert done["status"] == "review", done
    assert done["turns"] == 1  # the same turn
    models = [call.body.get("model") for call in fake.model_calls("anthropic")]
    assert models[0] == MODEL and models[-1] == OTHER, models
    applied = [e for e in await events(api, run["id"]) if e["type"] == "run.model_applied"]
    assert [e["data"] for e in applied] == [{"model": OTHER, "turn": 1}]
