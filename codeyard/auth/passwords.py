"""Password hashing with Argon2id (argon2-cffi's defaults)."""

from __future__ import annotations

import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
MIN_LENGTH = 8
MAX_LENGTH = 1024


@functools.cache
def _dummy() -> str:
    """Verified against when the user does not exist, so a missing user costs the same time.
    Hashed on first use, not at import: hashing is deliberately slow (~0.1 s)."""
    return _hasher.hash("codeyard-no-such-user")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """True when ``password`` matches ``stored``; with no stored hash, spends the same time."""
    try:
        return _hasher.verify(stored or _dummy(), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False
