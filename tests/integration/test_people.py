"""The team around tickets (issue 19): invitations and sign-in by emailed one-time code (through
a real SMTP server on loopback), profiles, SSH keys that push a user's runs, and role changes."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pyotp
import pytest
from click.testing import Result
from sqlalchemy import select

from codeyard.cli.testing import invoke
from codeyard.config import Settings
from codeyard.store import schema
from tests.conftest import TOKEN, Api, make_repo, running_api
from tests.support.auth import add_user, anonymous, bearer, sign_in, token_of
from tests.support.live_app import serve
from tests.support.server import free_port
from tests.support.smtp import Mailbox, smtp_server

pytestmark = pytest.mark.anyio


@pytest.fixture
def mailbox() -> object:
    with smtp_server() as box:
        yield box


@pytest.fixture
async def mail_api(tmp_path: Path, mailbox: Mailbox) -> AsyncIterator[Api]:
    settings = Settings(
        data_dir=tmp_path / "data",
        admin_token=TOKEN,
        smtp_host="127.0.0.1",
        smtp_port=mailbox.port,
        smtp_security="none",
        smtp_from="Codeyard <cy@example.com>",
    )
    async with running_api(settings) as api:
        yield api


def code_in(body: str) -> str:
    found = re.search(r"sign-in code is (\d{6})", body)
    assert found, body
    return found.group(1)


async def wait_mail(box: Mailbox, address: str, count: int = 1) -> str:
    message = await anyio.to_thread.run_sync(lambda: box.wait_for(address, count))
    assert message["From"] == "Codeyard <cy@example.com>"
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


async def test_invite_then_sign_in_with_an_emailed_code(mail_api: Api, mailbox: Mailbox) -> None:
    api = mail_api
    invited = await api.post("/api/users/invite", json={"email": "Ana@Example.com"})
    assert invited.status_code == 201, invited.text
    assert invited.json()["username"] == "ana" and invited.json()["email"] == "ana@example.com"
    assert "Email me a code" in await wait_mail(mailbox, "ana@example.com")
    again = await api.post("/api/users/invite", json={"email": "ana@example.com"})
    assert again.status_code == 409 and "exists already" in again.json()["detail"]
    plus = await api.post("/api/users/invite", json={"email": "ana+dev@example.com"})
    assert plus.status_code == 422 and "send a 'username'" in plus.json()["detail"]
    named = {"email": "ana+dev@example.com", "username": "ana-dev", "role": "viewer"}
    assert (await api.post("/api/users/invite", json=named)).json()["role"] == "viewer"

    async with anonymous(api) as client:
        # An unknown address gets the same answer, and no mail.
        unknown = await client.post("/api/auth/request-otp", json={"email": "nobody@example.com"})
        asked = await client.post("/api/auth/request-otp", json={"email": "ANA@example.com"})
        assert unknown.status_code == asked.status_code == 202
        assert unknown.json() == asked.json() == {"requested": True, "expires_in_minutes": 10.0}
        code = code_in(await wait_mail(mailbox, "ana@example.com", 2))
        assert mailbox.to("nobody@example.com") == []

        wrong = "000000" if code != "000000" else "111111"
        bad = await client.post(
            "/api/auth/verify-otp", json={"email": "ana@example.com", "code": wrong}
        )
        assert bad.status_code == 401 and "request-otp" in bad.json()["detail"]
        ok = await client.post(
            "/api/auth/verify-otp", json={"email": "ana@example.com", "code": code}
        )
        assert ok.status_code == 200, ok.text
        assert ok.json()["user"]["username"] == "ana"
        me = await client.get("/api/auth/me")
        assert me.json()["user"]["email"] == "ana@example.com" and me.json()["role"] == "member"
        reused = await client.post(
            "/api/auth/verify-otp", json={"email": "ana@example.com", "code": code}
        )
        assert reused.status_code == 401  # single use

    # Only the digest is stored.
    async with api.services.engine.connect() as conn:
        rows = (await conn.execute(select(schema.email_codes))).all()
    assert all(code not in str(tuple(r)) for r in rows)

    # A newer code voids the older one; a mailbox gets at most five codes a minute.
    async with anonymous(api) as client:
        for _ in range(2):
            assert (
                await client.post("/api/auth/request-otp", json={"email": "ana@example.com"})
            ).status_code == 202
        first = code_in(await wait_mail(mailbox, "ana@example.com", 3))
        second = code_in(await wait_mail(mailbox, "ana@example.com", 4))
        if first != second:
            old = await client.post(
                "/api/auth/verify-otp", json={"email": "ana@example.com", "code": first}
            )
            assert old.status_code == 401
        statuses = [
            (
                await client.post("/api/auth/request-otp", json={"email": "ana@example.com"})
            ).status_code
            for _ in range(5)
        ]
        assert statuses[-1] == 429 and 202 in statuses


async def test_email_sign_in_is_refused_without_smtp(sqlite_api: Api) -> None:
    async with anonymous(sqlite_api) as client:
        resp = await client.post("/api/auth/request-otp", json={"email": "ana@example.com"})
    assert resp.status_code == 400 and "CODEYARD_SMTP_HOST" in resp.json()["detail"]
    invite = await sqlite_api.post("/api/users/invite", json={"email": "ana@example.com"})
    assert invite.status_code == 400
    malformed = await sqlite_api.post("/api/users/invite", json={"email": "not an address"})
    assert malformed.status_code == 422
    async with sqlite_api.services.engine.connect() as conn:
        assert (await conn.execute(select(schema.users))).all() == []  # nothing half-created


async def test_profile(sqlite_api: Api) -> None:
    api = sqlite_api
    admin_token = await api.get("/api/me/profile")
    assert admin_token.status_code == 400 and "sign in as a user" in admin_token.json()["detail"]
    await add_user(api, "bea", "viewer")
    async with bearer(api, await token_of(api, "bea", ["runs:read"])) as bea:
        assert (await bea.get("/api/me/profile")).json() == {
            "username": "bea",
            "display_name": None,
            "effective_name": "bea",
            "time_zone": None,
            "email": None,
            "avatar_url": None,
        }
        zone = await bea.put("/api/me/profile", json={"time_zone": "Mars/Olympus"})
        assert zone.status_code == 422 and "IANA" in zone.json()["detail"]
        control = await bea.put("/api/me/profile", json={"display_name": "Bea\nX"})
        assert control.status_code == 422
        ok = await bea.put(
            "/api/me/profile", json={"display_name": " Bea Souza ", "time_zone": "Europe/Lisbon"}
        )
        assert ok.status_code == 200, ok.text
        assert ok.json()["effective_name"] == "Bea Souza"
        assert ok.json()["time_zone"] == "Europe/Lisbon"
        users = (await api.get("/api/users")).json()["data"]
        assert [u["display_name"] for u in users] == ["Bea Souza"]

        # A picture: its type is checked by its bytes, its size bounded.
        png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
        as_url = "data:image/png;base64," + base64.b64encode(png).decode()
        lying = "data:image/png;base64," + base64.b64encode(b"\xff\xd8\xff" + png).decode()
        svg = "data:image/svg+xml;base64," + base64.b64encode(b"<svg/>").decode()
        huge = "data:image/png;base64," + base64.b64encode(png * 260).decode()
        assert (await bea.put("/api/me/avatar", json={"image": lying})).status_code == 422
        assert (await bea.put("/api/me/avatar", json={"image": svg})).status_code == 422
        assert (await bea.put("/api/me/avatar", json={"image": huge})).status_code == 413
        set_ = await bea.put("/api/me/avatar", json={"image": as_url})
        assert set_.status_code == 200, set_.text
        url = set_.json()["avatar_url"]
        assert url.startswith("/api/users/") and "?v=" in url
    await add_user(api, "cid", "viewer")
    async with bearer(api, await token_of(api, "cid", ["runs:read"])) as teammate:
        got = await teammate.get(url)
        assert got.status_code == 200 and got.content == png
        assert got.headers["content-type"] == "image/png"
        assert got.headers["x-content-type-options"] == "nosniff"
    async with anonymous(api) as nobody:
        assert (await nobody.get(url)).status_code == 401
    listed = (await api.get("/api/users")).json()["data"]
    assert [u["avatar_url"] for u in listed if u["username"] == "bea"] == [url]
    async with bearer(api, await token_of(api, "bea", ["runs:read"])) as bea:
        assert (await bea.delete("/api/me/avatar")).status_code == 204
        assert (await bea.get("/api/me/profile")).json()["avatar_url"] is None
    assert (await api.get(url)).status_code == 404


async def test_role_route_is_admin_only_audited_and_keeps_an_admin(api: Api) -> None:
    """On SQLite and PostgreSQL (migration 0019's columns and unique email index)."""
    root = await add_user(api, "root", "admin")
    cai = await add_user(api, "cai", "member")
    async with bearer(api, await token_of(api, "cai", ["runs:read", "runs:write"])) as member:
        refused = await member.patch(f"/api/users/{root['id']}/role", json={"role": "viewer"})
        assert refused.status_code == 403
    last = await api.request("PATCH", f"/api/users/{root['id']}/role", json={"role": "member"})
    assert last.status_code == 409 and "last admin" in last.json()["detail"]
    bad = await api.request("PATCH", f"/api/users/{cai['id']}/role", json={"role": "owner"})
    assert bad.status_code == 422
    async with sign_in(api, "root") as admin:
        up = await admin.patch(f"/api/users/{cai['id']}/role", json={"role": "admin"})
        assert up.status_code == 200 and up.json()["role"] == "admin"
        down = await admin.patch("/api/users/root/role", json={"role": "member"})
        assert down.status_code == 200 and down.json()["role"] == "member"
    # The email sign-in codes go to: unique, compared in lower case.
    taken = await api.request("PATCH", f"/api/users/{cai['id']}", json={"email": "x@example.com"})
    assert taken.status_code == 200 and taken.json()["email"] == "x@example.com"
    dup = await api.request("PATCH", "/api/users/root", json={"email": "X@example.com"})
    assert dup.status_code == 409 and "Another user" in dup.json()["detail"]
    log = (await api.get("/api/audit-log")).json()["data"]
    changes = [(e["action"], e["actor"], e["details"]) for e in log if e["action"] == "user.role"]
    assert changes == [
        ("user.role", root["id"], {"username": "root", "old": "admin", "new": "member"}),
        ("user.role", root["id"], {"username": "cai", "old": "member", "new": "admin"}),
    ]


def fake_ssh(bin_dir: Path, log: Path) -> None:
    """An ``ssh`` that records the key it was given and runs the git command locally: no SSH
    server can run here, so this stands in for the host (git and the push itself are real)."""
    bin_dir.mkdir()
    script = bin_dir / "ssh"
    script.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "-G" ]; then exit 0; fi\n'
        'key=""\n'
        "while [ $# -gt 1 ]; do\n"
        '  case "$1" in -i) key="$2"; shift 2;; *) shift;; esac\n'
        "done\n"
        f'ssh-keygen -y -f "$key" >> "{log}" || exit 9\n'
        'stat -c %a "$key" >> ' + f'"{log}"\n'
        f'echo "$key" >> "{log}"\n'
        'exec sh -c "$1"\n'
    )
    script.chmod(0o755)


