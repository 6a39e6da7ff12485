"""The I/O-free auth rules: scopes and roles, TOTP steps and replays, the failure limiter."""

from __future__ import annotations

import pyotp
import pytest

from codeyard.api.auth import SIGNED_IN, scope_check
from codeyard.auth import passwords, scopes, totp
from codeyard.auth.ratelimit import FailureLimiter
from codeyard.auth.secrets import PAT_PREFIX, digest, display_prefix, matches, new_secret


def test_roles_and_token_scopes() -> None:
    assert scopes.for_role("viewer") == {"runs:read", "settings:read"}
    assert scopes.for_role("member") == scopes.ALL - {"admin"}
    assert scopes.for_role("admin") == scopes.ALL
    assert scopes.for_role("nobody") == frozenset()
    assert scopes.expand(["admin"]) == scopes.ALL
    assert scopes.expand(["runs:read", "bogus"]) == {"runs:read"}
    # A token never does more than its user's role allows, even with "admin".
    assert scopes.effective(["admin"], "viewer") == {"runs:read", "settings:read"}
    assert scopes.effective(["runs:write", "runs:read"], "viewer") == {"runs:read"}
    assert scopes.effective(["git:push"], "member") == {"git:push"}
    assert scopes.unknown(["runs:read", "runs:fly", "x"]) == ["runs:fly", "x"]


def test_totp_accepts_one_step_of_drift_and_refuses_replays() -> None:
    secret = totp.new_secret()
    code = pyotp.TOTP(secret)
    now = 1_800_000_015.0
    step = int(now // 30)
    assert totp.accepted_step(secret, code.at(now), now, None) == step
    assert totp.accepted_step(secret, code.at(now - 30), now, None) == step - 1
    assert totp.accepted_step(secret, code.at(now + 30), now, None) == step + 1
    assert totp.accepted_step(secret, code.at(now - 60), now, None) is None
    assert totp.accepted_step(secret, code.at(now), now, step) is None  # replay
    assert totp.accepted_step(secret, code.at(now - 30), now, step - 1) is None
    assert totp.accepted_step(secret, code.at(now + 30), now, step) == step + 1
    assert totp.accepted_step(secret, "12345a", now, None) is None
    uri = totp.provisioning_uri(secret, "ada")
    assert uri.startswith("otpauth://totp/Codeyard:ada?") and f"secret={secret}" in uri


def test_recovery_codes() -> None:
    codes = totp.new_recovery_codes()
    assert len(set(codes)) == totp.RECOVERY_CODES
    assert all(len(c) == 11 and c[5] == "-" for c in codes)
    assert totp.normalize_recovery_code(codes[0].upper().replace("-", " ")) == codes[0]
    assert totp.looks_like_recovery_code(codes[0]) and not totp.looks_like_recovery_code("123456")


def test_limiter_allows_five_failures_a_minute() -> None:
    now = [1000.0]
    limiter = FailureLimiter(limit=5, window=60, clock=lambda: now[0])
    for _ in range(5):
        assert limiter.retry_after("1.2.3.4") is None
        limiter.failed("1.2.3.4")
    assert limiter.retry_after("1.2.3.4") == 60
    assert limiter.retry_after("5.6.7.8") is None
    now[0] += 45
    assert limiter.retry_after("1.2.3.4") == 15
    now[0] += 15
    assert limiter.retry_after("1.2.3.4") is None
    limiter.failed("1.2.3.4")
    limiter.reset("1.2.3.4")
    assert limiter.retry_after("1.2.3.4") is None


def test_passwords_and_secrets() -> None:
    stored = passwords.hash_password("s3cret pass")
    assert stored.startswith("$argon2id$") and "s3cret" not in stored
    assert passwords.verify_password(stored, "s3cret pass")
    assert not passwords.verify_password(stored, "s3cret pasS")
    assert not passwords.verify_password(None, "anything")
    assert not passwords.verify_password("not-a-hash", "anything")
    token = new_secret(PAT_PREFIX)
    assert token.startswith(PAT_PREFIX) and len(token) > 40
    assert matches(token, digest(token)) and not matches(token + "x", digest(token))
    assert display_prefix(token) == token[:11]


@pytest.mark.parametrize("scope", ["runs:read", "admin"])
def test_scope_names_are_checked_when_routes_declare_them(scope: str) -> None:
    assert scope_check(scope).required_scope == scope  # type: ignore[attr-defined]
    assert scope_check(SIGNED_IN).required_scope == SIGNED_IN  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="unknown scope"):
        scope_check("runs:fly")
