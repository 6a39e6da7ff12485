"""Sign-in by emailed one-time code, and invitations by email (issue 19).

A code is 6 digits, valid ``email_code_minutes``, used once; a new request voids the previous
one, and five wrong guesses void it too. Only its digest is stored (salted with the code's id).
``request_code`` answers the same whether or not the address belongs to a user, and mail goes
out after the answer, so neither the answer nor its timing tells who has an account. Wrong codes
count against the same per-address and per-account limiter as passwords; requests count
against the account (the email) only.
"""

from __future__ import annotations

import logging
import re
import secrets
import smtplib
import time
from dataclasses import dataclass
from typing import Any

from codeyard.auth.secrets import digest, new_secret, same
from codeyard.domain.errors import BadRequest, Conflict, Unauthorized, ValidationFailed
from codeyard.domain.ids import new_id
from codeyard.mail import MailNotConfigured, send
from codeyard.services import auth, sign_in_limits
from codeyard.services.auth import AuthState, NewSession
from codeyard.services.context import Services
from codeyard.store import email_codes, users
from codeyard.store.writer import Tx

log = logging.getLogger(__name__)

#: What a username may be (as ``POST /api/users`` accepts it).
USERNAME = re.compile(r"[a-z0-9][a-z0-9._@-]{0,99}")
#: Wrong guesses one code survives.
MAX_ATTEMPTS = 5
CODE_DIGITS = 6


@dataclass(frozen=True)
class Outgoing:
    """A message to send after the answer (``None`` address: nobody to write to)."""

    to: str | None
    subject: str
    body: str


def normalize_email(email: str) -> str:
    return email.strip().lower()


def _code_digest(code_id: str, code: str) -> str:
    return digest(f"{code_id}:{code}")


def require_mail(svc: Services) -> None:
    if not svc.settings.smtp_host:
        raise BadRequest(
            "Email sign-in is off on this server: an admin sets CODEYARD_SMTP_HOST (and "
            "CODEYARD_SMTP_PORT, _SECURITY, _USERNAME, _PASSWORD, _FROM). Sign in with a "
            "password meanwhile."
        )


async def request_code(svc: Services, state: AuthState, client: str, email: str) -> Outgoing:
    """Make a code for the user with this address (if any) and the message that carries it."""
    require_mail(svc)
    address = normalize_email(email)
    await sign_in_limits.guard_sign_in(state, client, address)
    # Every request counts against the email (not the client address, which a whole office
    # may share): one mailbox gets at most five codes a minute.
    await sign_in_limits.password_check_failed(state, address)
    async with svc.engine.connect() as conn:
        user = await users.find_by_email(conn, address)
    if user is None:
        # The same serialized write as for a user, so the answer's timing does not tell.
        await svc.writer.run(lambda tx: email_codes.drop_of(tx, "usr_none"))
        return Outgoing(None, "", "")
    code = "".join(secrets.choice("0123456789") for _ in range(CODE_DIGITS))
    now = time.time()
    minutes = svc.settings.email_code_minutes
    values = {
        "id": new_id("otp"),
        "user_id": user["id"],
        "attempts": 0,
        "expires_at": auth.stamp(now + minutes * 60),
        "created_at": auth.stamp(now),
    }
    values["code_hash"] = _code_digest(values["id"], code)
    await svc.writer.run(lambda tx: email_codes.replace(tx, values))
    body = (
        f"Your Codeyard sign-in code is {code}\n\n"
        f"It works once, for {minutes:g} minutes, at {svc.settings.external_url}.\n"
        "If you did not ask for it, ignore this message: nobody can sign in without the code.\n"
    )
    return Outgoing(address, f"Codeyard sign-in code {code}", body)


async def deliver(svc: Services, message: Outgoing) -> None:
    """Send after the answer; a failure is logged (never the body, which holds the code)."""
    if message.to is None:
        return
    try:
        await send(svc.settings, message.to, message.subject, message.body)
    except (MailNotConfigured, OSError, smtplib.SMTPException, TimeoutError) as exc:
        log.warning("could not send mail to %s: %s", message.to, type(exc).__name__)


async def verify_code(
    svc: Services,
    state: AuthState,
    client: str,
    email: str,
    code: str,
    totp_code: str | None,
    user_agent: str | None,
) -> NewSession:
    """A session for the holder of a valid, unused code (and the TOTP code when two-factor
    is on: the mailbox alone is then not enough)."""
    address = normalize_email(email)
    await sign_in_limits.guard_sign_in(state, client, address)
    wrong = Unauthorized(
        "The code is not right, has expired or was used: ask for a new one with "
        "POST /api/auth/request-otp."
    )
    async with svc.engine.connect() as conn:
        user = await users.find_by_email(conn, address)
        row = await email_codes.current(conn, user["id"]) if user else None
    given = "".join(code.split())
    if user is None or row is None:
        await sign_in_limits.sign_in_failed(state, client, address)
        raise wrong
    if row["attempts"] >= MAX_ATTEMPTS or auth.parse_stamp(row["expires_at"]) <= time.time():
        await svc.writer.run(lambda tx: email_codes.drop_of(tx, user["id"]))
        await sign_in_limits.sign_in_failed(state, client, address)
        raise wrong
    if not same(_code_digest(row["id"], given), row["code_hash"]):
        await svc.writer.run(lambda tx: email_codes.count_attempt(tx, row["id"]))
        await sign_in_limits.sign_in_failed(state, client, address)
        raise wrong
    if user["totp_secret"] is not None:
        if not totp_code:
            raise Unauthorized(
                "This account uses two-factor authentication: send 'totp_code' with the "
                "emailed code.",
                mfa_required=True,
            )
        if not await auth.check_second_factor(svc, state, user, totp_code):
            await sign_in_limits.sign_in_failed(state, client, address)
            raise Unauthorized(
                "The two-factor code is not valid, or was already used.", mfa_required=True
            )
    if not await svc.writer.run(lambda tx: email_codes.take(tx, row["id"])):
        raise wrong
    await sign_in_limits.reset_failures(state, sign_in_limits.username_key(address))
    return await auth.open_session(svc, state, user, None, user_agent)


async def invite(
    svc: Services, email: str, role: str, username: str | None
) -> tuple[dict[str, Any], Outgoing]:
    """A user who signs in with emailed codes: their password is random and never shown (an
    admin can set one with PATCH /api/users/{id}); the message says how to sign in."""
    require_mail(svc)
    address = normalize_email(email)
    name = (username or address.split("@", 1)[0]).strip().lower()
    if not USERNAME.fullmatch(name):
        reason = (
            f"'{name}' (from the email) cannot be a username: send a 'username' of letters, "
            "digits and . _ @ - (at most 100 characters)."
        )
        raise ValidationFailed(reason, errors=[{"loc": ["body", "username"], "msg": reason}])
    values = auth.new_user_values(name, new_secret(), role)
    values["email"] = address

    async def job(tx: Tx) -> None:
        if await users.find_by_email(tx.conn, address) is not None:
            raise Conflict(f"A user with the email '{address}' exists already.")
        if await users.find_by_name(tx.conn, values["username"]) is not None:
            raise Conflict(
                f"A user named '{values['username']}' exists already: send a 'username'."
            )
        await users.insert(tx, values)

    await svc.writer.run(job)
    url = svc.settings.external_url
    body = (
        f"You were invited to Codeyard at {url} as '{values['username']}' ({role}).\n\n"
        f'To sign in, open {url}, choose "Email me a code" and enter {address}.\n'
    )
    return users.public(values), Outgoing(address, "You are invited to Codeyard", body)
