"""Password hashing with Argon2id (argon2-cffi's defaults).

argon2-cffi loads with the first password hashed or checked, not at start-up (issue 15): a
server signed in to with tokens only never needs it.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from argon2 import PasswordHasher

MIN_LENGTH = 8
MAX_LENGTH = 1024


@functools.cache
def _hasher() -> PasswordHasher:
    """The one hasher, made on first use."""
    from argon2 import PasswordHasher

    return PasswordHasher()


@functools.cache
def _dummy() -> str:
    """Verified against when the user does not exist, so a missing user costs the same time.
    Hashed on first use, not at import: hashing is deliberately slow (~0.1 s)."""
    return _hasher().hash("codeyard-no-such-user")


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """True when ``password`` matches ``stored``; with no stored hash, spends the same time."""
    hasher = _hasher()
    from argon2.exceptions import InvalidHashError, VerificationError  # loaded by now

    try:
        return hasher.verify(stored or _dummy(), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False