async def test_ssh_key_is_sealed_and_pushes_its_users_runs(
    sqlite_api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = sqlite_api
    await add_user(api, "dan", "member")
    narrow = await token_of(api, "dan", ["runs:read"])
    async with bearer(api, narrow) as token_client:
        assert (await token_client.get("/api/me/ssh-key")).status_code == 404
        assert (await token_client.post("/api/me/ssh-key")).status_code == 403  # account route
    async with sign_in(api, "dan") as dan:
        made = await dan.post("/api/me/ssh-key")
        assert made.status_code == 201, made.text
        key = made.json()
        assert key["public_key"].startswith("ssh-ed25519 ") and key["public_key"].endswith(
            " dan@codeyard"
        )
        (tmp_path / "k.pub").write_text(key["public_key"] + "\n")
        listed = subprocess.run(
            ["ssh-keygen", "-l", "-f", str(tmp_path / "k.pub")],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert listed.split()[1] == key["fingerprint"]
        assert (await dan.get("/api/me/ssh-key")).json() == key
        dan_token = (
            await dan.post(
                "/api/tokens",
                json={
                    "name": "t",
                    "scopes": [
                        "runs:read",
                        "runs:write",
                        "git:push",
                        "git:merge",
                        "settings:write",
                    ],
                },
            )
        ).json()["token"]
    async with api.services.engine.connect() as conn:
        stored = (
            await conn.execute(
                select(schema.users.c.ssh_private_key).where(schema.users.c.username == "dan")
            )
        ).scalar_one()
    assert stored.startswith("v1:") and "PRIVATE KEY" not in stored

    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    repo = make_repo(tmp_path / "site", {"README.md": "# site\n"})
    subprocess.run(
        ["git", "remote", "add", "origin", f"ssh://git@host.invalid{remote}"], cwd=repo, check=True
    )
    log = tmp_path / "ssh.log"
    fake_ssh(tmp_path / "bin", log)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    async with bearer(api, dan_token) as client:
        body = {
            "prompt": "Add a file",
            "repo_path": str(repo),
            "provider": "script",
            "agent_options": {
                "scenario": {"steps": [{"write": {"path": "a.txt", "content": "a\n"}}]}
            },
        }
        created = await client.post("/api/runs", json=body)
        assert created.status_code == 201, created.text
        run = await api.wait_status(created.json()["id"], "review", "failed")
        assert run["status"] == "review", run["status_reason"]
        committed = await client.post(f"/api/runs/{run['id']}/commit")
        assert committed.status_code == 200, committed.text
        pushed = await client.post(f"/api/runs/{run['id']}/push")
        assert pushed.status_code == 200, pushed.text
    used = log.read_text().split("\n")
    assert used[0].split()[:2] == key["public_key"].split()[:2]  # dan's key, and only it
    assert used[1] == "600"
    heads = subprocess.run(
        ["git", "branch", "--list"], cwd=remote, capture_output=True, text=True, check=True
    ).stdout
    assert run["branch"] in heads
    assert not Path(used[2]).exists()  # the key file lived for the push only


async def test_an_emailed_code_is_not_enough_with_two_factor_on(
    mail_api: Api, mailbox: Mailbox
) -> None:
    api = mail_api
    eli = await add_user(api, "eli", "member")
    assert (
        await api.request("PATCH", f"/api/users/{eli['id']}", json={"email": "eli@example.com"})
    ).status_code == 200
    async with sign_in(api, "eli") as session:
        secret = (await session.post("/api/auth/mfa/setup")).json()["secret"]
        on = await session.post("/api/auth/mfa/verify", json={"code": pyotp.TOTP(secret).now()})
        assert on.status_code == 200, on.text
    async with anonymous(api) as client:
        await client.post("/api/auth/request-otp", json={"email": "eli@example.com"})
        code = code_in(await wait_mail(mailbox, "eli@example.com"))
        body = {"email": "eli@example.com", "code": code}
        alone = await client.post("/api/auth/verify-otp", json=body)
        assert alone.status_code == 401 and alone.json()["mfa_required"] is True
        # With the authenticator's code (the next step's: enrolment used this one) it works.
        totp = pyotp.TOTP(secret).at(time.time() + 30)
        both = await client.post("/api/auth/verify-otp", json={**body, "totp_code": totp})
        assert both.status_code == 200, both.text
        assert both.json()["user"]["username"] == "eli"


async def test_cli_invites_by_email_and_changes_roles(tmp_path: Path, mailbox: Mailbox) -> None:
    """``codeyard users invite|role`` against the real app over loopback HTTP."""
    settings = Settings(
        data_dir=tmp_path / "data",
        admin_token=TOKEN,
        port=free_port(),
        smtp_host="127.0.0.1",
        smtp_port=mailbox.port,
        smtp_security="none",
        smtp_from="Codeyard <cy@example.com>",
    )
    env: dict[str, str | None] = {
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "CODEYARD_DATA_DIR": str(settings.data_dir),
        "CODEYARD_ADMIN_TOKEN": None,
        "CODEYARD_TOKEN": None,
    }
    async with serve(settings) as live:

        def cy(*args: str) -> Result:
            return invoke(list(args), server=live.url, token=TOKEN, env=env)

        invited = await anyio.to_thread.run_sync(
            lambda: cy("users", "invite", "hal@example.com", "--role", "viewer")
        )
        assert invited.exit_code == 0, invited.stderr
        assert "Invited hal@example.com as hal (viewer)." in invited.stdout
        assert "Email me a code" in await wait_mail(mailbox, "hal@example.com")
        up = await anyio.to_thread.run_sync(lambda: cy("users", "role", "hal", "admin"))
        assert up.exit_code == 0 and "hal is now admin." in up.stdout
        last = await anyio.to_thread.run_sync(lambda: cy("users", "role", "hal", "member"))
        assert last.exit_code != 0 and "last admin" in last.stderr
