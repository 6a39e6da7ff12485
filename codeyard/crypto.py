"""Secrets at rest: AES-GCM with a key file in the data dir.

The key is 32 random bytes, base64 in ``<data_dir>/secret.key``, created with mode 0600 the
first time something is encrypted. Ciphertexts are ``v1:`` + base64(nonce ‖ ciphertext ‖ tag)
and are bound to an ``aad`` (the owning row's id), so a ciphertext copied to another row does
not decrypt. Nothing here logs or formats a plaintext.
"""

from __future__ import annotations

import base64
import binascii
import os
import threading
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["SecretBox", "SecretsUnavailable", "secret_box"]

_VERSION = "v1:"
_NONCE_BYTES = 12


class SecretsUnavailable(Exception):
    """The key file is unreadable or does not match the stored ciphertext."""


class SecretBox:
    """Encrypts and decrypts small secrets with the data dir's key (loaded lazily, once)."""

    def __init__(self, key_path: Path) -> None:
        self._key_path = key_path
        self._aead: AESGCM | None = None
        self._lock = threading.Lock()

    def _cipher(self) -> AESGCM:
        # cryptography (~7 ms of CPU) loads with the first secret, not at start-up (issue 15).
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        with self._lock:
            if self._aead is None:
                self._aead = AESGCM(_load_or_create_key(self._key_path))
            return self._aead

    def encrypt(self, plaintext: bytes, aad: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._cipher().encrypt(nonce, plaintext, aad.encode())
        return _VERSION + base64.b64encode(nonce + sealed).decode()

    def decrypt(self, token: str, aad: str) -> bytes:
        if not token.startswith(_VERSION):
            raise SecretsUnavailable("the stored secret has an unknown format")
        from cryptography.exceptions import InvalidTag  # the library _cipher() loads

        try:
            raw = base64.b64decode(token[len(_VERSION) :], validate=True)
            return self._cipher().decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], aad.encode())
        except (InvalidTag, ValueError, binascii.Error):
            raise SecretsUnavailable(
                f"the stored secret does not decrypt with {self._key_path}: the key file was "
                "replaced or the data was changed. Restore the original key file, or delete "
                "and recreate the env set."
            ) from None


@cache
def secret_box(key_path: Path) -> SecretBox:
    """The one box per key file in this process (the key is read once)."""
    return SecretBox(key_path)


def _load_or_create_key(path: Path) -> bytes:
    """The key from ``path``; a new random one written 0600 when the file does not exist."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        try:
            key = base64.b64decode(path.read_text().strip(), validate=True)
        except (OSError, ValueError, binascii.Error) as exc:
            raise SecretsUnavailable(f"cannot read the key file {path}: {exc}") from None
        if len(key) != 32:
            raise SecretsUnavailable(f"the key file {path} does not hold a 256-bit key") from None
        return key
    key = os.urandom(32)  # what AESGCM.generate_key(bit_length=256) returns
    with os.fdopen(fd, "w") as fh:
        fh.write(base64.b64encode(key).decode() + "\n")
    return key
