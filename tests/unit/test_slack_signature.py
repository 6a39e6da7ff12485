"""Slack's request signature: a matching one passes, anything else is a 401, never a 500."""

from __future__ import annotations

import hashlib
import hmac
import time

import pytest

from codeyard.domain.errors import Unauthorized
from codeyard.notifications.slack import verify

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def _sign(body: bytes, timestamp: str) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(SECRET.encode(), base, hashlib.sha256).hexdigest()


def test_a_matching_signature_passes_and_others_are_refused() -> None:
    now = str(int(time.time()))
    body = b"payload=%7B%7D"
    verify(SECRET, body, now, _sign(body, now))
    stale = str(int(time.time()) - 600)
    for timestamp, signature in [
        (now, _sign(b"other", now)),  # another body
        (stale, _sign(body, stale)),  # older than five minutes
        (now, None),
        ("not-a-time", _sign(body, "not-a-time")),
        (now, "v0=\u00e9\u00e9"),  # non-ASCII header text: compare_digest raised (a 500)
    ]:
        with pytest.raises(Unauthorized):
            verify(SECRET, body, timestamp, signature)
