"""Identity rules with no I/O: scopes and roles, password and secret hashing, TOTP, limits."""
