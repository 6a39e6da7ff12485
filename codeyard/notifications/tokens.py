"""Action tokens: signed, single-use, short-lived permission to answer one approval as one user.

A token is ``<payload>.<mac>``: the payload names the approval, the user, a random nonce and
the expiry; the MAC is HMAC-SHA256 with a key kept in the data dir. The nonce is recorded when
the token is issued and marked used by the first answer, so a token works once, and never after
it expires or after the approval was answered some other way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from codeyard.domain.errors import Forbidden

KEY_FILE = "action_tokens.key"
TTL_SECONDS = 15 * 60


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_key(data_dir: Path) -> bytes:
    path = data_dir / KEY_FILE
    if path.exists():
        return path.read_bytes()
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return key


@dataclass(frozen=True, slots=True)
class Claims:
    approval_id: str
    user_id: str
    nonce: str
    expires_at: float
    #: Set for a token carried by a chat message's buttons (``nch_…``): only that channel's
    #: signed interaction may use it, never the public one-tap link.
    channel: str = ""


def issue(
    key: bytes, approval_id: str, user_id: str, ttl: float = TTL_SECONDS, channel: str = ""
) -> tuple[str, Claims]:
    expires = float(int(time.time() + ttl))  # whole seconds, as the token carries them
    claims = Claims(approval_id, user_id, secrets.token_urlsafe(16), expires, channel)
    payload: dict[str, str | int] = {
        "a": claims.approval_id,
        "u": claims.user_id,
        "n": claims.nonce,
        "e": int(claims.expires_at),
    }
    if channel:
        payload["c"] = channel
    body = _b64(json.dumps(payload, separators=(",", ":")).encode())
    mac = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())
    return f"{body}.{mac}", claims


def verify(key: bytes, token: str, now: float | None = None) -> Claims:
    """The token's claims if its MAC is right and it has not expired; 403 otherwise."""
    if not token.isascii():  # base64url only; compare_digest refuses other text (a 500)
        raise Forbidden("This approval link is not valid. Open the approval in Codeyard instead.")
    body, _, mac = token.partition(".")
    expected = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())
    if not mac or not hmac.compare_digest(mac, expected):
        raise Forbidden("This approval link is not valid. Open the approval in Codeyard instead.")
    try:
        data = json.loads(_unb64(body))
        claims = Claims(
            str(data["a"]), str(data["u"]), str(data["n"]), float(data["e"]), str(data.get("c", ""))
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise Forbidden("This approval link is not valid.") from exc
    if (now or time.time()) > claims.expires_at:
        raise Forbidden(
            "This approval link has expired. Open the approval in Codeyard to answer it."
        )
    return claims
