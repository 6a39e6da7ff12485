"""The delivery worker: sends due outbox rows through their channel, with retries.

A row is claimed (``pending`` → ``sending``) in one transaction and finished in another, with
the delivery logged. Only 429, 5xx and network errors are retried (exponential backoff, or the
receiver's ``Retry-After``), up to :data:`MAX_ATTEMPTS`; 404/410 prune the subscription or
device. At start, rows a crash left in ``sending`` are released and sent again under the same
message id (``webhook-id``, push ``Topic``), so receivers can drop the duplicate: no
notification is lost, and none is shown twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from codeyard.crypto import SecretBox
from codeyard.domain.errors import NotFound
from codeyard.domain.events import utc_now
from codeyard.notifications import channels, store, tokens
from codeyard.notifications.channels import Delivery, Outcome
from codeyard.notifications.messages import Notification, in_quiet_hours
from codeyard.store import policies
from codeyard.store.writer import Tx, Writer

if TYPE_CHECKING:
    # httpx (with the Rich and Click it imports) loads on first use, not at the server's
    # start-up (issue 15).
    import httpx

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 6
#: Finished outbox rows, delivery log entries and used tokens are kept this long.
KEEP_DAYS = 30
PRUNE_EVERY_S = 3600.0
BACKOFF_BASE = 2.0
BACKOFF_MAX = 600.0
#: With nothing pending, the worker looks again this long after its last pass unless woken
#: (every row added to the outbox wakes it: the notifiers' ``on_new``); a row that is pending
#: but not due yet is looked at every second until it is.
IDLE_POLL_S = 30.0
ANSWERABLE = ("approval", "budget")
#: A chat message's buttons stay usable for a day (the click itself is signed by Slack and
#: checked against the channel's approvers; the token makes it single-use).
CHAT_TOKEN_TTL = 24 * 3600.0


def later(seconds: float) -> str:
    moment = datetime.now(UTC) + timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def target_config(row: dict[str, Any], target: str, box: SecretBox) -> tuple[str, dict[str, Any]]:
    """The channel kind and decrypted config of a stored target."""
    prefix = target.partition(":")[0]
    if prefix == "webpush":
        return "webpush", {k: row[k] for k in ("endpoint", "p256dh", "auth")}
    if prefix == "device":
        token = box.decrypt(row["token_sealed"], row["id"]).decode()
        return "device", {"platform": row["platform"], "token": token}
    return row["kind"], json.loads(box.decrypt(row["config_sealed"], row["id"]))


class DeliveryWorker:
    def __init__(
        self,
        engine: AsyncEngine,
        writer: Writer,
        box: SecretBox,
        token_key: bytes,
        public_url: str,
        concurrency: int = 8,
    ) -> None:
        self.engine = engine
        self.writer = writer
        self.box = box
        self.token_key = token_key
        self.public_url = public_url.rstrip("/")
        self._sem = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        #: Monotonic time of each delivered outbox id (benchmarks read it).
        self.delivered_at: dict[int, float] = {}

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx

            self._client = httpx.AsyncClient(timeout=10.0, follow_redirects=False)
        return self._client

    async def start(self) -> None:
        released = await self.writer.run(store.release_unfinished)
        if released:
            log.info("re-sending %d notifications a restart interrupted", released)
        self._task = asyncio.create_task(self._loop(), name="codeyard-notify-worker")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def wake(self) -> None:
        self._wake.set()

    async def run_once(self) -> int:
        """Deliver every row that is due now; returns how many were attempted."""
        async with self.engine.connect() as conn:
            rows = await store.due(conn, utc_now(), 50)
        if rows:
            await asyncio.gather(*(self._guarded(row) for row in rows))
        return len(rows)

    async def _guarded(self, row: dict[str, Any]) -> None:
        async with self._sem:
            await self.deliver(row)

    async def prune(self) -> int:
        cutoff = (datetime.now(UTC) - timedelta(days=KEEP_DAYS)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        return await self.writer.run(lambda tx: store.prune(tx, cutoff))

    async def _loop(self) -> None:
        pruned_at = 0.0
        while True:
            if time.monotonic() - pruned_at > PRUNE_EVERY_S:
                pruned_at = time.monotonic()
                try:
                    await self.prune()
                except Exception:  # retried at the next interval
                    log.exception("pruning old notifications failed")
            nxt: str | None = None
            wait = IDLE_POLL_S
            try:
                while await self.run_once():
                    pass
                async with self.engine.connect() as conn:
                    nxt = await store.next_due(conn)
            except Exception:  # a database hiccup: keep the worker alive and try again
                log.exception("notification delivery pass failed")
                wait = 1.0
            if nxt is not None:
                wait = 1.0
                delta = (
                    datetime.strptime(nxt.rstrip("Z"), "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=UTC)
                    - datetime.now(UTC)
                ).total_seconds()
                wait = min(wait, max(0.0, delta))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait)
            self._wake.clear()

    async def _skip_reason(
        self, conn: AsyncConnection, row: dict[str, Any], msg: Notification
    ) -> str | None:
        if msg.kind in ANSWERABLE and msg.approval_id:
            try:
                approval = await policies.get_approval(conn, msg.approval_id)
            except NotFound:
                return "the approval no longer exists (its run was deleted)"
            if approval["status"] != "pending":
                return f"answered before the alert was due ({approval['status']})"
        prefs = await store.prefs(conn, row["user_id"])
        try:
            zone = ZoneInfo(prefs["timezone"] or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            zone = ZoneInfo("UTC")
        local = datetime.now(zone).strftime("%H:%M")
        if msg.kind != "approval.resolved" and in_quiet_hours(
            local, prefs["quiet_start"], prefs["quiet_end"]
        ):
            return "quiet hours"
        return None

    async def deliver(self, row: dict[str, Any]) -> None:
        outbox_id = int(row["id"])
        if not await self.writer.run(lambda tx: store.claim(tx, outbox_id)):
            return
        try:
            await self._deliver_claimed(row, outbox_id)
        except Exception as exc:  # never leave a claimed row behind: back to pending, later
            log.exception("delivering notification %d failed", outbox_id)
            error = str(exc)
            await self.writer.run(
                lambda tx: store.finish(
                    tx, outbox_id, status="pending", next_attempt_at=later(30), last_error=error
                )
            )

    async def _deliver_claimed(self, row: dict[str, Any], outbox_id: int) -> None:
        msg = Notification.from_dict(row["payload"])
        async with self.engine.connect() as conn:
            skip = await self._skip_reason(conn, row, msg)
            target = await store.target_row(conn, row["target"])
        if skip is None and target is None:
            skip = "the target was removed"
        if skip is not None or target is None:
            await self.writer.run(
                lambda tx: store.finish(tx, outbox_id, status="skipped", last_error=skip)
            )
            return
        outcome, elapsed = await self.send(row["target"], target, msg, f"ntf_{outbox_id}", row)
        await self.writer.run(lambda tx: self._record(tx, row, outcome, elapsed))
        if outcome.ok:
            self.delivered_at[outbox_id] = time.monotonic()

    async def send(
        self,
        target_key: str,
        target: dict[str, Any],
        msg: Notification,
        message_id: str,
        row: dict[str, Any] | None = None,
    ) -> tuple[Outcome, int]:
        """Deliver one message to one stored target (also used by "send test").

        Returns the outcome and how long the channel took (ms)."""
        try:
            kind, config = target_config(target, target_key, self.box)
        except Exception as exc:  # an unreadable sealed config: say so in the delivery log
            return Outcome(False, None, error=f"cannot read the target's config: {exc}"), 0
        channel = channels.get(kind)
        if channel is None:
            return Outcome(False, None, error=f"no channel registered for {kind!r}"), 0
        action_token = action_url = None
        # The user's own devices get a one-tap token; an interactive chat channel (Slack with
        # a signing secret) gets one bound to that channel, usable only by its signed buttons.
        on_device = kind in ("webpush", "device")
        if (
            msg.kind in ANSWERABLE
            and msg.approval_id
            and not msg.gate
            and (on_device or config.get("interactive"))
        ):
            user_id = str(target.get("user_id") or "")
            action_token, claims = tokens.issue(
                self.token_key,
                msg.approval_id,
                user_id,
                ttl=tokens.TTL_SECONDS if on_device else CHAT_TOKEN_TTL,
                channel="" if on_device else str(target["id"]),
            )
            expires = datetime.fromtimestamp(claims.expires_at, UTC).isoformat()
            await self.writer.run(
                lambda tx: store.record_token(
                    tx, claims.nonce, msg.approval_id or "", user_id, expires
                )
            )
            if on_device:
                action_url = f"{self.public_url}/api/notifications/actions/{action_token}"
        extra: dict[str, Any] = {}
        if msg.kind == "approval.resolved":  # the alert's message, if its channel can edit it
            async with self.engine.connect() as conn:
                replaces = await store.alert_receipt(conn, msg.tag[:80], target_key)
            if replaces is not None:
                extra["replaces"] = replaces
        delivery = Delivery(
            message=msg,
            config=config,
            message_id=message_id,
            url=f"{self.public_url}{msg.path}",
            action_url=action_url,
            action_token=action_token,
            extra=extra,
        )
        started = time.monotonic()
        try:
            outcome = await channel.deliver(self.client, delivery)
        except Exception as exc:  # a channel's own bug must not stop the worker; logged below
            log.exception("channel %s failed", kind)
            outcome = Outcome(False, None, retry=True, error=f"{type(exc).__name__}: {exc}")
        elapsed = int((time.monotonic() - started) * 1000)
        if row is None:  # a test send: log it here (outbox rows are logged by _record)
            await self.writer.run(
                lambda tx: store.log_delivery(
                    tx,
                    {
                        "outbox_id": None,
                        "user_id": str(target.get("user_id") or ""),
                        "target": target_key,
                        "attempt": 1,
                        "ok": outcome.ok,
                        "status_code": outcome.status_code,
                        "error": outcome.error,
                        "duration_ms": elapsed,
                    },
                )
            )
        return outcome, elapsed

    async def _record(self, tx: Tx, row: dict[str, Any], outcome: Outcome, elapsed: int) -> None:
        outbox_id, attempts = int(row["id"]), int(row["attempts"]) + 1
        await store.log_delivery(
            tx,
            {
                "outbox_id": outbox_id,
                "user_id": row["user_id"],
                "target": row["target"],
                "attempt": attempts,
                "ok": outcome.ok,
                "status_code": outcome.status_code,
                "error": outcome.error,
                "duration_ms": elapsed,
            },
        )
        if outcome.ok:
            if outcome.receipt:
                await store.keep_receipt(tx, outbox_id, row["payload"], outcome.receipt)
            await store.finish(tx, outbox_id, status="sent", sent_at=utc_now(), last_error=None)
            await store.touch_target(tx, row["target"])
        elif outcome.prune:
            await store.remove_target(tx, row["target"])
            await store.finish(
                tx, outbox_id, status="failed", last_error=f"pruned: {outcome.error}"
            )
        elif outcome.retry and attempts < MAX_ATTEMPTS:
            delay = outcome.retry_after
            if delay is None:
                delay = min(BACKOFF_MAX, BACKOFF_BASE**attempts)
            await store.finish(
                tx,
                outbox_id,
                status="pending",
                next_attempt_at=later(delay),
                last_error=outcome.error,
            )
        else:
            await store.finish(tx, outbox_id, status="failed", last_error=outcome.error)
