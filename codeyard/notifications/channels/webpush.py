"""Web push (RFC 8030/8291/8292): payload encrypted to the browser's keys, VAPID-signed.

``pywebpush`` encrypts (aes128gcm) and ``py_vapid`` signs; the request goes out on the shared
httpx client. The ``Topic`` header is derived from the notification's tag, so the push service
replaces an undelivered approval alert with its resolution, and the service worker shows both
under the same tag (the newer one replaces the older on screen).
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from py_vapid import Vapid02

from codeyard.notifications.channels.base import Delivery, Outcome, post

if TYPE_CHECKING:
    # httpx (with the Rich and Click it imports) loads on first use, not at the server's
    # start-up (issue 15).
    import httpx

#: Keep payloads under the ~4 KB every push service accepts.
MAX_PAYLOAD = 3800


def topic_for(tag: str) -> str:
    """RFC 8030 ``Topic``: at most 32 characters of the URL-safe base64 alphabet."""
    return base64.urlsafe_b64encode(hashlib.sha256(tag.encode()).digest()).decode()[:32]


def payload_of(delivery: Delivery) -> bytes:
    m = delivery.message
    data: dict[str, Any] = {
        "kind": m.kind,
        "title": m.title,
        "body": m.body,
        "tag": m.tag,
        "url": delivery.url,
        "run_id": m.run_id,
        "approval_id": m.approval_id,
    }
    if delivery.action_token:
        data["action_token"] = delivery.action_token
        data["action_url"] = delivery.action_url
    raw = json.dumps(data, separators=(",", ":")).encode()
    if len(raw) > MAX_PAYLOAD:
        data["body"] = m.body[:200]
        raw = json.dumps(data, separators=(",", ":")).encode()
    return raw


class WebPushChannel:
    kind = "webpush"
    user_configurable = False

    def __init__(self, vapid: Vapid02, subject: str) -> None:
        self._vapid = vapid
        self._subject = subject

    def validate(self, config: dict[str, Any]) -> dict[str, Any]:
        return config

    async def deliver(self, client: httpx.AsyncClient, delivery: Delivery) -> Outcome:
        sub = delivery.config
        info = {"endpoint": sub["endpoint"], "keys": {"p256dh": sub["p256dh"], "auth": sub["auth"]}}
        from pywebpush import WebPusher  # with aiohttp and requests: loaded on first push

        try:
            encoded = WebPusher(info).encode(payload_of(delivery), "aes128gcm")
        except Exception as exc:  # malformed subscription keys: never deliverable
            return Outcome(False, None, prune=True, error=f"bad subscription keys: {exc}")
        parts = urlsplit(sub["endpoint"])
        claims = {
            "sub": self._subject,
            "aud": f"{parts.scheme}://{parts.netloc}",
            "exp": int(time.time()) + 12 * 3600,
        }
        headers = {
            **self._vapid.sign(claims),
            "content-encoding": "aes128gcm",
            "content-type": "application/octet-stream",
            "ttl": str(24 * 3600),
            "topic": topic_for(delivery.message.tag),
            "urgency": "high" if delivery.message.urgent else "normal",
        }
        return await post(client, sub["endpoint"], content=encoded["body"], headers=headers)
