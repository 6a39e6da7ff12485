"""Random secrets and their stored digests.

Sessions, tokens, share links and recovery codes are random with ≥128 bits, so a plain SHA-256
is enough to store them (a slow hash is for passwords, which people choose). Comparisons of
digests use ``hmac.compare_digest``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

PAT_PREFIX = "cy_pat_"
SESSION_BYTES = 32


def new_secret(prefix: str = "", nbytes: int = 32) -> str:
    return prefix + secrets.token_urlsafe(nbytes)


def digest(secret: str) -> str:
    """Hex SHA-256 of a secret, as stored."""
    return hashlib.sha256(secret.encode()).hexdigest()


def same(a: str, b: str) -> bool:
    """Constant-time equality of two strings."""
    return hmac.compare_digest(a.encode(), b.encode())


def matches(secret: str, stored_digest: str) -> bool:
    return same(digest(secret), stored_digest)


def display_prefix(token: str) -> str:
    """What a token list shows so its owner can tell tokens apart (never enough to use it)."""
    return token[: len(PAT_PREFIX) + 4]
