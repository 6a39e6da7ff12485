"""``/api/notifications/actions/*`` and ``/api/notifications/slack/*``: answering an approval
from a notification.

Public by design: the signed, single-use token in the path is the permission, as a phone's tap
carries no session; a Slack click is signed with the Slack app's signing secret. A browser gets
a one-tap HTML page, everything else JSON.
"""

from __future__ import annotations

import html
from typing import Any, Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from codeyard.api.deps import Svc
from codeyard.api.notifications import runtime
from codeyard.domain.errors import BadRequest, CodeyardError
from codeyard.notifications import service, slack

public = APIRouter(tags=["notifications"])


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
