"""Slack Approve/Reject buttons and Apprise channels, over real loopback HTTP.

The fake Slack is the loopback receiver (``tests/support/fake_receivers.py``): it takes the
incoming-webhook message with its buttons and the ``response_url`` follow-ups. Slack's side of a
click (a form-encoded ``payload`` signed ``v0`` with the app's signing secret) is built here the
way Slack builds it, and posted to Codeyard's Request URL without a bearer token. The Apprise
channel talks the ntfy protocol to the same receiver (Apprise's own ntfy client, no mock).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.conftest import Api, open_api
from tests.integration.test_notifications import (
    ask_run,
    notify_settings,
    pending_approval,
    wait_outbox,
)
from tests.support.fake_receivers import Receivers, start_receivers

pytestmark = pytest.mark.anyio
SECRET = "0123456789abcdef0123456789abcdef"
APPROVER = "U0APPROVER1"
PUBLIC = {"Authorization": ""}


@pytest.fixture
def receivers() -> Iterator[Receivers]:
    recv = start_receivers()
    yield recv
    recv.close()


@pytest.fixture
async def napi(tmp_path: Path) -> AsyncIterator[Api]:
    async for api in open_api(notify_settings(tmp_path)):
        yield api


def slack_click(
    button: dict[str, Any], user: str, response_url: str, secret: str = SECRET, age: int = 0
) -> tuple[bytes, dict[str, str]]:
    """A block_actions interaction as Slack posts it: form-encoded, signed v0."""
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": "someone"},
        "response_url": response_url,
        "actions": [{"action_id": button["action_id"], "value": button["value"]}],
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    ts = str(int(time.time()) - age)
    mac = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return body, {
        **PUBLIC,
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={mac}",
    }


def buttons(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (actions,) = [b for b in message["blocks"] if b["type"] == "actions"]
    return {e["action_id"]: e for e in actions["elements"]}


async def test_a_slack_button_answers_the_approval_once_through_the_approvals_door(
    napi: Api, receivers: Receivers, git_repo: Path
) -> None:
    api = napi
    made = await api.post(
        "/api/notifications/channels",
        json={
            "kind": "slack",
            "name": "team",
            "config": {
                "url": f"{receivers.base}/slack",
                "signing_secret": SECRET,
                "approvers": [APPROVER],
            },
        },
    )
    assert made.status_code == 201, made.text
    channel = made.json()["id"]
    assert "signing_secret" not in made.text  # stored sealed, never shown
    run_id = await ask_run(api, git_repo)
    approval = await pending_approval(api, run_id)
    (msg,) = await receivers.wait_for("/slack")
    btn = buttons(msg.json())
    assert set(btn) == {"codeyard_approve", "codeyard_reject"}
    token = btn["codeyard_approve"]["value"]
    url = f"/api/notifications/slack/{channel}/interactions"
    respond = f"{receivers.base}/slack/respond"

    # A chat token never works on the public one-tap link.
    one_tap = await api.post(
        f"/api/notifications/actions/{token}", json={"decision": "approved"}, headers=PUBLIC
    )
    assert one_tap.status_code == 403
    # Not Slack: a wrong secret, then a replay older than five minutes.
    for body, headers in (
        slack_click(btn["codeyard_approve"], APPROVER, respond, secret="f" * 32),
        slack_click(btn["codeyard_approve"], APPROVER, respond, age=400),
    ):
        refused = await api.post(url, content=body, headers=headers)
        assert refused.status_code == 401 and "signing_secret" in refused.json()["detail"]
    # Signed, but the clicker is not an approver: nothing happens, they alone are told.
    body, headers = slack_click(btn["codeyard_approve"], "U0STRANGER", respond)
    stranger = await api.post(url, content=body, headers=headers)
    assert stranger.status_code == 200 and stranger.json()["ok"] is False
    (told,) = await receivers.wait_for("/slack/respond")
    assert told.json()["response_type"] == "ephemeral" and "not an approver" in told.json()["text"]
    pending = (await api.get(f"/api/approvals?run_id={run_id}")).json()["data"][0]
    assert pending["status"] == "pending"

    body, headers = slack_click(btn["codeyard_approve"], APPROVER, respond)
    answered = await api.post(url, content=body, headers=headers)
    assert answered.status_code == 200, answered.text
    assert answered.json() == {"ok": True, "text": answered.json()["text"]}
    assert answered.json()["text"].startswith(f"Approved by <@{APPROVER}>")
    row = (await api.get(f"/api/approvals?run_id={run_id}")).json()["data"][0]
    assert row["id"] == approval["id"] and row["status"] == "approved"
    assert row["decided_by"] == f"admin via Slack ({APPROVER})"
    replaced = (await receivers.wait_for("/slack/respond", 2))[1].json()
    assert replaced["replace_original"] is True and "Approved" in replaced["text"]
    await api.wait_status(run_id, "review")

    # Single use: the other button of the same message (same token) no longer answers.
    body, headers = slack_click(btn["codeyard_reject"], APPROVER, respond)
    again = await api.post(url, content=body, headers=headers)
    assert again.status_code == 200 and again.json()["ok"] is False
    assert "already" in again.json()["text"]
    row = (await api.get(f"/api/approvals?run_id={run_id}")).json()["data"][0]
    assert row["status"] == "approved"
    audit = (await api.get(f"/api/runs/{run_id}/events?types=approval.resolved")).json()
    resolved = [e for e in audit["data"] if e["type"] == "approval.resolved"]
    assert len(resolved) == 1


async def test_slack_interactivity_refuses_what_is_not_set_up_or_not_slack(
    napi: Api, receivers: Receivers
) -> None:
    api = napi
    plain = await api.post(
        "/api/notifications/channels",
        json={"kind": "slack", "name": "plain", "config": {"url": f"{receivers.base}/slack"}},
    )
    body, headers = slack_click({"action_id": "codeyard_approve", "value": "x"}, APPROVER, "")
    for channel in (plain.json()["id"], "nch_missing"):
        resp = await api.post(
            f"/api/notifications/slack/{channel}/interactions", content=body, headers=headers
        )
        assert resp.status_code == 401 and "approvers" in resp.json()["detail"]
    for config, fix in (
        ({"signing_secret": SECRET}, "approvers"),
        ({"signing_secret": "short", "approvers": [APPROVER]}, "Signing Secret"),
        ({"signing_secret": SECRET, "approvers": ["alice"]}, "U012AB3CD"),
    ):
        bad = await api.post(
            "/api/notifications/channels",
            json={"kind": "slack", "name": "x", "config": {"url": "https://h/x", **config}},
        )
        assert bad.status_code == 400 and fix in bad.json()["detail"], bad.text
    made = await api.post(
        "/api/notifications/channels",
        json={
            "kind": "slack",
            "name": "team",
            "config": {"url": "https://h/x", "signing_secret": SECRET, "approvers": [APPROVER]},
        },
    )
    url = f"/api/notifications/slack/{made.json()['id']}/interactions"
    garbage = b"payload=%7Bnot-json"
    ts = str(int(time.time()))
    mac = hmac.new(SECRET.encode(), f"v0:{ts}:".encode() + garbage, hashlib.sha256).hexdigest()
    resp = await api.post(
        url,
        content=garbage,
        headers={**PUBLIC, "X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={mac}"},
    )
    assert resp.status_code == 400 and "payload" in resp.json()["detail"]
    listed = (await api.get("/api/notifications/channels")).json()["data"]
    assert len(listed) == 2  # nothing half-created by the refused ones


async def test_an_apprise_channel_reaches_ntfy_and_keeps_its_url_sealed(
    napi: Api, receivers: Receivers, git_repo: Path
) -> None:
    api = napi
    host = receivers.base.removeprefix("http://")
    secret_url = f"ntfy://reader:s3cret-pass@{host}/codeyard-alerts"
    made = await api.post(
        "/api/notifications/channels",
        json={"kind": "apprise", "name": "phone", "config": {"url": secret_url}},
    )
    assert made.status_code == 201, made.text
    assert "s3cret" not in made.text
    assert "s3cret" not in (await api.get("/api/notifications/channels")).text
    tested = await api.post(f"/api/notifications/channels/{made.json()['id']}/test")
    assert tested.json()["ok"] is True, tested.text
    (test_msg,) = await receivers.wait_for("/")
    assert test_msg.json()["topic"] == "codeyard-alerts"
    assert test_msg.json()["title"] == "Codeyard test notification"
    assert test_msg.headers["authorization"].startswith("Basic ")

    run_id = await ask_run(api, git_repo)
    await pending_approval(api, run_id)
    sent = (await receivers.wait_for("/", 2))[1].json()
    assert "needs approval" in sent["title"] + sent["message"]
    assert f"http://codeyard/runs/{run_id}" in sent["message"]
    assert "action" not in json.dumps(sent)  # no approval capability in a chat message
    await wait_outbox(api, run_id, lambda rs: rs and all(r["status"] == "sent" for r in rs))

    # The ntfy server fails (503): the outbox row is retried, not lost.
    receivers.responses["/"] = [503]
    failed = await api.post(f"/api/notifications/channels/{made.json()['id']}/test")
    assert failed.json()["ok"] is False and "ntfy" in failed.json()["error"]
    bad = await api.post(
        "/api/notifications/channels",
        json={"kind": "apprise", "name": "x", "config": {"url": "nosuchservice://x"}},
    )
    assert bad.status_code == 400 and "ntfy://" in bad.json()["detail"]
