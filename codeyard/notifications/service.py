"""Notification use cases behind the routes, and the runtime (notifier + worker) they share."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from codeyard.auth.scopes import for_role
from codeyard.crypto import secret_box
from codeyard.domain.errors import BadRequest, Conflict, Forbidden, NotFound
from codeyard.domain.events import utc_now
from codeyard.domain.ids import new_id
from codeyard.notifications import channels, store, tokens, vapid
from codeyard.notifications.builtin import register_builtins
from codeyard.notifications.channels import Outcome, native
from codeyard.notifications.derive import Notifier
from codeyard.notifications.messages import Notification
from codeyard.notifications.worker import DeliveryWorker
from codeyard.notifications.workflows import WorkflowApprovalNotifier
from codeyard.services import approvals
from codeyard.services.context import Services
from codeyard.store import policies, runs
from codeyard.store import users as users_store

if TYPE_CHECKING:
    from codeyard.notifications.slack_socket import SlackSockets


class Notifications:
    """Keys, the notifier (log → outbox) and the delivery worker of one server."""

    def __init__(self, services: Services) -> None:
        s = services.settings
        self.services = services
        self.vapid = vapid.load_or_create(s.data_dir)
        self.public_key = vapid.application_server_key(self.vapid)
        self.token_key = tokens.load_key(s.data_dir)
        self.box = secret_box(s.secret_key_path)
        self.device_sender = native.device_sender(s)
        register_builtins(self.vapid, s.vapid_subject, self.device_sender, s.slack_api_url)
        self.worker = DeliveryWorker(
            services.engine, services.writer, self.box, self.token_key, s.external_url
        )
        self.notifier = Notifier(
            services.engine,
            services.writer,
            services.hub,
            grace_seconds=s.notify_grace_seconds,
            on_new=self.worker.wake,
        )
        #: Workflow approval steps: their own log, the same outbox and worker.
        self.workflow_notifier = WorkflowApprovalNotifier(
            services.engine, services.writer, on_new=self.worker.wake
        )
        #: Slack Socket Mode connections (started with the worker, in the elected singleton).
        self.sockets: SlackSockets | None = None

    async def start(self) -> None:
        await self.notifier.catch_up()  # places a new database's cursor before any run starts
        await self.workflow_notifier.catch_up()
        await self.worker.start()
        self.notifier.start()
        self.workflow_notifier.start()
        # Imported here: slack_socket answers clicks through this module (and slack_sdk's
        # Socket Mode client loads only on the server that holds the singleton).
        from codeyard.notifications.slack_socket import SlackSockets

        self.sockets = SlackSockets(self.services, self, self.services.settings.slack_api_url)
        await self.sockets.start()

    def channels_changed(self) -> None:
        """A channel went away: a Slack Socket Mode connection of it closes now, not at the
        next scan."""
        if self.sockets is not None:
            self.sockets.rescan()

    async def stop(self) -> None:
        if self.sockets is not None:
            await self.sockets.stop()
            self.sockets = None
        await self.workflow_notifier.stop()
        await self.notifier.stop()
        await self.worker.stop()
        if isinstance(self.device_sender, native.DirectSender):
            await self.device_sender.aclose()


# --- targets -----------------------------------------------------------------------------


async def subscribe(
    svc: Services, user_id: str, endpoint: str, p256dh: str, auth: str, user_agent: str | None
) -> dict[str, Any]:
    """Store a browser's push subscription (re-subscribing the same endpoint replaces it)."""
    if not endpoint.startswith(("https://", "http://")):
        raise BadRequest("'endpoint' must be the https URL from PushSubscription.toJSON().")
    sub_id = new_id("psub")
    values = {
        "id": sub_id,
        "user_id": user_id,
        "endpoint": endpoint,
        "endpoint_hash": store.digest(endpoint),
        "p256dh": p256dh,
        "auth": auth,
        "user_agent": (user_agent or "")[:300] or None,
        "created_at": utc_now(),
    }

    await svc.writer.run(lambda tx: store.add_subscription(tx, values))
    return public_subscription(values)


