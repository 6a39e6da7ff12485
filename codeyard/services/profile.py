"""The caller's own profile (display name, time zone, picture) and SSH key (issue 19).

The SSH key pair is made here, never uploaded: the private key is sealed with the data dir's
key (AES-GCM, bound to the user's id) and leaves the database only as a 0600 file for the
length of one push of that user's runs (``push_env``). The API shows the public key and its
fingerprint, never the private key.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from zoneinfo import available_timezones

from codeyard.attachments import images
from codeyard.auth import ssh_keys
from codeyard.auth.principal import Principal
from codeyard.crypto import secret_box
from codeyard.domain.errors import BadRequest, NotFound, PayloadTooLarge, ValidationFailed
from codeyard.services import auth
from codeyard.services.context import Services
from codeyard.store import avatars, users
from codeyard.store.writer import Tx


def _profile(user: dict[str, Any]) -> dict[str, Any]:
    return {
        "username": user["username"],
        "display_name": user.get("display_name"),
        "effective_name": user.get("display_name") or user["username"],
        "time_zone": user.get("time_zone"),
        "email": user.get("email"),
        "avatar_url": users.avatar_url(user),
    }


async def _user(svc: Services, principal: Principal) -> dict[str, Any]:
    user = await auth.user_of(svc, principal)
    if user is None:
        raise BadRequest(
            "The admin token has no user profile: sign in as a user to have one (create users "
            "with POST /api/users)."
        )
    return user


async def get_profile(svc: Services, principal: Principal) -> dict[str, Any]:
    return _profile(await _user(svc, principal))


def _check_zone(zone: str) -> None:
    # Only names from the IANA database: ZoneInfo alone would also read other paths.
    if zone not in available_timezones():
        reason = f"'{zone}' is not an IANA time zone; use a name like 'Europe/Lisbon' or 'UTC'."
        raise ValidationFailed(reason, errors=[{"loc": ["body", "time_zone"], "msg": reason}])


async def put_profile(
    svc: Services, principal: Principal, display_name: str | None, time_zone: str | None
) -> dict[str, Any]:
    """Set both fields (``null``: unset)."""
    user = await _user(svc, principal)
    name = (display_name or "").strip() or None
    zone = (time_zone or "").strip() or None
    if name is not None and any(ord(c) < 32 for c in name):
        reason = "display_name may not hold control characters (newlines, tabs)."
        raise ValidationFailed(reason, errors=[{"loc": ["body", "display_name"], "msg": reason}])
    if zone is not None:
        _check_zone(zone)

    async def job(tx: Tx) -> dict[str, Any]:
        await users.update_user(tx, user["id"], display_name=name, time_zone=zone)
        return await users.get(tx.conn, user["id"])

    return _profile(await svc.writer.run(job))


# --- picture ---------------------------------------------------------------------------------

MAX_AVATAR_BYTES = 256 * 1024
_AVATAR_URL = re.compile(r"^data:(image/[a-z0-9.+-]+);base64,(.*)$", re.DOTALL)


def _bad_picture(why: str) -> ValidationFailed:
    return ValidationFailed(why, errors=[{"loc": ["body", "image"], "msg": why}])


def parse_avatar(data_url: str) -> tuple[str, bytes]:
    """A ``data:image/…;base64,`` URL → media type and bytes, the type checked by the bytes
    (a picture is served back to other users' browsers: it must be what it says)."""
    match = _AVATAR_URL.match(data_url)
    if match is None:
        raise _bad_picture("Send the picture as a data URL: data:image/png;base64,…")
    media_type, encoded = match.groups()
    if media_type not in images.MAGIC:
        raise _bad_picture(f"{media_type} is not accepted; use {', '.join(images.MAGIC)}.")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise _bad_picture("The picture's base64 does not decode.") from None
    if len(data) > MAX_AVATAR_BYTES:
        raise PayloadTooLarge(
            f"The picture is {len(data) // 1024} KiB; at most {MAX_AVATAR_BYTES // 1024} KiB."
        )
    if not data.startswith(images.MAGIC[media_type]):
        raise _bad_picture(f"The bytes are not a {media_type} file.")
    if media_type == "image/webp" and data[8:12] != b"WEBP":
        raise _bad_picture("The bytes are not an image/webp file.")
    return media_type, data


async def set_avatar(svc: Services, principal: Principal, data_url: str) -> dict[str, Any]:
    user = await _user(svc, principal)
    media_type, data = parse_avatar(data_url)

    async def job(tx: Tx) -> dict[str, Any]:
        await avatars.put(tx, user["id"], media_type, data)
        await users.update_user(tx, user["id"], avatar_at=auth.stamp(time.time()))
        return await users.get(tx.conn, user["id"])

    return _profile(await svc.writer.run(job))


async def delete_avatar(svc: Services, principal: Principal) -> None:
    user = await _user(svc, principal)

    async def job(tx: Tx) -> None:
        await avatars.drop(tx, user["id"])
        await users.update_user(tx, user["id"], avatar_at=None)

    await svc.writer.run(job)


async def avatar_of(svc: Services, user_id: str) -> tuple[str, bytes]:
    async with svc.engine.connect() as conn:
        found = await avatars.get(conn, user_id)
    if found is None:
        raise NotFound(f"User '{user_id}' has no picture.")
    return found


# --- SSH key -----------------------------------------------------------------------------------


def _key_view(user: dict[str, Any]) -> dict[str, Any]:
    return {
        "public_key": user["ssh_public_key"],
        "fingerprint": user["ssh_fingerprint"],
        "created_at": user["ssh_key_created_at"],
    }


def _aad(user_id: str) -> str:
    return f"ssh:{user_id}"


async def get_ssh_key(svc: Services, principal: Principal) -> dict[str, Any]:
    user = await _user(svc, principal)
    if user["ssh_public_key"] is None:
        raise NotFound("You have no SSH key yet: make one with POST /api/me/ssh-key.")
    return _key_view(user)


async def new_ssh_key(svc: Services, principal: Principal) -> dict[str, Any]:
    """A new key pair, replacing the previous one (give the public key to your git host)."""
    user = await _user(svc, principal)
    pair = ssh_keys.generate(f"{user['username']}@codeyard")
    sealed = secret_box(svc.settings.secret_key_path).encrypt(pair.private, _aad(user["id"]))

    async def job(tx: Tx) -> dict[str, Any]:
        await users.update_user(
            tx,
            user["id"],
            ssh_public_key=pair.public,
            ssh_private_key=sealed,
            ssh_fingerprint=pair.fingerprint,
            ssh_key_created_at=auth.stamp(time.time()),
        )
        return await users.get(tx.conn, user["id"])

    return _key_view(await svc.writer.run(job))


async def delete_ssh_key(svc: Services, principal: Principal) -> None:
    user = await _user(svc, principal)
    await svc.writer.run(
        lambda tx: users.update_user(
            tx,
            user["id"],
            ssh_public_key=None,
            ssh_private_key=None,
            ssh_fingerprint=None,
            ssh_key_created_at=None,
        )
    )


@asynccontextmanager
async def push_env(svc: Services, user_id: str | None) -> AsyncIterator[dict[str, str] | None]:
    """Environment for a push made for ``user_id``'s run: ``GIT_SSH_COMMAND`` with that user's
    key (and only it: ``IdentitiesOnly``), from a 0600 file removed right after. ``None`` when
    the user has no key: git then uses the server account's own SSH setup, as before."""
    if user_id is None:
        yield None
        return
    async with svc.engine.connect() as conn:
        user = await users.find(conn, user_id)
    if user is None or user.get("ssh_private_key") is None:
        yield None
        return
    private = secret_box(svc.settings.secret_key_path).decrypt(
        user["ssh_private_key"], _aad(user["id"])
    )
    with tempfile.TemporaryDirectory(prefix="codeyard-ssh-") as tmp:
        key = Path(tmp) / "id_ed25519"
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(private)
        # accept-new: a host seen for the first time is remembered (the server account's
        # known_hosts), a host whose key changed is refused.
        command = (
            f"ssh -i '{key}' -o IdentitiesOnly=yes -o BatchMode=yes "
            "-o StrictHostKeyChecking=accept-new"
        )
        yield {"GIT_SSH_COMMAND": command}
