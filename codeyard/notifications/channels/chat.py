"""Slack and Discord incoming webhooks: a short message with a link back to the run.

Approval links here open the app (sign-in required), never a one-tap link: a chat channel may
be read by people other than the approver. A Slack channel configured with the Slack app's
signing secret and the Slack user ids allowed to answer (``approvers``) also gets Approve and
Reject buttons; Slack posts the click, signed, to
``/api/notifications/slack/{channel_id}/interactions`` (see :mod:`codeyard.notifications.slack`).

A Slack channel given a bot token (``xoxb-…``) and a Slack channel id posts through
``chat.postMessage`` instead of an incoming webhook, and keeps the posted message's channel and
``ts`` (the outcome's ``receipt``) so that once the approval is answered anywhere the message is
replaced with ``chat.update``: no stale buttons. Adding the app-level token (``xapp-…``) makes the
buttons work without a public URL: Codeyard opens a Socket Mode connection to Slack and receives
the clicks there (:mod:`codeyard.notifications.slack_socket`).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from codeyard.notifications.channels.base import (
    Delivery,
    Outcome,
    check_url,
    http_outcome,
    post,
)

if TYPE_CHECKING:
    # httpx (with the Rich and Click it imports) loads on first use, not at the server's
    # start-up (issue 15).
    import httpx

SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,30}$")
SLACK_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,30}$")
SLACK_API = "https://slack.com/api/"
APPROVE, REJECT = "codeyard_approve", "codeyard_reject"


def _token(config: dict[str, Any], key: str, prefix: str, where: str) -> str:
    value = str(config.get(key) or "").strip()
    if value and not re.fullmatch(rf"{prefix}-[A-Za-z0-9-]{{10,250}}", value):
        raise ValueError(f"'{key}' must be the Slack app's {where} ({prefix}-…).")
    return value


def _approvers(config: dict[str, Any]) -> list[str]:
    approvers = config.get("approvers") or []
    if (
        not isinstance(approvers, list)
        or not approvers
        or not all(isinstance(a, str) and SLACK_USER_ID.match(a) for a in approvers)
    ):
        raise ValueError(
            "'approvers' must list the Slack user ids (e.g. U012AB3CD) allowed to answer "
            "approvals from this channel's buttons."
        )
    return sorted(set(approvers))


def slack_config(config: dict[str, Any]) -> dict[str, Any]:
    """What a Slack channel stores (sealed).

    ``{url}``: an incoming webhook, a link only. ``+ {signing_secret, approvers}``: buttons,
    clicks posted to Codeyard's public Request URL. ``{bot_token, channel}`` instead of (or
    beside) ``url``: posted with ``chat.postMessage`` and updated once answered.
    ``+ {app_token, approvers}``: buttons over Socket Mode, no public URL needed."""
    bot = _token(config, "bot_token", "xoxb", "Bot User OAuth Token (OAuth & Permissions)")
    app = _token(config, "app_token", "xapp", "App-Level Token with connections:write")
    out: dict[str, Any] = {}
    if bot:
        target = str(config.get("channel") or "")
        if not SLACK_CHANNEL_ID.match(target):
            raise ValueError(
                "'channel' must be the Slack channel id the bot posts to (e.g. C012AB3CD; "
                "channel details → About), given together with 'bot_token'."
            )
        out |= {"bot_token": bot, "channel": target}
        if config.get("url"):
            out["url"] = check_url(config)
    else:
        out["url"] = check_url(config)
    secret = str(config.get("signing_secret") or "").strip()
    if app:
        if not bot:
            raise ValueError(
                "Socket Mode needs both tokens: 'app_token' (xapp-…) to receive clicks and "
                "'bot_token' (xoxb-…) with 'channel' to post the messages."
            )
        out |= {"app_token": app, "approvers": _approvers(config), "interactive": True}
    if not secret and not app and not config.get("approvers"):
        return out
    if secret or not app:
        if not re.fullmatch(r"[0-9a-f]{32,64}", secret):
            raise ValueError(
                "'signing_secret' must be your Slack app's Signing Secret (Basic Information → "
                "App Credentials: 32 hex characters), given together with 'approvers' (or use "
                "Socket Mode: 'app_token' and 'bot_token' instead, no public URL needed)."
            )
        out |= {"signing_secret": secret, "approvers": _approvers(config), "interactive": True}
    return out


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


def answered_blocks(delivery: Delivery) -> list[dict[str, Any]]:
    """The approval message once answered: what happened, a link, no buttons."""
    m = delivery.message
    text = f"*{m.title}*\n{m.body}\n<{delivery.url}|Open in Codeyard>"
    return [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]


async def slack_api(
    client: httpx.AsyncClient, api_url: str, token: str, method: str, body: dict[str, Any]
) -> tuple[Outcome, dict[str, Any]]:
    """One Slack Web API call: the usual HTTP mapping, then Slack's own ``ok: false``
    (a 200 carrying e.g. ``channel_not_found``, ``invalid_auth``: not worth retrying)."""
    import httpx

    url = api_url.rstrip("/") + "/" + method
    try:
        resp = await client.post(url, json=body, headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        return Outcome(False, None, retry=True, error=f"{type(exc).__name__}: {exc}"), {}
    outcome = http_outcome(resp)
    if not outcome.ok:
        return outcome, {}
    try:
        data = resp.json()
    except ValueError:
        data = {}
    if not isinstance(data, dict) or not data.get("ok"):
        error = data.get("error") if isinstance(data, dict) else None
        return Outcome(
            False, resp.status_code, error=f"Slack {method}: {error or resp.text[:200]}"
        ), {}
    return outcome, data


class SlackChannel:
    kind = "slack"
    user_configurable = True

    def __init__(self, api_url: str = SLACK_API) -> None:
        #: Slack's Web API (a test points it at a fake Slack on loopback).
        self.api_url = api_url

    def validate(self, config: dict[str, Any]) -> dict[str, Any]:
        return slack_config(config)

    async def deliver(self, client: httpx.AsyncClient, delivery: Delivery) -> Outcome:
        m = delivery.message
        text = f"{m.title}: {m.body}"
        bot = delivery.config.get("bot_token")
        if not bot:
            payload = {"text": text, "blocks": slack_blocks(delivery)}
            return await post(client, delivery.config["url"], json=payload)
        posted = (delivery.extra.get("replaces") or {}).get("slack")
        if isinstance(posted, dict) and posted.get("ts"):  # answered: replace the alert
            body = {
                "channel": posted["channel"],
                "ts": posted["ts"],
                "text": text,
                "blocks": answered_blocks(delivery),
            }
            outcome, _ = await slack_api(client, self.api_url, bot, "chat.update", body)
            return outcome
        body = {
            "channel": delivery.config["channel"],
            "text": text,
            "blocks": slack_blocks(delivery),
            "unfurl_links": False,
        }
        outcome, data = await slack_api(client, self.api_url, bot, "chat.postMessage", body)
        if outcome.ok:
            receipt = {
                "slack": {
                    "channel": str(data.get("channel") or ""),
                    "ts": str(data.get("ts") or ""),
                }
            }
            return replace(outcome, receipt=receipt)
        return outcome


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
