"""Workflow approval steps notify like run approvals do (issue 20): workflow event log → outbox →
the delivery worker, over real loopback HTTP to the fake push service (VAPID verified, payload
decrypted with the browser's keys) and a webhook receiver checking Standard Webhooks signatures."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest
from standardwebhooks.webhooks import Webhook

from codeyard.notifications.workflows import message
from tests.conftest import Api, open_api
from tests.integration.test_notifications import add_channel, notify_settings
from tests.integration.test_workflows import execute, save, wait_execution
from tests.support.fake_receivers import Receivers, start_receivers

pytestmark = pytest.mark.anyio


@pytest.fixture
def receivers() -> Iterator[Receivers]:
    recv = start_receivers()
    yield recv
    recv.close()


@pytest.fixture
async def napi(tmp_path: Path) -> AsyncIterator[Api]:
    async for api in open_api(notify_settings(tmp_path)):
        yield api


GATE = {
    "name": "release",
    "inputs": {"what": {"type": "string", "default": "v2"}},
    "steps": [{"id": "gate", "type": "approval", "message": "Ship ${inputs.what}?"}],
}


async def test_an_approval_step_reaches_push_and_webhook_once(
    napi: Api, receivers: Receivers, git_repo: Path
) -> None:
    api = napi
    sub = receivers.browser_subscription("phone")
    assert (await api.post("/api/notifications/subscribe", json=sub)).status_code == 201
    hook = await add_channel(api, "webhook", f"{receivers.base}/hook")
    wf = await save(api, GATE)
    execution = await execute(api, wf, git_repo)

    (push,) = await receivers.wait_for("/push/phone")
    assert push.message is not None and push.vapid_claims is not None
    assert push.message["kind"] == "workflow.approval"
    assert push.message["title"] == "Workflow release: step 'gate' needs approval"
    assert push.message["body"] == "Ship v2?"
    assert push.message["url"] == f"http://codeyard/workflows/executions/{execution}"
    assert push.headers["urgency"] == "high"
    assert "action_token" not in push.message  # decided in the app, not by a one-tap link
    (signed,) = await receivers.wait_for("/hook")
    payload = Webhook(hook["secret"]).verify(signed.body, signed.headers)
    assert payload["type"] == "workflow.approval"
    assert payload["data"]["run_id"] == execution

    decided = await api.post(
        f"/api/workflows/executions/{execution}/steps/gate/decide", json={"decision": "approve"}
    )
    assert decided.status_code == 200, decided.text
    body = await wait_execution(api, execution, "completed", "failed")
    assert body["status"] == "completed", body["status_reason"]
    await anyio.sleep(1.5)  # longer than the source's poll: nothing is announced twice
    assert len(receivers.at("/push/phone")) == 1 and len(receivers.at("/hook")) == 1


def test_a_repeated_request_says_which_attempt() -> None:
    execution = {"id": "wfx_1", "definition": {"name": "release"}}
    first = message(execution, {"key": "gate", "attempt": 0, "message": "a\n  b"})
    again = message(execution, {"key": "gate", "attempt": 1, "message": ""})
    assert first.body == "a b" and "again" not in first.title
    assert again.title == "Workflow release: step 'gate' needs approval (again, attempt 2)"
    assert first.tag != again.tag and first.path == "/workflows/executions/wfx_1"
