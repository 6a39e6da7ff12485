"""Every service Apprise speaks (ntfy, Telegram, email, Matrix, Pushover, …) as one channel kind.

A channel of kind ``apprise`` holds one Apprise URL (``ntfy://host/topic``,
``tgram://bot-token/chat-id``, ``mailtos://user:password@host``…). Such URLs carry their
credentials, so they are stored sealed like every channel config and never shown again; the
delivery log names the service and Apprise's privacy-masked URL only. Apprise is used rather
than one client per service: it is maintained, covers ~100 services and validates URLs itself.
Apprise reports success or failure per service but not the HTTP status, so every failure is
retried with the worker's backoff (none is pruned).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from codeyard.notifications.channels.base import Delivery, Outcome

if TYPE_CHECKING:
    # httpx (with the Rich and Click it imports) loads on first use, not at the server's
    # start-up (issue 15).
    import apprise
    import httpx


def _apprise_for(url: str) -> apprise.Apprise:
    import apprise  # ~90 ms: loaded when an Apprise channel is first used, not at start-up

    # No plug-in directories (a channel a user adds only ever reaches Apprise's own services)
    # and the same 10 s bound the worker's HTTP client has.
    asset = apprise.AppriseAsset(plugin_paths=[], service_timeout=10)
    client = apprise.Apprise(asset=asset)
    with warnings.catch_warnings():
        # The first add() imports every Apprise plug-in; its e-mail one imports the stdlib's
        # deprecated ``imghdr`` (a DeprecationWarning that is not Codeyard's to fix).
        warnings.simplefilter("ignore", DeprecationWarning)
        added = client.add(url)
    if not added:
        raise ValueError(
            "'url' is not an Apprise URL Codeyard can use, e.g. ntfy://ntfy.sh/my-topic, "
            "tgram://<bot-token>/<chat-id> or mailtos://user:password@example.com "
            "(see https://github.com/caronc/apprise/wiki)."
        )
    return client


class AppriseChannel:
    kind = "apprise"
    user_configurable = True

    def validate(self, config: dict[str, Any]) -> dict[str, Any]:
        url = str(config.get("url") or "").strip()
        if not url or "://" not in url:
            raise ValueError("'url' must be an Apprise URL, e.g. ntfy://ntfy.sh/my-topic.")
        _apprise_for(url)
        return {"url": url}

    async def deliver(self, client: httpx.AsyncClient, delivery: Delivery) -> Outcome:
        m = delivery.message
        notifier = _apprise_for(delivery.config["url"])
        body = f"{m.body}\n{delivery.url}"
        result = await notifier.async_notify(body=body, title=m.title)
        if result:
            return Outcome(True, None)
        services = ", ".join(f"{r.name} {r.status.name.lower()}" for r in result.results)
        return Outcome(
            False, None, retry=True, error=f"apprise: {services or result.status.name.lower()}"
        )
