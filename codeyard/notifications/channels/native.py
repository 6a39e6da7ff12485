"""Direct APNs and FCM senders, for a server holding the app's own push credentials.

- **APNs** (token-based): an ES256 JWT signed with the team's ``.p8`` key (``kid`` = key id,
  ``iss`` = team id), reused for 50 minutes (Apple refuses one older than an hour and throttles
  refreshing more often than every 20), sent over HTTP/2 to ``/3/device/<token>``.
- **FCM HTTP v1**: an OAuth 2 access token from the service account (an RS256 JWT assertion
  posted to its ``token_uri``), reused until a minute before it expires, then
  ``POST /v1/projects/<project>/messages:send``.

Each platform falls back to the relay (``devices.RelaySender``) when its credentials are not
configured. Gone tokens are pruned: APNs 410 and 400
``BadDeviceToken``, FCM 404 ``UNREGISTERED``. JWTs are signed with PyJWT; nothing is
hand-rolled but the token request itself.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codeyard.notifications.channels.base import Delivery, Outcome, http_outcome
from codeyard.notifications.channels.devices import DeviceSender, apns_payload, fcm_payload

if TYPE_CHECKING:
    # httpx and PyJWT (with cryptography) load on first use, not at the server's start-up
    # (issue 15).
    import httpx

APNS_JWT_SECONDS = 50 * 60
FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@dataclass(frozen=True, slots=True)
class ApnsCredentials:
    key_pem: str
    key_id: str
    team_id: str
    #: The app's bundle id (``apns-topic``).
    topic: str
    url: str = "https://api.push.apple.com"


@dataclass(frozen=True, slots=True)
class FcmCredentials:
    project_id: str
    client_email: str
    private_key_pem: str
    token_uri: str
    url: str = "https://fcm.googleapis.com"

    @classmethod
    def from_file(cls, path: Path, url: str) -> FcmCredentials:
        """A Firebase service-account JSON key (Project settings → Service accounts)."""
        data = json.loads(path.read_text())
        return cls(
            project_id=str(data["project_id"]),
            client_email=str(data["client_email"]),
            private_key_pem=str(data["private_key"]),
            token_uri=str(data.get("token_uri") or "https://oauth2.googleapis.com/token"),
            url=url,
        )


async def _post(client: httpx.AsyncClient, url: str, **kwargs: Any) -> httpx.Response | Outcome:
    import httpx

    try:
        return await client.post(url, **kwargs)
    except httpx.HTTPError as exc:
        return Outcome(False, None, retry=True, error=f"{type(exc).__name__}: {exc}")


class DirectSender:
    """APNs and/or FCM straight from this server; the other platform (or both) via ``fallback``."""

    def __init__(
        self,
        fallback: DeviceSender,
        apns: ApnsCredentials | None = None,
        fcm: FcmCredentials | None = None,
    ) -> None:
        self.fallback = fallback
        self.apns = apns
        self.fcm = fcm
        self._apns_jwt: tuple[str, float] | None = None
        self._fcm_token: tuple[str, float] | None = None
        self._http2: httpx.AsyncClient | None = None

    def apns_jwt(self, now: float | None = None) -> str:
        assert self.apns is not None
        now = time.time() if now is None else now
        if self._apns_jwt is None or now - self._apns_jwt[1] > APNS_JWT_SECONDS:
            import jwt

            token = jwt.encode(
                {"iss": self.apns.team_id, "iat": int(now)},
                self.apns.key_pem,
                algorithm="ES256",
                headers={"kid": self.apns.key_id},
            )
            self._apns_jwt = (token, now)
        return self._apns_jwt[0]

    async def _fcm_access_token(self, client: httpx.AsyncClient) -> str | Outcome:
        assert self.fcm is not None
        now = time.time()
        if self._fcm_token is not None and now < self._fcm_token[1]:
            return self._fcm_token[0]
        import jwt

        assertion = jwt.encode(
            {
                "iss": self.fcm.client_email,
                "scope": FCM_SCOPE,
                "aud": self.fcm.token_uri,
                "iat": int(now),
                "exp": int(now) + 3600,
            },
            self.fcm.private_key_pem,
            algorithm="RS256",
        )
        resp = await _post(
            client,
            self.fcm.token_uri,
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "assertion": assertion,
            },
        )
        if isinstance(resp, Outcome):
            return resp
        if resp.status_code != 200:
            outcome = http_outcome(resp)
            return Outcome(
                False, resp.status_code, retry=outcome.retry, error=f"FCM sign-in: {outcome.error}"
            )
        body = resp.json()
        self._fcm_token = (
            str(body["access_token"]),
            now + float(body.get("expires_in", 3600)) - 60,
        )
        return self._fcm_token[0]

    def _client_http2(self) -> httpx.AsyncClient:
        # APNs speaks HTTP/2 only (negotiated by TLS ALPN; plain http stays HTTP/1.1).
        if self._http2 is None:
            import httpx

            self._http2 = httpx.AsyncClient(http2=True, timeout=10.0)
        return self._http2

    async def send(
        self, client: httpx.AsyncClient, platform: str, token: str, delivery: Delivery
    ) -> Outcome:
        if platform == "apns" and self.apns is not None:
            return await self._send_apns(token, delivery)
        if platform == "fcm" and self.fcm is not None:
            return await self._send_fcm(client, token, delivery)
        return await self.fallback.send(client, platform, token, delivery)

    async def _send_apns(self, token: str, delivery: Delivery) -> Outcome:
        assert self.apns is not None
        m = delivery.message
        headers = {
            "authorization": f"bearer {self.apns_jwt()}",
            "apns-topic": self.apns.topic,
            "apns-push-type": "alert",
            "apns-collapse-id": m.tag[:64],
            "apns-priority": "10" if m.urgent else "5",
        }
        url = f"{self.apns.url.rstrip('/')}/3/device/{token}"
        resp = await _post(self._client_http2(), url, json=apns_payload(delivery), headers=headers)
        if isinstance(resp, Outcome):
            return resp
        outcome = http_outcome(resp)
        if resp.status_code == 400 and "BadDeviceToken" in resp.text:
            return Outcome(False, 400, prune=True, error=outcome.error)
        return outcome

    async def _send_fcm(self, client: httpx.AsyncClient, token: str, delivery: Delivery) -> Outcome:
        assert self.fcm is not None
        access = await self._fcm_access_token(client)
        if isinstance(access, Outcome):
            return access
        url = f"{self.fcm.url.rstrip('/')}/v1/projects/{self.fcm.project_id}/messages:send"
        resp = await _post(
            client,
            url,
            json=fcm_payload(token, delivery),
            headers={"authorization": f"Bearer {access}"},
        )
        if isinstance(resp, Outcome):
            return resp
        if resp.status_code == 401:  # the access token was revoked early: sign in again next time
            self._fcm_token = None
        return http_outcome(resp)

    async def aclose(self) -> None:
        if self._http2 is not None:
            await self._http2.aclose()
            self._http2 = None


def device_sender(settings: Any) -> DeviceSender:
    """The relay, with APNs and/or FCM sent directly when their credentials are configured."""
    from codeyard.notifications.channels.devices import RelaySender

    relay = RelaySender(settings.push_relay_url, settings.push_relay_token)
    apns = fcm = None
    if settings.apns_key_path and settings.apns_key_id and settings.apns_team_id:
        if not settings.apns_topic:
            raise ValueError("CODEYARD_APNS_TOPIC (the app's bundle id) is needed for APNs.")
        apns = ApnsCredentials(
            key_pem=Path(settings.apns_key_path).read_text(),
            key_id=settings.apns_key_id,
            team_id=settings.apns_team_id,
            topic=settings.apns_topic,
            url=settings.apns_url,
        )
    if settings.fcm_service_account_path:
        fcm = FcmCredentials.from_file(Path(settings.fcm_service_account_path), settings.fcm_url)
    if apns is None and fcm is None:
        return relay
    return DirectSender(relay, apns, fcm)
