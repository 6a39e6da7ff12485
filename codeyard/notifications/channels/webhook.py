"""Generic webhooks signed the Standard Webhooks way (HMAC-SHA256 over id.timestamp.body).

Receivers verify with any Standard Webhooks library and the ``whsec_…`` secret shown once when
the channel was added; ``webhook-id`` stays the same across retries so they can deduplicate.
"""

from __future__ import annotations

import base64
import json
import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from standardwebhooks.webhooks import Webhook

from codeyard.notifications.channels.base import Delivery, Outcome, check_url, post

if TYPE_CHECKING:
    # httpx (with the Rich and Click it imports) loads on first use, not at the server's
    # start-up (issue 15).
    import httpx


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def body_of(delivery: Delivery) -> dict[str, Any]:
    m = delivery.message
    return {
        "type": m.kind,
        "timestamp": datetime.now(UTC).isoformat(),
        "data": {
            "title": m.title,
            "body": m.body,
            "run_id": m.run_id,
            "approval_id": m.approval_id,
            "tag": m.tag,
            "url": delivery.url,
        },
    }


class WebhookChannel:
    kind = "webhook"
    user_configurable = True

    def validate(self, config: dict[str, Any]) -> dict[str, Any]:
        url = check_url(config)
        secret = str(config.get("secret") or new_secret())
        try:
            Webhook(secret)
        except Exception as exc:  # the library's own check of the secret's format
            raise ValueError("'secret' must be a whsec_… base64 secret (or leave it out).") from exc
        return {"url": url, "secret": secret}

    async def deliver(self, client: httpx.AsyncClient, delivery: Delivery) -> Outcome:
        payload = json.dumps(body_of(delivery), separators=(",", ":"))
        now = datetime.now(UTC)
        signature = Webhook(delivery.config["secret"]).sign(delivery.message_id, now, payload)
        headers = {
            "content-type": "application/json",
            "webhook-id": delivery.message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature,
        }
        return await post(client, delivery.config["url"], content=payload, headers=headers)
