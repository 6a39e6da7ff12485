"""What a channel is given and what it answers."""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from codeyard.notifications.messages import Notification

if TYPE_CHECKING:
    # httpx (with the Rich and Click it imports) loads on first use, not at the server's
    # start-up (issue 15).
    import httpx


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    status_code: int | None = None
    #: Worth trying again later (429, 5xx, a network error).
    retry: bool = False
    #: The endpoint is gone for good (404/410): forget the subscription or device.
    prune: bool = False
    error: str | None = None
    #: Seconds the receiver asked us to wait (``Retry-After``).
    retry_after: float | None = None
    #: What the receiver said it made (a Slack message's channel and ``ts``), kept with the
    #: outbox row so a later message can replace it.
    receipt: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message to one target, with what a channel needs to send it."""

    message: Notification
    #: The target's decrypted configuration (URL, secret, push keys, device token…).
    config: dict[str, Any]
    #: Stable across retries of the same outbox row: receivers deduplicate on it.
    message_id: str
    #: Absolute link to the run in the web UI.
    url: str
    #: Absolute one-tap link answering the approval (push targets only), else None.
    action_url: str | None = None
    #: The action token itself, for a service worker's Approve/Reject buttons.
    action_token: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Channel(Protocol):
    kind: str
    #: Whether users add targets of this kind through ``/api/notifications/channels``.
    user_configurable: bool

    def validate(self, config: dict[str, Any]) -> dict[str, Any]:
        """The config to store (raise ``ValueError`` with a helpful message if it is bad)."""
        ...

    async def deliver(self, client: httpx.AsyncClient, delivery: Delivery) -> Outcome: ...


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def http_outcome(resp: httpx.Response) -> Outcome:
    """The usual mapping of an HTTP answer: 2xx ok, 429/5xx retry, 404/410 prune, else fail."""
    code = resp.status_code
    if 200 <= code < 300:
        return Outcome(True, code)
    error = f"HTTP {code}: {resp.text[:200]}"
    if code == 429 or code >= 500:
        return Outcome(
            False,
            code,
            retry=True,
            error=error,
            retry_after=_retry_after(resp.headers.get("retry-after")),
        )
    return Outcome(False, code, prune=code in (404, 410), error=error)


async def post(client: httpx.AsyncClient, url: str, **kwargs: Any) -> Outcome:
    import httpx

    try:
        return http_outcome(await client.post(url, **kwargs))
    except httpx.HTTPError as exc:
        return Outcome(False, None, retry=True, error=f"{type(exc).__name__}: {exc}")


def check_url(config: dict[str, Any], key: str = "url") -> str:
    url = str(config.get(key) or "")
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"'{key}' must be an http(s) URL, e.g. https://hooks.slack.com/services/…")
    return url
