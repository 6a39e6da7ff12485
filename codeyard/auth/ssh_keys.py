"""ed25519 key pairs for pushing over SSH (issue 19): made with ``cryptography``, in the
OpenSSH formats ``ssh`` and hosts (GitHub, GitLab) read, fingerprinted like ``ssh-keygen -l``."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


@dataclass(frozen=True)
class KeyPair:
    #: ``ssh-ed25519 AAAA… comment``: what a git host is given.
    public: str
    #: ``-----BEGIN OPENSSH PRIVATE KEY-----…``, unencrypted: seal it before storing.
    private: bytes
    #: ``SHA256:…`` (unpadded base64 of the SHA-256 of the key blob), as ``ssh-keygen -l``.
    fingerprint: str


def fingerprint(public: str) -> str:
    blob = base64.b64decode(public.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def generate(comment: str) -> KeyPair:
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    public = f"{public} {comment}" if comment else public
    return KeyPair(public, private, fingerprint(public))
