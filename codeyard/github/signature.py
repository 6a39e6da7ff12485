"""``X-Hub-Signature-256``: HMAC-SHA256 of the raw body with the webhook secret.

Only ``sha256=`` signatures are accepted (GitHub's legacy SHA-1 header is not), the comparison
is constant-time (:func:`hmac.compare_digest`), and it is made on the bytes as received: parsing
and re-serializing the JSON first would change them. The standard library rather than githubkit's
helpers: this runs on every delivery, and githubkit costs start-up (it loads with the sweeper).
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["sign_body", "valid"]


def valid(secret: str, raw: bytes, header: str | None) -> bool:
    """True only for a non-empty secret and a matching ``sha256=<hex>`` signature."""
    if not secret or not header or not header.startswith("sha256="):
        return False
    # As bytes: a header with non-ASCII text (latin-1 decoded) would make compare_digest raise.
    return hmac.compare_digest(sign_body(secret, raw).encode(), header.encode(errors="replace"))


def sign_body(secret: str, raw: bytes) -> str:
    """The header value GitHub would send (tests and the fake GitHub use it)."""
    digest = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return f"sha256={digest}"
