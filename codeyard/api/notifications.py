"""``/api/notifications/*``, ``/api/devices``, ``/api/runs/{id}/notify``.

Self-service routes (``signed_in``): each caller manages their own push subscriptions, devices,
channels and preferences (the admin token's are stored under ''). The action routes are public
by design: the signed, single-use token in the path is the permission, as a phone's tap carries
no session.
"""

from __future__ import annotations

import html
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, BackgroundTasks, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from codeyard.api.auth import SIGNED_IN, Caller, require_scope
from codeyard.api.deps import Svc
from codeyard.domain.errors import BadRequest, CodeyardError
from codeyard.notifications import service, slack, store
from codeyard.notifications.messages import KINDS
from codeyard.notifications.service import Notifications
from codeyard.store import runs, schema

router = APIRouter(tags=["notifications"])
public = APIRouter(tags=["notifications"])
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
    async with svc.engine.connect() as conn:
        rows = await store.list_rows(conn, schema.push_subscriptions, owner(caller))
    return {"data": [service.public_subscription(r) for r in rows]}


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
    async with svc.engine.connect() as conn:
        return await store.prefs(conn, owner(caller))


@router.put("/notifications/preferences", dependencies=SELF, response_model=Preferences)
async def put_preferences(body: Preferences, svc: Svc, caller: Caller) -> Any:
    try:
        ZoneInfo(body.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise BadRequest(f"Unknown time zone {body.timezone!r}: use an IANA name.") from exc
    if (body.quiet_start is None) != (body.quiet_end is None):
        raise BadRequest("Set both quiet_start and quiet_end (HH:MM), or neither.")
    values = body.model_dump()
    await svc.writer.run(lambda tx: store.save_prefs(tx, owner(caller), values))
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
    async with svc.engine.connect() as conn:
        rows = await store.list_rows(conn, schema.notification_channels, owner(caller))
    return {"data": [service.public_channel(r) for r in rows]}


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
    sockets = (await runtime(request)).sockets
    if sockets is not None:  # a Slack Socket Mode channel: its connection closes now
        sockets.rescan()
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
    async with svc.engine.connect() as conn:
        rows = await store.deliveries(conn, owner(caller), target, limit)
    return {"data": rows}


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
    async with svc.engine.connect() as conn:
        rows = await store.list_rows(conn, schema.devices, owner(caller))
    return {"data": [service.public_device(r) for r in rows]}


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
    async with svc.engine.connect() as conn:
        run = await runs.get(conn, run_ref)
    await svc.writer.run(lambda tx: store.set_run_notify(tx, run["id"], body.notify))
    return NotifyOut(run_id=run["id"], notify=body.notify)


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
    async with svc.engine.connect() as conn:
        run = await runs.get(conn, run_ref)
        return {"data": await store.outbox_of(conn, run["id"])}


# --- public: the action token is the permission -------------------------------------------


class ActionInfo(BaseModel):
    approval_id: str
    run_id: str
    run_number: int
    run_title: str
    tool: str
    title: str
    status: str
    gate: bool


class ActionBody(BaseModel):
    decision: Literal["approved", "rejected"]


class ActionResult(BaseModel):
    approval_id: str
    status: str
    decided_by: str | None


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><html><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>"
        "body{font:16px system-ui;margin:0;padding:24px;max-width:560px}"
        "button{font-size:20px;padding:16px;width:100%;margin:8px 0;border-radius:12px;"
        "border:0;color:#fff}.ok{background:#15803d}.no{background:#b91c1c}"
        "code{word-break:break-all}</style></head>"
        f"<body>{body}</body></html>"
    )


@public.get("/notifications/actions/{token}", response_model=ActionInfo)
async def action_info(token: str, svc: Svc, request: Request) -> Any:
    """What a one-tap link answers; a browser (``Accept: text/html``) gets the one-tap page."""
    wants_html = "text/html" in request.headers.get("accept", "")
    try:
        info = await service.describe_token(svc, await runtime(request), token)
    except CodeyardError as exc:
        if wants_html:
            return _page("Codeyard", f"<h2>Cannot answer here</h2><p>{html.escape(str(exc))}</p>")
        raise
    a, run = info["approval"], info["run"]
    out = ActionInfo(
        approval_id=a["id"],
        run_id=run["id"],
        run_number=run["number"],
        run_title=run["title"],
        tool=a["tool"],
        title=a["title"],
        status=a["status"],
        gate=(a.get("rule") or "").startswith("gate:"),
    )
    if not wants_html:
        return out
    head = (
        f"<h2>Run #{out.run_number}: {html.escape(out.run_title)}</h2>"
        f"<p><b>{html.escape(out.tool)}</b></p><p><code>{html.escape(out.title)}</code></p>"
    )
    if out.gate:
        return _page("Codeyard", head + "<p>This call is behind a hard gate: open Codeyard.</p>")
    if out.status != "pending":
        return _page("Codeyard", head + f"<p>Already {html.escape(out.status)}.</p>")
    form = (
        "<form method=post><button class=ok name=decision value=approved>Approve</button>"
        "<button class=no name=decision value=rejected>Reject</button></form>"
    )
    return _page("Approve?", head + form)


@public.post("/notifications/actions/{token}", response_model=ActionResult)
async def action_answer(token: str, svc: Svc, request: Request) -> Any:
    """Approve or reject with a one-tap token: JSON ``{"decision": …}`` (a service worker's
    action button) or the one-tap page's form. Works once; hard gates need the full app."""
    is_form = request.headers.get("content-type", "").startswith(
        "application/x-www-form-urlencoded"
    )
    if is_form:
        fields = parse_qs((await request.body()).decode(errors="replace"))
        decision = (fields.get("decision") or [""])[0]
    else:
        try:
            decision = ActionBody.model_validate_json(await request.body()).decision
        except ValueError as exc:
            raise BadRequest('Send {"decision": "approved"} or {"decision": "rejected"}.') from exc
    try:
        row = await service.answer_with_token(svc, await runtime(request), token, decision)
    except CodeyardError as exc:
        if is_form:
            return _page("Codeyard", f"<h2>Not answered</h2><p>{html.escape(str(exc))}</p>")
        raise
    if is_form:
        return _page("Codeyard", f"<h2>{html.escape(row['status'].capitalize())}</h2>")
    return ActionResult(
        approval_id=row["id"], status=row["status"], decided_by=row.get("decided_by")
    )


class SlackAnswer(BaseModel):
    ok: bool = Field(description="Whether the click answered the approval.")
    text: str = Field(description="What was also posted back to the click's response_url.")


@public.post(
    "/notifications/slack/{channel_id}/interactions",
    response_model=SlackAnswer,
    responses={401: {"description": "Not Slack: the v0 signature or timestamp is wrong."}},
)
async def slack_interaction(
    channel_id: str, svc: Svc, request: Request, background: BackgroundTasks
) -> Any:
    """Slack's Request URL for a channel with buttons: an Approve/Reject click, signed with the
    Slack app's signing secret (the signature is the permission; the clicker must be one of the
    channel's approvers, and each message's buttons work once)."""
    rt = await runtime(request)
    answer = await slack.handle(
        svc,
        rt,
        channel_id,
        await request.body(),
        request.headers.get("x-slack-request-timestamp"),
        request.headers.get("x-slack-signature"),
    )
    background.add_task(slack.follow_up, rt.worker.client, answer)
    return SlackAnswer(ok=answer.ok, text=answer.text)
