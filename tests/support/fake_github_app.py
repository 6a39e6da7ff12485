"""The fake GitHub (tests/support/fake_github.py) with what a GitHub App needs, over real HTTP:

* ``POST /app-manifests/{code}/conversions`` (no credentials; each code works once): the new
  App's id, slug, a real RSA private key (``pem``), webhook and client secrets;
* ``GET /app/installations/{id}`` and ``POST /app/installations/{id}/access_tokens``: only with
  the App's JWT, checked as GitHub does (RS256 with the App's public key, ``iss`` the App id,
  not expired);
* ``GET /installation/repositories``: with an installation token the fake minted; minted tokens
  also work for every other endpoint of the fake, as a token variable's would;
* ``GET /app/hook/deliveries`` and ``POST /app/hook/deliveries/{id}/attempts`` (the App's JWT):
  the App webhook's attempts, newest first, and redelivery; :meth:`FakeGitHubApp.app_hook` sets
  where the App's hook posts and :meth:`FakeGitHubApp.deliver_app` sends, signed with the App's
  webhook secret;
* ``POST /orgs/{org}/repos``: with an installation token of an installation on ``org`` (403
  otherwise), 422 when the name is taken; the new repository joins the installation's.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.fake_github import _ROUTES, DOCS, FakeGitHub, _Hook, _Reply
from tests.support.fake_github import _Repo as _FakeRepo

_APP_ROUTES = [
    ("POST", re.compile(r"/app-manifests/([^/]+)/conversions"), "convert_manifest"),
    ("GET", re.compile(r"/app/installations/(\d+)"), "get_installation"),
    ("POST", re.compile(r"/app/installations/(\d+)/access_tokens"), "access_token"),
    ("GET", re.compile(r"/installation/repositories"), "installation_repos"),
    ("POST", re.compile(r"/orgs/([^/]+)/repos"), "create_org_repo"),
    ("GET", re.compile(r"/app/hook/deliveries"), "app_hook_deliveries"),
    ("POST", re.compile(r"/app/hook/deliveries/(\d+)/attempts"), "app_redeliver"),
]
APP_HOOK_ID = 9001


class FakeGitHubApp(FakeGitHub):
    routes = [*_APP_ROUTES, *_ROUTES]

    def __init__(self, token: str = "ghp_fake", **kwargs: Any) -> None:
        super().__init__(token, **kwargs)
        # A new id per fake, as each App has: githubkit caches JWTs by App id.
        self.app_id = 400_000 + secrets.randbelow(100_000)
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ).decode()
        self.webhook_secret = "whsec-app-" + secrets.token_hex(8)
        self.codes: set[str] = set()
        self.installations: dict[int, dict[str, Any]] = {}  # id → {account, repos}
        self.minted: dict[str, int] = {}  # token → installation id

    def manifest_code(self) -> str:
        """The code GitHub appends to the redirect once the App was created from a manifest."""
        code = secrets.token_hex(10)
        with self._lock:
            self.codes.add(code)
        return code

    def install(self, installation_id: int, account: str, repos: list[str]) -> None:
        with self._lock:
            self.installations[installation_id] = {"account": account, "repos": list(repos)}

    def authorized(self, path: str, authorization: str) -> bool:
        if path.startswith("/app-manifests/"):
            return True
        scheme, _, credential = authorization.partition(" ")
        if path.startswith("/app/"):
            try:
                claims = jwt.decode(credential, self._key.public_key(), algorithms=["RS256"])
            except jwt.PyJWTError:
                return False
            return scheme == "Bearer" and str(claims.get("iss")) == str(self.app_id)
        if path.startswith("/installation/"):
            return credential in self.minted
        return credential in self.minted or super().authorized(path, authorization)

    def _convert_manifest(self, _q: Any, _b: Any, code: str) -> _Reply:
        if code not in self.codes:
            raise _Reply(404, {"message": "Not Found", "documentation_url": DOCS})
        self.codes.discard(code)
        return _Reply(
            201,
            {
                "id": self.app_id,
                "slug": "codeyard-test",
                "name": "Codeyard test",
                "html_url": f"{self.web_url}/apps/codeyard-test",
                "owner": {"login": "acme"},
                "client_id": "Iv1.fake",
                "client_secret": "client-secret-" + secrets.token_hex(6),
                "webhook_secret": self.webhook_secret,
                "pem": self.pem,
            },
        )

    def _installation(self, installation_id: str) -> dict[str, Any]:
        found = self.installations.get(int(installation_id))
        if found is None:
            raise _Reply(404, {"message": "Not Found", "documentation_url": DOCS})
        return found

    def _get_installation(self, _q: Any, _b: Any, installation_id: str) -> _Reply:
        found = self._installation(installation_id)
        body = {"id": int(installation_id), "app_id": self.app_id}
        return _Reply(200, {**body, "account": {"login": found["account"]}})

    def _access_token(self, _q: Any, _b: Any, installation_id: str) -> _Reply:
        self._installation(installation_id)
        token = "ghs_" + secrets.token_hex(12)
        self.minted[token] = int(installation_id)
        expires = datetime.fromtimestamp(time.time(), UTC) + timedelta(hours=1)
        stamp = expires.strftime("%Y-%m-%dT%H:%M:%SZ")
        return _Reply(201, {"token": token, "expires_at": stamp})

    def _installation_repos(self, query: Any, _b: Any) -> _Reply:
        token = self.current.headers.get("authorization", "").partition(" ")[2]
        found = self.installations[self.minted[token]]
        repos = [
            {
                "full_name": name,
                "private": True,
                "html_url": f"{self.web_url}/{name}",
                "clone_url": f"{self.web_url}/{name}.git",
            }
            for name in found["repos"]
        ]
        return _Reply(200, {"total_count": len(repos), "repositories": repos})

    def _create_org_repo(self, _q: Any, body: Any, org: str) -> _Reply:
        token = self.current.headers.get("authorization", "").partition(" ")[2]
        found = self.installations.get(self.minted.get(token, -1))
        if found is None or found["account"] != org:
            raise _Reply(403, {"message": "Resource not accessible by integration"})
        name = f"{org}/{body.get('name')}"
        if name in found["repos"]:
            raise _Reply(422, {"message": "Repository creation failed.", "errors": []})
        found["repos"].append(name)
        self._repos[name] = _FakeRepo(None)
        repo = {"full_name": name, "private": bool(body.get("private"))}
        urls = {"html_url": f"{self.web_url}/{name}", "clone_url": f"{self.web_url}/{name}.git"}
        return _Reply(201, {**repo, **urls, "auto_init": body.get("auto_init")})

    def app_hook(self, url: str) -> None:
        """Where the App's webhook posts (the manifest's ``hook_attributes.url``)."""
        with self._lock:
            self.hooks[APP_HOOK_ID] = _Hook(
                APP_HOOK_ID, "", url, self.webhook_secret, "integration"
            )

    def deliver_app(self, full_name: str, event: str, payload: dict[str, Any]) -> int:
        """Send ``event`` about ``full_name`` through the App's hook; the attempt's status."""
        body = {**payload, "repository": {"full_name": full_name, "id": 1}}
        raw = json.dumps(body).encode()
        return self._attempt(self.hooks[APP_HOOK_ID], str(uuid.uuid4()), event, raw, False)

    def _app_hook_deliveries(self, query: Any, _b: Any) -> _Reply:
        mine = [d for d in reversed(self.deliveries) if d["hook_id"] == APP_HOOK_ID]
        shown = [{k: v for k, v in d.items() if k not in ("hook_id", "payload")} for d in mine]
        return _Reply(200, shown[: int(query.get("per_page", ["30"])[0])])

    def _app_redeliver(self, _q: Any, _b: Any, delivery_id: str) -> _Reply:
        found = [d for d in self.deliveries if d["id"] == int(delivery_id)]
        if not found or found[0]["hook_id"] != APP_HOOK_ID:
            raise _Reply(404, {"message": "Not Found", "documentation_url": DOCS})
        original = found[0]
        args = (self.hooks[APP_HOOK_ID], original["guid"], original["event"], original["payload"])
        threading.Thread(target=self._attempt, args=(*args, True), daemon=True).start()
        return _Reply(202, {})