async def subscriptions(svc: Services, user_id: str) -> list[dict[str, Any]]:
    """The user's push subscriptions, as shown (the endpoint's origin, never its secret path)."""
    async with svc.engine.connect() as conn:
        rows = await store.list_rows(conn, store.SUBS, user_id)
    return [public_subscription(r) for r in rows]


def public_subscription(row: dict[str, Any]) -> dict[str, Any]:
    parts = urlsplit(row["endpoint"])
    return {
        "id": row["id"],
        "endpoint_origin": f"{parts.scheme}://{parts.netloc}",
        "user_agent": row.get("user_agent"),
        "created_at": row["created_at"],
        "last_success_at": row.get("last_success_at"),
    }


async def unsubscribe(svc: Services, user_id: str, endpoint: str) -> None:
    endpoint_hash = store.digest(endpoint)
    if not await svc.writer.run(lambda tx: store.remove_subscription(tx, endpoint_hash, user_id)):
        raise NotFound("No push subscription with that endpoint belongs to you.")


async def add_channel(
    svc: Services, rt: Notifications, user_id: str, kind: str, name: str, config: dict[str, Any]
) -> dict[str, Any]:
    channel = channels.get(kind)
    if channel is None or not channel.user_configurable:
        raise BadRequest(
            f"Unknown channel kind {kind!r}; use one of: "
            f"{', '.join(channels.kinds(user_configurable=True))}."
        )
    try:
        clean = channel.validate(config)
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc
    channel_id = new_id("nch")
    row = {
        "id": channel_id,
        "user_id": user_id,
        "kind": kind,
        "name": name,
        "config_sealed": rt.box.encrypt(json.dumps(clean).encode(), channel_id),
        "created_at": utc_now(),
    }
    await svc.writer.run(lambda tx: store.add_channel(tx, row))
    if rt.sockets is not None and clean.get("app_token"):  # connect now, not at the next scan
        rt.sockets.rescan()
    out = public_channel(row)
    if "secret" in clean:  # shown once, so the receiver can verify signatures
        out["secret"] = clean["secret"]
    return out


async def channels_of(svc: Services, user_id: str) -> list[dict[str, Any]]:
    """The user's channels, without their (sealed) configuration."""
    async with svc.engine.connect() as conn:
        rows = await store.list_rows(conn, store.CH, user_id)
    return [public_channel(r) for r in rows]


def public_channel(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("id", "kind", "name", "created_at")}


async def add_device(
    svc: Services, rt: Notifications, user_id: str, platform: str, token: str, name: str | None
) -> dict[str, Any]:
    device_id = new_id("dev")
    row = {
        "id": device_id,
        "user_id": user_id,
        "platform": platform,
        "token_sealed": rt.box.encrypt(token.encode(), device_id),
        "token_hash": store.digest(f"{platform}:{token}"),
        "name": name,
        "created_at": utc_now(),
    }
    await svc.writer.run(lambda tx: store.add_device(tx, row))
    return public_device(row)


async def devices(svc: Services, user_id: str) -> list[dict[str, Any]]:
    """The user's native-app devices, without their (sealed) push tokens."""
    async with svc.engine.connect() as conn:
        rows = await store.list_rows(conn, store.DEV, user_id)
    return [public_device(r) for r in rows]


def public_device(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "platform": row["platform"],
        "name": row.get("name"),
        "created_at": row["created_at"],
        "last_success_at": row.get("last_success_at"),
    }


async def owned_target(svc: Services, user_id: str, target: str) -> dict[str, Any]:
    async with svc.engine.connect() as conn:
        row = await store.target_row(conn, target)
    if row is None or row["user_id"] != user_id:
        raise NotFound(f"No {target.partition(':')[0]} '{target.partition(':')[2]}' of yours.")
    return row


async def remove(svc: Services, user_id: str, target: str) -> None:
    await owned_target(svc, user_id, target)
    await svc.writer.run(lambda tx: store.remove_target(tx, target))


async def send_test(
    svc: Services, rt: Notifications, user_id: str, target: str
) -> tuple[Outcome, int]:
    row = await owned_target(svc, user_id, target)
    msg = Notification(
        kind="test",
        title="Codeyard test notification",
        body="Notifications reach this target.",
        tag=f"test-{target}",
        run_id="",
        path="/settings",
    )
    return await rt.worker.send(target, row, msg, new_id("ntest"))


