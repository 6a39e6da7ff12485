"""Slack and Discord incoming webhooks: a short message with a link back to the run.

Approval links here open the app (sign-in required), never a one-tap link: a chat channel may
be read by people other than the approver. A Slack channel configured with the Slack app's
signing secret and the Slack user ids allowed to answer (``approvers``) also gets Approve and
Reject buttons; Slack posts the click, signed, to
``/api/notifications/slack/{channel_id}/interactions`` (see :mod:`codeyard.notifications.slack`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from codeyard.notifications.channels.base import Delivery, Outcome, check_url, post

if TYPE_CHECKING:
    # httpx (with the Rich and Click it imports) loads on first use, not at the server's
    # start-up (issue 15).
    import httpx

SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,30}$")
APPROVE, REJECT = "codeyard_approve", "codeyard_reject"


def slack_config(config: dict[str, Any]) -> dict[str, Any]:
    """``{url}``, or ``{url, signing_secret, approvers}`` for Approve/Reject buttons."""
    out: dict[str, Any] = {"url": check_url(config)}
    secret = str(config.get("signing_secret") or "").strip()
    approvers = config.get("approvers") or []
    if not secret and not approvers:
        return out
    if not re.fullmatch(r"[0-9a-f]{32,64}", secret):
        raise ValueError(
            "'signing_secret' must be your Slack app's Signing Secret (Basic Information → "
            "App Credentials: 32 hex characters), given together with 'approvers'."
        )
    if (
        not isinstance(approvers, list)
        or not approvers
        or not all(isinstance(a, str) and SLACK_USER_ID.match(a) for a in approvers)
    ):
        raise ValueError(
            "'approvers' must list the Slack user ids (e.g. U012AB3CD) allowed to answer "
            "approvals from this channel's buttons."
        )
    approvers = sorted(set(approvers))
    return out | {"signing_secret": secret, "approvers": approvers, "interactive": True}


def slack_blocks(delivery: Delivery) -> list[dict[str, Any]]:
    m = delivery.message
    text = f"*{m.title}*\n{m.body}\n<{delivery.url}|Open in Codeyard>"
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
    if delivery.action_token:  # only issued for an interactive channel and a non-gate approval
        blocks.append(
            {
                "type": "actions",
                "block_id": "codeyard_answer",
                "elements": [
                    {
                        "type": "button",
                        "action_id": APPROVE,
                        "style": "primary",
                        "text": {"type": "plain_text", "text": "Approve"},
                        "value": delivery.action_token,
                    },
                    {
                        "type": "button",
                        "action_id": REJECT,
                        "style": "danger",
                        "text": {"type": "plain_text", "text": "Reject"},
                        "value": delivery.action_token,
                    },
                ],
            }
        )
    return blocks


class SlackChannel:
    kind = "slack"
    user_configurable = True

    def validate(self, config: dict[str, Any]) -> dict[str, Any]:
        return slack_config(config)

    async def deliver(self, client: httpx.AsyncClient, delivery: Delivery) -> Outcome:
        m = delivery.message
        payload = {"text": f"{m.title}: {m.body}", "blocks": slack_blocks(delivery)}
        return await post(client, delivery.config["url"], json=payload)


class DiscordChannel:
    kind = "discord"
    user_configurable = True

    def validate(self, config: dict[str, Any]) -> dict[str, Any]:
        return {"url": check_url(config)}

    async def deliver(self, client: httpx.AsyncClient, delivery: Delivery) -> Outcome:
        m = delivery.message
        payload = {
            "content": m.title,
            "embeds": [{"title": m.title, "description": m.body, "url": delivery.url}],
            "allowed_mentions": {"parse": []},
        }
        return await post(client, delivery.config["url"], json=payload)
