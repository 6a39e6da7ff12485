"""``/api/auth/request-otp`` and ``/api/auth/verify-otp``: sign in with a one-time code sent by
email instead of a password (issue 19). Public by design; limited like password sign-in."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Request, Response
from pydantic import Field

from codeyard.api.account_views import SignedInView
from codeyard.api.auth_routes import _client, _signed_in, _state
from codeyard.api.deps import Svc
from codeyard.api.schemas import Body
from codeyard.api.views import View
from codeyard.services import email_login as service

public = APIRouter(prefix="/auth", tags=["auth"])

Email = Annotated[
    str,
    Field(
        min_length=3,
        max_length=320,
        # No spaces, control characters (headers, NUL in PostgreSQL) or angle brackets.
        pattern=r"^[^@\s<>\x00-\x1f\x7f]+@[^@\s<>\x00-\x1f\x7f]+$",
        examples=["ana@example.com"],
    ),
]


class RequestOtpBody(Body):
    email: Email


class VerifyOtpBody(Body):
    email: Email
    code: str = Field(min_length=1, max_length=20, description="The code from the email.")
    totp_code: str | None = Field(
        default=None, max_length=40, description="When two-factor is on: a TOTP or recovery code."
    )


class OtpRequestedView(View):
    #: Always true: the answer never says whether the address has an account.
    requested: bool
    #: Minutes the code stays valid.
    expires_in_minutes: float


@public.post("/request-otp", status_code=202, response_model=OtpRequestedView)
async def request_otp(
    request: Request, body: RequestOtpBody, background: BackgroundTasks, svc: Svc
) -> dict[str, Any]:
    """Public: email a one-time sign-in code to this address if a user has it (the answer is
    the same either way). 400 when the server has no SMTP settings; 429 after five requests a
    minute from one address or for one email."""
    message = await service.request_code(svc, _state(request), _client(request), body.email)
    background.add_task(service.deliver, svc, message)
    return {"requested": True, "expires_in_minutes": svc.settings.email_code_minutes}


@public.post("/verify-otp", response_model=SignedInView)
async def verify_otp(
    request: Request, response: Response, body: VerifyOtpBody, svc: Svc
) -> dict[str, Any]:
    """Public: trade the emailed code (single use; five wrong tries void it) for a session
    cookie, like POST /api/auth/login. With two-factor on, ``totp_code`` is needed too."""
    session = await service.verify_code(
        svc,
        _state(request),
        _client(request),
        body.email,
        body.code,
        body.totp_code,
        request.headers.get("user-agent"),
    )
    return _signed_in(request, response, session)