# --- preferences, per-run choices and what was sent ----------------------------------------


async def preferences(svc: Services, user_id: str) -> dict[str, Any]:
    async with svc.engine.connect() as conn:
        return await store.prefs(conn, user_id)


async def save_preferences(svc: Services, user_id: str, values: dict[str, Any]) -> None:
    """Store the user's kinds and quiet hours: a known IANA time zone, and both ends of the
    quiet hours or neither."""
    try:
        ZoneInfo(values["timezone"])
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise BadRequest(f"Unknown time zone {values['timezone']!r}: use an IANA name.") from exc
    if (values["quiet_start"] is None) != (values["quiet_end"] is None):
        raise BadRequest("Set both quiet_start and quiet_end (HH:MM), or neither.")
    await svc.writer.run(lambda tx: store.save_prefs(tx, user_id, values))


async def deliveries(
    svc: Services, user_id: str, target: str | None, limit: int
) -> list[dict[str, Any]]:
    """The user's delivery log, newest first (of one target, or all)."""
    async with svc.engine.connect() as conn:
        return await store.deliveries(conn, user_id, target, limit)


async def set_run_notify(svc: Services, run_ref: str, notify: bool) -> str:
    """Always (``True``) or never (``False``) notify about this run; the run's id."""
    async with svc.engine.connect() as conn:
        run = await runs.get(conn, run_ref)
    await svc.writer.run(lambda tx: store.set_run_notify(tx, run["id"], notify))
    return str(run["id"])


async def run_outbox(svc: Services, run_ref: str) -> list[dict[str, Any]]:
    """The outbox rows of a run: what was (or will be) sent to whom, and how it went."""
    async with svc.engine.connect() as conn:
        run = await runs.get(conn, run_ref)
        return await store.outbox_of(conn, run["id"])


# --- answering from a notification --------------------------------------------------------


async def describe_token(
    svc: Services, rt: Notifications, token: str, channel: str = ""
) -> dict[str, Any]:
    """The approval a token answers (403 if the token is bad, expired or used, or belongs to
    another door: a chat button's token works only through that channel's interaction)."""
    claims = tokens.verify(rt.token_key, token)
    if claims.channel != channel:
        raise Forbidden("This approval link is not valid here. Open the approval in Codeyard.")
    async with svc.engine.connect() as conn:
        if not await store.token_unused(conn, claims.nonce):
            raise Forbidden("This approval link was already used.")
        approval = await policies.get_approval(conn, claims.approval_id)
        run = await runs.get(conn, approval["run_id"])
    return {"approval": approval, "run": run, "claims": claims}


async def answer_with_token(
    svc: Services,
    rt: Notifications,
    token: str,
    decision: str,
    *,
    channel: str = "",
    via: str = "notification",
) -> dict[str, Any]:
    """Approve or reject through the same audited door as the app, as the token's user."""
    if decision not in ("approved", "rejected"):
        raise BadRequest("'decision' must be 'approved' or 'rejected'.")
    info = await describe_token(svc, rt, token, channel)
    approval, run, claims = info["approval"], info["run"], info["claims"]
    if (approval.get("rule") or "").startswith("gate:"):
        raise Forbidden("This call is behind a hard gate: answer it in the Codeyard app.")
    name = "admin"
    if claims.user_id:
        async with svc.engine.connect() as conn:
            user = await users_store.find(conn, claims.user_id)
        if user is None or "approvals:resolve" not in for_role(user["role"]):
            raise Forbidden("Your account may no longer answer approvals.")
        if user["role"] != "admin" and run.get("created_by") != claims.user_id:
            raise Forbidden("This run belongs to another user.")
        name = user["username"]
    if approval["status"] != "pending":
        raise Conflict(f"Approval {approval['id']} is already {approval['status']}.")
    used = await svc.writer.run(
        lambda tx: store.use_token(tx, claims.nonce, claims.approval_id, claims.user_id)
    )
    if not used:
        raise Forbidden("This approval link was already used.")
    return await approvals.resolve(
        svc,
        approval["id"],
        decision,
        f"answered from {'a notification' if via == 'notification' else via}",
        None,
        decided_by=f"{name} via {via}",
    )
