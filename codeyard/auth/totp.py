"""Time-based one-time passwords (RFC 6238 through pyotp) and recovery codes.

A code is accepted for the current 30-second step and one step either side (clock drift), and
only for a step later than the last one accepted: the same code twice is a replay and is refused.
pyotp loads with the first code made or checked, not at start-up (issue 15).
"""

from __future__ import annotations

import secrets

from codeyard.auth.secrets import same

ISSUER = "Codeyard"
STEP_SECONDS = 30
DRIFT_STEPS = 1
RECOVERY_CODES = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


def new_secret() -> str:
    import pyotp

    return pyotp.random_base32()


def provisioning_uri(secret: str, username: str) -> str:
    """The ``otpauth://`` URI an authenticator app reads (usually as a QR code)."""
    import pyotp

    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)


def accepted_step(secret: str, code: str, now: float, last_step: int | None) -> int | None:
    """The time step ``code`` belongs to if it is valid and not a replay, else None."""
    code = code.strip().replace(" ", "")
    if not code.isdigit():
        return None
    import pyotp

    totp = pyotp.TOTP(secret)
    current = int(now // STEP_SECONDS)
    found = None
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        # Every candidate is compared (no early exit), each in constant time.
        if same(totp.at(step * STEP_SECONDS), code) and found is None:
            found = step
    if found is None or (last_step is not None and found <= last_step):
        return None
    return found


def new_recovery_codes(count: int = RECOVERY_CODES) -> list[str]:
    """Single-use codes like ``k7m2p-9xq4t`` (50 bits each)."""

    def one() -> str:
        chars = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(10))
        return f"{chars[:5]}-{chars[5:]}"

    return [one() for _ in range(count)]


def normalize_recovery_code(code: str) -> str:
    raw = code.strip().lower().replace("-", "").replace(" ", "")
    return f"{raw[:5]}-{raw[5:]}"


def looks_like_recovery_code(code: str) -> bool:
    return len(code.strip().replace("-", "").replace(" ", "")) == 10
