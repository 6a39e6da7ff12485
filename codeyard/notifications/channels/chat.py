"""Slack and Discord incoming webhooks: a short message with a link back to the run.

Approval links here open the app (sign-in required), never a one-tap action token: a chat
channel may be read by people other than the approver.
"""

from __future__ import annotations

from typing import Any

import httpx

from codeyard.notifications.channels.base import Delivery, Outcome, check_url, post


class SlackChannel:
    kind = "slack"
    user_configurable = True

    def validate(self, config: dict[str, Any]) -> dict[str, Any]:
        return {"url": check_url(config)}

    async def deliver(self, client: httpx.AsyncClient, delivery: Delivery) -> Outcome:
        m = delivery.message
        text = f"*{m.title}*\n{m.body}\n<{delivery.url}|Open in Codeyard>"
        payload = {
            "text": f"{m.title}: {m.body}",
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
        }
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
