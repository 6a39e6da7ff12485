"""Direct APNs and FCM senders against fake Apple and Google endpoints over loopback HTTP.

The fakes check what the real services check: Apple verifies the ES256 provider JWT with the
team's key (``kid``, ``iss``) and the ``apns-topic``; Google's token endpoint verifies the
service account's RS256 assertion and hands out an access token that FCM then requires. What
cannot be tested here: Apple's HTTP/2-only transport (negotiated by TLS ALPN; these fakes
speak HTTP/1.1 over plain loopback) and real credentials.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from codeyard.notifications.channels.base import Delivery
from codeyard.notifications.channels.native import DirectSender, device_sender
from codeyard.notifications.messages import Notification
from tests.conftest import open_api
from tests.integration.test_notifications import notify_settings

pytestmark = pytest.mark.anyio
TEAM, KEY_ID, TOPIC, PROJECT = "TEAM123456", "KEY1234567", "dev.codeyard.app", "cy-proj"


@dataclass
class FakeVendors:
    """Apple's APNs and Google's OAuth + FCM, as far as a sender can tell."""

    apns_key: ec.EllipticCurvePrivateKey
    google_key: rsa.RSAPrivateKey
    server: ThreadingHTTPServer | None = None
    received: list[tuple[str, dict[str, str], dict[str, Any]]] = field(default_factory=list)
    token_requests: int = 0
    apns_jwts: set[str] = field(default_factory=set)

    @property
    def base(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        if path == "/token":
            form = parse_qs(body.decode())
            claims = jwt.decode(
                form["assertion"][0],
                self.google_key.public_key(),
                algorithms=["RS256"],
                audience=f"{self.base}/token",
            )
            assert claims["scope"].endswith("/firebase.messaging")
            self.token_requests += 1
            return 200, {"access_token": "ya29.fake", "expires_in": 3600}
        data = json.loads(body)
        self.received.append((path, headers, data))
        if path == f"/v1/projects/{PROJECT}/messages:send":
            if headers.get("authorization") != "Bearer ya29.fake":
                return 401, {"error": {"status": "UNAUTHENTICATED"}}
            if data["message"]["token"] == "gone-token":
                return 404, {
                    "error": {"status": "NOT_FOUND", "details": [{"errorCode": "UNREGISTERED"}]}
                }
            return 200, {"name": f"projects/{PROJECT}/messages/1"}
        if path.startswith("/3/device/"):
            scheme, _, token = headers.get("authorization", "").partition(" ")
            assert scheme == "bearer"
            assert jwt.get_unverified_header(token)["kid"] == KEY_ID
            claims = jwt.decode(token, self.apns_key.public_key(), algorithms=["ES256"])
            assert claims["iss"] == TEAM and headers["apns-topic"] == TOPIC
            self.apns_jwts.add(token)
            if path.endswith("/bad-device"):
                return 400, {"reason": "BadDeviceToken"}
            return 200, {}
        return 404, {}


@pytest.fixture
def vendors() -> Iterator[FakeVendors]:
    fake = FakeVendors(
        ec.generate_private_key(ec.SECP256R1()), rsa.generate_private_key(65537, 2048)
    )

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                status, answer = fake.answer(self.path, headers, body)
            except Exception as exc:  # a bad signature: the vendor refuses with 403
                status, answer = 403, {"reason": f"{type(exc).__name__}: {exc}"}
            raw = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    fake.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.server.daemon_threads = True
    threading.Thread(target=fake.server.serve_forever, daemon=True).start()
    try:
        yield fake
    finally:
        fake.server.shutdown()
        fake.server.server_close()


def credentials(tmp_path: Path, fake: FakeVendors) -> dict[str, Any]:
    p8 = tmp_path / "AuthKey.p8"
    p8.write_bytes(
        fake.apns_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    account = tmp_path / "service-account.json"
    pem = fake.google_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    account.write_text(
        json.dumps(
            {
                "project_id": PROJECT,
                "client_email": "push@cy-proj.iam.gserviceaccount.com",
                "private_key": pem.decode(),
                "token_uri": f"{fake.base}/token",
            }
        )
    )
    return {
        "apns_key_path": p8,
        "apns_key_id": KEY_ID,
        "apns_team_id": TEAM,
        "apns_topic": TOPIC,
        "apns_url": fake.base,
        "fcm_service_account_path": account,
        "fcm_url": fake.base,
    }


async def test_devices_are_pushed_directly_with_signed_credentials(
    tmp_path: Path, vendors: FakeVendors
) -> None:
    settings = notify_settings(tmp_path, **credentials(tmp_path, vendors))
    async for api in open_api(settings):
        ios = (await api.post("/api/devices", json={"platform": "apns", "token": "a" * 64})).json()
        android = (
            await api.post("/api/devices", json={"platform": "fcm", "token": "fcm-token-1"})
        ).json()
        for device in (ios, android, ios, android):
            sent = (await api.post(f"/api/devices/{device['id']}/test")).json()
            assert sent["ok"] is True, sent
    paths = [p for p, _, _ in vendors.received]
    assert paths.count(f"/3/device/{'a' * 64}") == 2
    assert paths.count(f"/v1/projects/{PROJECT}/messages:send") == 2
    assert vendors.token_requests == 1  # the access token is reused until it expires
    assert len(vendors.apns_jwts) == 1  # so is the provider JWT (Apple throttles new ones)
    apple = next(d for p, _, d in vendors.received if p.startswith("/3/device/"))
    assert apple["aps"]["alert"]["title"] == "Codeyard test notification"
    google = next(d for p, _, d in vendors.received if p.startswith("/v1/"))
    assert google["message"]["token"] == "fcm-token-1"


async def test_gone_tokens_are_pruned_and_unconfigured_platforms_use_the_relay(
    tmp_path: Path, vendors: FakeVendors
) -> None:
    from codeyard.config import Settings

    creds = credentials(tmp_path, vendors)
    sender = device_sender(Settings(data_dir=tmp_path / "d", **creds))
    assert isinstance(sender, DirectSender)
    msg = Notification(kind="test", title="t", body="b", tag="x", run_id="", path="/")
    delivery = Delivery(message=msg, config={}, message_id="m1", url="http://codeyard/")
    async with httpx.AsyncClient() as client:
        bad = await sender.send(client, "apns", "bad-device", delivery)
        gone = await sender.send(client, "fcm", "gone-token", delivery)
    await sender.aclose()
    assert bad.prune and bad.status_code == 400 and "BadDeviceToken" in (bad.error or "")
    assert gone.prune and gone.status_code == 404

    relay_only = device_sender(
        Settings(data_dir=tmp_path / "e", push_relay_url=vendors.base, apns_topic=TOPIC)
    )
    assert not isinstance(relay_only, DirectSender)
    with pytest.raises(ValueError, match="APNS_TOPIC"):
        device_sender(Settings(data_dir=tmp_path / "f", **{**creds, "apns_topic": ""}))
