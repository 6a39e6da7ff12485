"""Slack Approve/Reject buttons without a public URL: Socket Mode.

A Slack channel configured with an app-level token (``xapp-…``) gets its clicks over a
WebSocket that Codeyard opens to Slack (``apps.connections.open``), so Codeyard needs no
public Request URL. Each ``interactive`` envelope is acknowledged at once (Slack retries an
unacknowledged one and shows the clicker an error after three seconds), then answered by
:func:`codeyard.notifications.slack.answer`: the same approvers list, the same channel-bound
single-use token and the same approval door as a signed click on the Request URL. Nothing
else proves the click came from Slack here: the envelope arrives on a connection only the
holder of the app token can open.

An answered click replaces the message with the outcome (``chat.update``, bot token); a refused
one tells only the clicker why (``chat.postEphemeral``). One connection per channel, kept by
:class:`SlackSockets`, which runs with the notification worker in the cluster's elected
singleton (one server holds it, so a click is answered once) and follows channels being added
and removed (it re-reads them every :data:`RESCAN_SECONDS`, or at once on :meth:`rescan`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from codeyard.notifications import slack, tokens
from codeyard.notifications.channels.chat import slack_api
from codeyard.notifications.worker import target_config
from codeyard.store import schema

if TYPE_CHECKING:
    from slack_sdk.socket_mode.aiohttp import SocketModeClient
    from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
    from slack_sdk.socket_mode.request import SocketModeRequest

    from codeyard.notifications.service import Notifications
    from codeyard.services.context import Services

log = logging.getLogger(__name__)
RESCAN_SECONDS = 15.0
#: A close that Slack does not answer does not hold up the server's shutdown.
CLOSE_SECONDS = 5.0
#: An unreachable Slack does not hold up the other channels' connections.
CONNECT_SECONDS = 30.0


class SlackSockets:
    """One Socket Mode connection per Slack channel that has an app-level token."""

    def __init__(self, svc: Services, rt: Notifications, api_url: str) -> None:
        self.svc = svc
        self.rt = rt
        self.api_url = api_url
        #: channel id → (app token, its open client).
        self.clients: dict[str, tuple[str, SocketModeClient]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="codeyard-slack-sockets")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for channel_id in list(self.clients):
            await self._close(channel_id)

    def rescan(self) -> None:
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            try:
                await self.sync()
            except Exception:  # a database hiccup: keep the connections and try again
                log.exception("reading the Slack Socket Mode channels failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=RESCAN_SECONDS)
            self._wake.clear()

    async def _wanted(self) -> dict[str, str]:
        t = schema.notification_channels
        async with self.svc.engine.connect() as conn:
            rows = (await conn.execute(t.select().where(t.c.kind == "slack"))).all()
        wanted: dict[str, str] = {}
        for r in rows:
            row = dict(r._mapping)
            try:
                _, config = target_config(row, f"channel:{row['id']}", self.rt.box)
            except Exception:  # unreadable (secret key changed): its deliveries say so
                continue
            if config.get("app_token"):
                wanted[row["id"]] = str(config["app_token"])
        return wanted

    async def sync(self) -> None:
        """Open a connection for each Socket Mode channel, close those of removed ones."""
        wanted = await self._wanted()
        for channel_id, (token, _) in list(self.clients.items()):
            if wanted.get(channel_id) != token:
                await self._close(channel_id)
        for channel_id, token in wanted.items():
            if channel_id not in self.clients:
                try:
                    await self._open(channel_id, token)
                except Exception as exc:  # Slack unreachable or the token refused: next scan
                    log.warning("Slack Socket Mode for channel %s: %s", channel_id, exc)

    async def _open(self, channel_id: str, app_token: str) -> None:
        from slack_sdk.socket_mode.aiohttp import SocketModeClient
        from slack_sdk.web.async_client import AsyncWebClient

        web = AsyncWebClient(token=app_token, base_url=self.api_url.rstrip("/") + "/")
        client = SocketModeClient(app_token=app_token, web_client=web, logger=log)

        async def listener(sm: AsyncBaseSocketModeClient, req: SocketModeRequest) -> None:
            await self._on_request(channel_id, sm, req)

        client.socket_mode_request_listeners.append(listener)
        try:
            await asyncio.wait_for(client.connect(), CONNECT_SECONDS)  # type: ignore[no-untyped-call]
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(), CLOSE_SECONDS)  # type: ignore[no-untyped-call]
            raise
        self.clients[channel_id] = (app_token, client)

    async def _close(self, channel_id: str) -> None:
        _, client = self.clients.pop(channel_id)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.close(), CLOSE_SECONDS)  # type: ignore[no-untyped-call]

    async def _on_request(
        self, channel_id: str, sm: AsyncBaseSocketModeClient, req: SocketModeRequest
    ) -> None:
        from slack_sdk.socket_mode.response import SocketModeResponse

        # Acknowledge every envelope first: Slack resends an unacknowledged one.
        await sm.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
        payload = req.payload
        if req.type != "interactive" or payload.get("type") != "block_actions":
            return
        try:
            await self.click(channel_id, payload)
        except Exception:  # one bad click must not close the connection
            log.exception("answering a Slack Socket Mode click failed")

    async def click(self, channel_id: str, payload: dict[str, Any]) -> slack.Answer | None:
        """Answer one block_actions payload received on ``channel_id``'s connection."""
        from codeyard.domain.errors import CodeyardError

        try:
            decision, token = slack.pick(payload)
            channel_id = self._owner_channel(channel_id, token)
            config = await slack.config_of(self.svc, self.rt, channel_id)
        except CodeyardError as exc:
            log.info("Slack click on channel %s ignored: %s", channel_id, exc.detail)
            return None
        if not config.get("app_token"):
            return None
        answer = await slack.answer(self.svc, self.rt, channel_id, config, payload, decision, token)
        await self._follow_up(config, payload, answer)
        return answer

    def _owner_channel(self, channel_id: str, token: str) -> str:
        """The Codeyard channel a click belongs to. Slack hands each envelope to any one open
        connection of the app, so when two Codeyard channels use the same Slack app (same app
        token), a click on one's message may arrive on the other's connection: it is answered
        for the channel its token names, never for a channel of another app."""
        from codeyard.domain.errors import CodeyardError

        try:
            named = tokens.verify(self.rt.token_key, token).channel
        except CodeyardError:
            return channel_id  # refused by the usual checks, with the usual message
        mine, theirs = self.clients.get(channel_id), self.clients.get(named)
        if named != channel_id and mine and theirs and mine[0] == theirs[0]:
            return named
        return channel_id

    async def _follow_up(
        self, config: dict[str, Any], payload: dict[str, Any], answer: slack.Answer
    ) -> None:
        """Replace the message with the outcome, or tell only the clicker why nothing happened."""
        container = payload.get("container") or {}
        channel = str((payload.get("channel") or {}).get("id") or container.get("channel_id") or "")
        ts = str((payload.get("message") or {}).get("ts") or container.get("message_ts") or "")
        if not channel:
            return
        section = {"type": "section", "text": {"type": "mrkdwn", "text": answer.text}}
        if answer.ok and ts:
            method = "chat.update"
            body: dict[str, Any] = {
                "channel": channel,
                "ts": ts,
                "text": answer.text,
                "blocks": [section],
            }
        else:
            user = str((payload.get("user") or {}).get("id") or "")
            method, body = (
                "chat.postEphemeral",
                {"channel": channel, "user": user, "text": answer.text},
            )
        outcome, _ = await slack_api(
            self.rt.worker.client, self.api_url, config["bot_token"], method, body
        )
        if not outcome.ok:
            log.warning("Slack %s after a click failed: %s", method, outcome.error)
