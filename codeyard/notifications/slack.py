"""Answering an approval from a Slack message's Approve / Reject buttons.

Slack posts each click to the channel's Request URL
(``/api/notifications/slack/{channel_id}/interactions``) as a form field ``payload`` (JSON),
signed ``v0=HMAC-SHA256(signing secret, "v0:<timestamp>:<body>")``. A click counts only if

- the signature matches the secret stored (sealed) with that channel and the timestamp is
  within five minutes (``slack_sdk``'s verifier: replayed requests are refused);
- the Slack user who clicked is one of the channel's ``approvers``;
- the button's action token was issued for that channel (a chat token never works on the
  public one-tap link), is unexpired and unused: the first click wins, once.

The answer then goes through :func:`codeyard.notifications.service.answer_with_token`, the same
audited approval door as the app and the one-tap page, as the channel's owner. What happened is
posted back to the click's ``response_url``: the message is replaced by the outcome, or the
clicker alone sees why nothing happened.

Slack only reaches a Request URL it can see: Codeyard must be reachable from Slack (a public
URL or a tunnel). Without one, Socket Mode (:mod:`codeyard.notifications.slack_socket`) receives
the same clicks over a connection Codeyard opens; they are answered by :func:`answer`, the same
checks (approvers, channel-bound single-use token) and the same door.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import httpx

from codeyard.domain.errors import BadRequest, CodeyardError, Unauthorized
from codeyard.notifications import service, store
from codeyard.notifications.channels.chat import APPROVE, REJECT
from codeyard.notifications.service import Notifications
from codeyard.notifications.worker import target_config
from codeyard.services.context import Services

log = logging.getLogger(__name__)
MAX_BODY = 64 * 1024
DECISIONS = {APPROVE: "approved", REJECT: "rejected"}


@dataclass(frozen=True, slots=True)
class Answer:
    ok: bool
    text: str
    #: Where Slack takes the follow-up message (from the signed payload), if anywhere.
    response_url: str | None = None


async def config_of(svc: Services, rt: Notifications, channel_id: str) -> dict[str, Any]:
    refused = Unauthorized(
        "This is not a Slack channel with interactive buttons: set the channel's signing_secret "
        "and approvers, and point the Slack app's Request URL here."
    )
    async with svc.engine.connect() as conn:
        row = await store.target_row(conn, f"channel:{channel_id}")
    if row is None or row["kind"] != "slack":
        raise refused
    _, config = target_config(row, f"channel:{channel_id}", rt.box)
    if not config.get("interactive"):
        raise refused
    config["user_id"] = row["user_id"]
    return config


def verify(secret: str, body: bytes, timestamp: str | None, signature: str | None) -> None:
    """Slack's v0 signature over the raw body, and a timestamp within five minutes."""
    from slack_sdk.signature import SignatureVerifier  # ~60 ms: loaded on the first click

    try:
        ok = SignatureVerifier(secret).is_valid(body, timestamp, signature)
    except (ValueError, TypeError):  # TypeError: compare_digest on non-ASCII header text
        ok = False
    if not ok:
        raise Unauthorized(
            "The Slack signature does not match (or the request is older than five minutes): "
            "check that the channel's signing_secret is the Slack app's Signing Secret."
        )


def pick(payload: Any) -> tuple[str, str]:
    """The clicked Codeyard button's decision and action token in a block_actions payload."""
    try:
        for action in payload.get("actions") or []:
            if action.get("action_id") in DECISIONS:
                return DECISIONS[action["action_id"]], str(action["value"])
    except (KeyError, TypeError, AttributeError) as exc:
        raise BadRequest("The interaction's actions are not Slack's block_actions.") from exc
    raise BadRequest("The interaction carries no Codeyard Approve/Reject button.")


def parse(body: bytes) -> tuple[dict[str, Any], str, str]:
    """The payload, the clicked button's decision and its action token."""
    try:
        fields = parse_qs(body.decode(), strict_parsing=True)
        payload = json.loads(fields["payload"][0])
        if not isinstance(payload, dict):
            raise TypeError("payload is not an object")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BadRequest(
            "Expected Slack's block_actions interaction: a form field 'payload' holding JSON."
        ) from exc
    return payload, *pick(payload)


async def handle(
    svc: Services,
    rt: Notifications,
    channel_id: str,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
) -> Answer:
    """A click posted to the Request URL: signed with the channel's signing secret."""
    if len(body) > MAX_BODY:
        raise BadRequest(f"A Slack interaction is at most {MAX_BODY} bytes.")
    config = await config_of(svc, rt, channel_id)
    if not config.get("signing_secret"):  # a Socket Mode channel takes clicks only there
        raise Unauthorized("This Slack channel takes its clicks over Socket Mode, not here.")
    verify(config["signing_secret"], body, timestamp, signature)
    payload, decision, token = parse(body)
    return await answer(svc, rt, channel_id, config, payload, decision, token)


async def answer(
    svc: Services,
    rt: Notifications,
    channel_id: str,
    config: dict[str, Any],
    payload: dict[str, Any],
    decision: str,
    token: str,
) -> Answer:
    """Answer an authenticated click (signed request or Socket Mode envelope) as the channel's
    owner, if the clicker is one of its approvers and the token is this channel's, unused."""
    user = str((payload.get("user") or {}).get("id") or "")
    response_url = payload.get("response_url")
    response_url = str(response_url) if isinstance(response_url, str) else None
    if user not in config["approvers"]:
        text = f"<@{user}> is not an approver for this Codeyard channel; open Codeyard instead."
        return Answer(False, text, response_url)
    try:
        row = await service.answer_with_token(
            svc, rt, token, decision, channel=channel_id, via=f"Slack ({user})"
        )
    except CodeyardError as exc:
        return Answer(False, f"Not answered: {exc.detail}", response_url)
    verb = "Approved" if row["status"] == "approved" else "Rejected"
    return Answer(True, f"{verb} by <@{user}>: {row.get('title') or row['id']}", response_url)


async def follow_up(client: httpx.AsyncClient, answer: Answer) -> None:
    """Replace the message with the outcome, or tell only the clicker why nothing happened."""
    if not answer.response_url or not answer.response_url.startswith(("https://", "http://")):
        return
    if answer.ok:
        body: dict[str, Any] = {"replace_original": True, "text": answer.text}
    else:
        body = {"replace_original": False, "response_type": "ephemeral", "text": answer.text}
    try:
        resp = await client.post(answer.response_url, json=body)
        if resp.status_code >= 400:
            log.warning("Slack response_url answered %s", resp.status_code)
    except httpx.HTTPError as exc:
        log.warning("Slack response_url failed: %s", exc)
