"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, for the email tests.

Codeyard sends through the standard library's SMTP client over a real socket; only the mail
provider is replaced, since none can exist here."""

from __future__ import annotations

import email
import email.policy
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from tests.support.server import free_port


class Mailbox:
    """Messages received by the server, parsed."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.port = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]

    def wait_for(self, address: str, count: int = 1, timeout: float = 30.0) -> EmailMessage:
        """The ``count``-th message to ``address`` (the server runs on its own thread)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.to(address)
            if len(got) >= count:
                return got[count - 1]
            time.sleep(0.02)
        raise AssertionError(f"no message {count} to {address}: {len(self.to(address))} came")


@contextmanager
def smtp_server() -> Iterator[Mailbox]:
    box = Mailbox()
    box.port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=box.port, ready_timeout=10)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()
