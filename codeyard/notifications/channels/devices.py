"""Native apps (APNs for iOS, FCM for Android) through a pluggable sender.

The built-in :class:`RelaySender` posts each platform's own payload shape to a relay URL you
configure (``CODEYARD_PUSH_RELAY_URL``); with the app's own credentials (an APNs .p8 key, an FCM
service account) :class:`~codeyard.notifications.channels.native.DirectSender` talks to Apple
and Google directly. Another sender plugs in by registering a :class:`DeviceChannel` built
with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from codeyard.notifications.channels.base import Delivery, Outcome, post

if TYPE_CHECKING:
    # httpx (with the Rich and Click it imports) loads on first use, not at the server's
    # start-up (issue 15).
    import httpx

PLATFORMS = ("apns", "fcm")


class DeviceSender(Protocol):
    async def send(
        self, client: httpx.AsyncClient, platform: str, token: str, delivery: Delivery
    ) -> Outcome: ...


def apns_payload(delivery: Delivery) -> dict[str, Any]:
    m = delivery.message
    return {
        "aps": {
            "alert": {"title": m.title, "body": m.body},
            "thread-id": m.run_id,
            "category": "APPROVAL" if delivery.action_token else "RUN",
        },
        "url": delivery.url,
        "approval_id": m.approval_id,
        "action_token": delivery.action_token,
    }


def fcm_payload(token: str, delivery: Delivery) -> dict[str, Any]:
    m = delivery.message
    data = {"url": delivery.url, "kind": m.kind, "run_id": m.run_id}
    if m.approval_id:
        data["approval_id"] = m.approval_id
    if delivery.action_token:
        data["action_token"] = delivery.action_token
    return {
        "message": {
            "token": token,
            "notification": {"title": m.title, "body": m.body},
            "android": {"collapse_key": m.tag, "priority": "high" if m.urgent else "normal"},
            "data": data,
        }
    }


class RelaySender:
    def __init__(self, url: str, token: str) -> None:
        self._url = url.rstrip("/")
        self._token = token

    async def send(
        self, client: httpx.AsyncClient, platform: str, token: str, delivery: Delivery
    ) -> Outcome:
        if not self._url:
            return Outcome(False, None, error="no push relay configured (CODEYARD_PUSH_RELAY_URL)")
        headers = {"authorization": f"Bearer {self._token}"} if self._token else {}
        if platform == "apns":
            headers |= {
                "apns-push-type": "alert",
                "apns-collapse-id": delivery.message.tag[:64],
                "apns-priority": "10" if delivery.message.urgent else "5",
            }
            return await post(
                client,
                f"{self._url}/apns/3/device/{token}",
                json=apns_payload(delivery),
                headers=headers,
            )
        return await post(
            client, f"{self._url}/fcm/v1/send", json=fcm_payload(token, delivery), headers=headers
        )


class DeviceChannel:
    kind = "device"
    user_configurable = False

    def __init__(self, sender: DeviceSender) -> None:
        self.sender = sender

    def validate(self, config: dict[str, Any]) -> dict[str, Any]:
        return config

    async def deliver(self, client: httpx.AsyncClient, delivery: Delivery) -> Outcome:
        cfg = delivery.config
        return await self.sender.send(client, cfg["platform"], cfg["token"], delivery)
