"""``/api/notifications/*``, ``/api/devices``, ``/api/runs/{id}/notify``.

Self-service routes (``signed_in``): each caller manages their own push subscriptions, devices,
channels and preferences (the admin token's are stored under ''). The public action routes (a
one-tap token, a Slack click) are in ``notification_actions``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from codeyard.api.auth import SIGNED_IN, Caller, require_scope
from codeyard.api.deps import Svc
from codeyard.notifications import service
from codeyard.notifications.messages import KINDS
from codeyard.notifications.service import Notifications

router = APIRouter(tags=["notifications"])
SELF = [require_scope(SIGNED_IN)]


async def runtime(request: Request) -> Notifications:
    """The notification service; on a just started server, once it runs (codeyard.background)."""
    await request.app.state.background.ready()
    rt: Notifications = request.app.state.subscribers.notifications
    return rt


def owner(caller: Any) -> str:
    return str(caller.user_id or "")


class VapidKey(BaseModel):
    public_key: str = Field(description="applicationServerKey for pushManager.subscribe().")


@router.get("/notifications/vapid-key", dependencies=SELF, response_model=VapidKey)
async def vapid_key(request: Request) -> VapidKey:
    """The server's VAPID public key (generated at first start)."""
    return VapidKey(public_key=(await runtime(request)).public_key)


class PushKeys(BaseModel):
    p256dh: str = Field(min_length=10, max_length=200)
    auth: str = Field(min_length=4, max_length=100)


class SubscribeBody(BaseModel):
    """``PushSubscription.toJSON()`` as the browser gives it."""

    endpoint: str = Field(min_length=8, max_length=2000)
    keys: PushKeys


class Subscription(BaseModel):
    id: str
    endpoint_origin: str
    user_agent: str | None
    created_at: str
    last_success_at: str | None


@router.post(
    "/notifications/subscribe", dependencies=SELF, response_model=Subscription, status_code=201
)
async def subscribe(body: SubscribeBody, svc: Svc, caller: Caller, request: Request) -> Any:
    """Register this browser for web push (the same endpoint again replaces the old keys)."""
    return await service.subscribe(
        svc,
        owner(caller),
        body.endpoint,
        body.keys.p256dh,
        body.keys.auth,
        request.headers.get("user-agent"),
    )


class UnsubscribeBody(BaseModel):
    endpoint: str = Field(min_length=8, max_length=2000)


@router.post("/notifications/unsubscribe", dependencies=SELF, status_code=204)
async def unsubscribe(body: UnsubscribeBody, svc: Svc, caller: Caller) -> Response:
    """Forget a push subscription of yours, by its endpoint."""
    await service.unsubscribe(svc, owner(caller), body.endpoint)
    return Response(status_code=204)


class SubscriptionList(BaseModel):
    data: list[Subscription]


@router.get("/notifications/subscriptions", dependencies=SELF, response_model=SubscriptionList)
async def list_subscriptions(svc: Svc, caller: Caller) -> Any:
    return {"data": await service.subscriptions(svc, owner(caller))}


class TestResult(BaseModel):
    ok: bool
    status_code: int | None
    error: str | None
    duration_ms: int


async def _test(svc: Any, request: Request, caller: Any, target: str) -> TestResult:
    outcome, elapsed = await service.send_test(svc, await runtime(request), owner(caller), target)
    return TestResult(
        ok=outcome.ok, status_code=outcome.status_code, error=outcome.error, duration_ms=elapsed
    )


@router.post(
    "/notifications/subscriptions/{sub_id}/test", dependencies=SELF, response_model=TestResult
)
async def test_subscription(sub_id: str, svc: Svc, caller: Caller, request: Request) -> Any:
    """Send a test push now; the answer says what the push service replied."""
    return await _test(svc, request, caller, f"webpush:{sub_id}")


Kind = Literal["approval", "budget", "run.input", "run.finished", "run.failed", "run.attention"]


