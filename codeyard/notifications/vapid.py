"""The server's VAPID key pair: generated at first start, kept in the data dir (mode 0600)."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid02

FILE = "vapid_private.pem"


def load_or_create(data_dir: Path) -> Vapid02:
    path = data_dir / FILE
    if path.exists():
        return Vapid02.from_file(str(path))
    vapid = Vapid02()
    vapid.generate_keys()
    pem = vapid.private_pem()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    return vapid


def application_server_key(vapid: Vapid02) -> str:
    """The public key as browsers' ``pushManager.subscribe`` wants it (URL-safe base64)."""
    raw = vapid.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")
