"""Send one plain-text message through the configured SMTP server.

The standard library's ``smtplib`` does the protocol (STARTTLS, implicit TLS, AUTH); it blocks,
so a message is sent on a worker thread with a timeout. Message bodies may hold a sign-in code:
nothing here logs a body, and the password never leaves the settings object.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid

from codeyard.config import Settings

#: Seconds one SMTP conversation may take (connect, TLS, AUTH, DATA).
TIMEOUT_SECONDS = 20.0


class MailNotConfigured(Exception):
    """No SMTP server is set (``CODEYARD_SMTP_HOST``)."""


def _message(settings: Settings, to: str, subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="codeyard.local")
    message.set_content(body)
    return message


def _send_blocking(settings: Settings, message: EmailMessage) -> None:
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if settings.smtp_security == "tls":
        smtp = smtplib.SMTP_SSL(
            settings.smtp_host, settings.smtp_port, timeout=TIMEOUT_SECONDS, context=context
        )
    else:
        smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=TIMEOUT_SECONDS)
    with smtp:
        if settings.smtp_security == "starttls":
            smtp.starttls(context=context)
        if settings.smtp_username:
            smtp.login(settings.smtp_username, settings.smtp_password)
        smtp.send_message(message)


async def send(settings: Settings, to: str, subject: str, body: str) -> None:
    """Deliver one message to ``to``; raises ``MailNotConfigured`` without an SMTP host and
    ``OSError``/``smtplib.SMTPException`` when the server refuses or cannot be reached."""
    if not settings.smtp_host:
        raise MailNotConfigured("Email is off: set CODEYARD_SMTP_HOST (and the other SMTP_*).")
    message = _message(settings, to, subject, body)
    await asyncio.wait_for(
        asyncio.to_thread(_send_blocking, settings, message), TIMEOUT_SECONDS + 5
    )