class Preferences(BaseModel):
    events: list[Kind] = Field(default_factory=lambda: list(KINDS))  # type: ignore[arg-type]
    quiet_start: str | None = Field(default=None, pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    quiet_end: str | None = Field(default=None, pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    timezone: str = "UTC"


@router.get("/notifications/preferences", dependencies=SELF, response_model=Preferences)
async def get_preferences(svc: Svc, caller: Caller) -> Any:
    """Which kinds of notification you get, and your quiet hours (local time)."""
    return await service.preferences(svc, owner(caller))


@router.put("/notifications/preferences", dependencies=SELF, response_model=Preferences)
async def put_preferences(body: Preferences, svc: Svc, caller: Caller) -> Any:
    values = body.model_dump()
    await service.save_preferences(svc, owner(caller), values)
    return values


class ChannelBody(BaseModel):
    kind: str = Field(description="webhook | slack | discord | apprise (or a registered channel).")
    name: str = Field(min_length=1, max_length=200)
    config: dict[str, Any] = Field(
        description="webhook: {url, secret?}; slack: {url, signing_secret?, approvers?} "
        "(an incoming webhook; the Slack app's signing secret and the Slack user ids allowed "
        "to answer add Approve/Reject buttons) or {bot_token, channel, app_token?, "
        "approvers?} (posted by the bot and updated once answered; the app-level token adds "
        "buttons over Socket Mode, no public URL); discord: {url}; apprise: {url} (an Apprise "
        "URL such as ntfy://ntfy.sh/topic or tgram://bot-token/chat-id, stored sealed)."
    )


class ChannelOut(BaseModel):
    id: str
    kind: str
    name: str
    created_at: str
    #: Webhooks only, and only in the answer to creation: the whsec_ signing secret.
    secret: str | None = None


class ChannelList(BaseModel):
    data: list[ChannelOut]


@router.get("/notifications/channels", dependencies=SELF, response_model=ChannelList)
async def list_channels(svc: Svc, caller: Caller) -> Any:
    return {"data": await service.channels_of(svc, owner(caller))}


@router.post(
    "/notifications/channels", dependencies=SELF, response_model=ChannelOut, status_code=201
)
async def add_channel(body: ChannelBody, svc: Svc, caller: Caller, request: Request) -> Any:
    """Add a webhook (signed, Standard Webhooks), Slack or Discord incoming-webhook channel, or
    any Apprise URL (ntfy, Telegram, email…)."""
    return await service.add_channel(
        svc, await runtime(request), owner(caller), body.kind, body.name, body.config
    )


@router.delete("/notifications/channels/{channel_id}", dependencies=SELF, status_code=204)
async def delete_channel(channel_id: str, svc: Svc, caller: Caller, request: Request) -> Response:
    await service.remove(svc, owner(caller), f"channel:{channel_id}")
    (await runtime(request)).channels_changed()
    return Response(status_code=204)


@router.post(
    "/notifications/channels/{channel_id}/test", dependencies=SELF, response_model=TestResult
)
async def test_channel(channel_id: str, svc: Svc, caller: Caller, request: Request) -> Any:
    """Send a test message through this channel now."""
    return await _test(svc, request, caller, f"channel:{channel_id}")


class DeliveryRow(BaseModel):
    id: int
    outbox_id: int | None
    target: str
    attempt: int
    ok: bool
    status_code: int | None
    error: str | None
    duration_ms: int
    at: str


class DeliveryList(BaseModel):
    data: list[DeliveryRow]


@router.get("/notifications/deliveries", dependencies=SELF, response_model=DeliveryList)
async def deliveries(
    svc: Svc,
    caller: Caller,
    target: Annotated[str | None, Query(description="e.g. channel:nch_… or device:dev_…")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Any:
    """Your delivery log, newest first: each attempt with the receiver's answer."""
    return {"data": await service.deliveries(svc, owner(caller), target, limit)}


class DeviceBody(BaseModel):
    platform: Literal["apns", "fcm"]
    token: str = Field(min_length=8, max_length=4096)
    name: str | None = Field(default=None, max_length=200)


class DeviceOut(BaseModel):
    id: str
    platform: str
    name: str | None
    created_at: str
    last_success_at: str | None


class DeviceList(BaseModel):
    data: list[DeviceOut]


@router.get("/devices", dependencies=SELF, response_model=DeviceList)
async def list_devices(svc: Svc, caller: Caller) -> Any:
    return {"data": await service.devices(svc, owner(caller))}


@router.post("/devices", dependencies=SELF, response_model=DeviceOut, status_code=201)
async def add_device(body: DeviceBody, svc: Svc, caller: Caller, request: Request) -> Any:
    """Register a native app's push token (APNs or FCM); stored sealed, never shown again."""
    return await service.add_device(
        svc, await runtime(request), owner(caller), body.platform, body.token, body.name
    )


@router.delete("/devices/{device_id}", dependencies=SELF, status_code=204)
async def delete_device(device_id: str, svc: Svc, caller: Caller) -> Response:
    await service.remove(svc, owner(caller), f"device:{device_id}")
    return Response(status_code=204)


@router.post("/devices/{device_id}/test", dependencies=SELF, response_model=TestResult)
async def test_device(device_id: str, svc: Svc, caller: Caller, request: Request) -> Any:
    """Send a test push to this device now."""
    return await _test(svc, request, caller, f"device:{device_id}")


class NotifyBody(BaseModel):
    notify: bool


class NotifyOut(BaseModel):
    run_id: str
    notify: bool


@router.post(
    "/runs/{run_ref}/notify", dependencies=[require_scope("runs:control")], response_model=NotifyOut
)
async def run_notify(run_ref: str, body: NotifyBody, svc: Svc) -> Any:
    """``true``: tell me when this run finishes or fails, whatever my preferences;
    ``false``: nothing about this run, not even approvals."""
    run_id = await service.set_run_notify(svc, run_ref, body.notify)
    return NotifyOut(run_id=run_id, notify=body.notify)


class OutboxRow(BaseModel):
    id: int
    event_id: int
    user_id: str
    target: str
    kind: str
    tag: str
    status: str
    attempts: int
    next_attempt_at: str
    sent_at: str | None
    last_error: str | None


class OutboxList(BaseModel):
    data: list[OutboxRow]


@router.get(
    "/runs/{run_ref}/notifications",
    dependencies=[require_scope("runs:read")],
    response_model=OutboxList,
)
async def run_notifications(run_ref: str, svc: Svc) -> Any:
    """The outbox rows of a run: what was (or will be) sent to whom, and how it went."""
    return {"data": await service.run_outbox(svc, run_ref)}
