"""Connecting Codeyard to GitHub as an App (issue 21): the manifest flow, the App's secrets at
rest, its installations, and a fresh installation token for everything else.

The App is stored under one key of the settings table (``github_app``): its id, slug and owner in
clear, its private key, webhook secret and client secret encrypted with the data dir's key (bound
to the App id and the field, so a value copied elsewhere does not decrypt). Nothing here logs or
returns a secret. The manifest flow's ``state`` is single-use, expires after an hour, and only
its digest is stored. An installation is recorded only after GitHub confirms, under the App's own
key, that it is one of this App's, so the public setup redirect cannot be used to plant one.

Installation tokens last an hour: :func:`keep_token` mints a new one before the old expires and
hands it to :func:`codeyard.prs.base.use_app_token`, which pull requests, the poller and the
sweeper read when no token variable is set. githubkit is imported on first use (it costs
start-up; see ``services.github.sweep``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from codeyard.crypto import SecretsUnavailable, secret_box
from codeyard.domain.errors import BadRequest, CodeyardError, Conflict, NotFound
from codeyard.prs.base import PrConfig, use_app_token
from codeyard.services.context import Services
from codeyard.store import settings as settings_store

if TYPE_CHECKING:
    from codeyard.github.app import InstallationToken

__all__ = [
    "app_key",
    "callback",
    "create_repository",
    "keep_token",
    "repositories",
    "setup",
    "start",
    "status",
    "webhook_secret",
]

log = logging.getLogger(__name__)
KEY, STATE_KEY = "github_app", "github_app_state"
_SECRETS = ("pem", "webhook_secret", "client_secret")
#: Minted tokens by installation id (process memory only: they expire within the hour).
_tokens: dict[int, InstallationToken] = {}
#: A token is renewed when it has less than this left.
RENEW_BEFORE = timedelta(minutes=15)


def _now() -> datetime:
    return datetime.now(UTC)


def _digest(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


async def _load(svc: Services, key: str) -> Any:
    return (await settings_store.read(svc.engine)).get(key)


async def _save(svc: Services, key: str, value: Any) -> None:
    await settings_store.save(svc.writer, {key: value})


async def _app(svc: Services) -> dict[str, Any]:
    app = await _load(svc, KEY)
    if not isinstance(app, dict):
        raise NotFound("No GitHub App is connected: create one with POST /api/github/app/manifest.")
    return app


def _secret(svc: Services, app: dict[str, Any], field: str) -> str:
    box = secret_box(svc.settings.secret_key_path)
    try:
        return box.decrypt(str(app[field]), f"{KEY}:{app['app_id']}:{field}").decode()
    except (SecretsUnavailable, KeyError) as exc:
        raise Conflict(
            f"The GitHub App's {field} cannot be read ({exc}): restore the data dir's key file, "
            "or connect the App again (POST /api/github/app/manifest)."
        ) from exc


async def start(svc: Services, name: str, organization: str | None) -> dict[str, Any]:
    """A manifest and where to post it: GitHub creates the App, then returns the browser to
    ``/api/github/app/callback`` with a code and this ``state``."""
    from codeyard.github.app import manifest

    if not svc.settings.public_url.startswith(("https://", "http://")):
        raise BadRequest(
            "Set CODEYARD_PUBLIC_URL to the address GitHub reaches this server at first: the "
            "App's webhooks and its redirects back here go there."
        )
    external = svc.settings.external_url
    state = secrets.token_urlsafe(24)
    expires = (_now() + timedelta(hours=1)).isoformat()
    await _save(svc, STATE_KEY, {"digest": _digest(state), "expires_at": expires})
    web = f"https://{PrConfig.from_env().github_web_host}"
    where = (
        f"/organizations/{organization}/settings/apps/new" if organization else "/settings/apps/new"
    )
    return {
        "post_url": f"{web}{where}?state={state}",
        "manifest": manifest(name, external),
        "state": state,
    }


async def callback(svc: Services, code: str, state: str) -> str:
    """Check the state (single use), trade the code for the App's credentials, store them
    encrypted; the URL to send the browser on to (installing the App)."""
    from codeyard.github.app import convert

    stored = await _load(svc, STATE_KEY)
    fresh = isinstance(stored, dict) and str(stored.get("expires_at", "")) > _now().isoformat()
    if not fresh or not hmac.compare_digest(str(stored.get("digest")), _digest(state)):
        raise BadRequest(
            "This GitHub App callback's state is unknown, used or expired: start again with "
            "POST /api/github/app/manifest."
        )
    await _save(svc, STATE_KEY, None)  # single use, whatever GitHub answers next
    created = await convert(PrConfig.from_env().github_api_url, code)
    box = secret_box(svc.settings.secret_key_path)
    value: dict[str, Any] = {
        "app_id": created.app_id,
        "slug": created.slug,
        "html_url": created.html_url,
        "owner": created.owner,
        "client_id": created.client_id,
        "installations": [],
        "created_at": _now().isoformat(),
    }
    for field in _SECRETS:
        plain = getattr(created, field).encode()
        value[field] = box.encrypt(plain, f"{KEY}:{created.app_id}:{field}")
    await _save(svc, KEY, value)
    _tokens.clear()
    return f"{created.html_url.rstrip('/')}/installations/new"


async def setup(svc: Services, installation_id: int) -> str:
    """GitHub's redirect after the App was installed: record the installation once GitHub
    confirms it is this App's; the URL to send the browser on to (the web UI)."""
    from codeyard.github.app import installation

    app = await _app(svc)
    api = PrConfig.from_env().github_api_url
    account = await installation(api, int(app["app_id"]), _secret(svc, app, "pem"), installation_id)
    known = [i for i in app.get("installations") or [] if int(i["id"]) != installation_id]
    app["installations"] = [*known, {"id": installation_id, "account": account}]
    await _save(svc, KEY, app)
    await refresh(svc)
    return f"{svc.settings.external_url}/?github_app=installed"


async def status(svc: Services) -> dict[str, Any]:
    app = await _load(svc, KEY)
    if not isinstance(app, dict):
        return {"configured": False, "installations": []}
    installs = app.get("installations") or []
    tokens = [_tokens[int(i["id"])] for i in installs if int(i["id"]) in _tokens]
    return {
        "configured": True,
        "app_id": int(app["app_id"]),
        "slug": app.get("slug"),
        "html_url": app.get("html_url"),
        "owner": app.get("owner"),
        "installations": installs,
        "token_expires_at": tokens[0].expires_at.isoformat() if tokens else None,
    }


async def _token(svc: Services, app: dict[str, Any], installation_id: int) -> str:
    """A token of the installation with at least :data:`RENEW_BEFORE` left, minted if needed."""
    from codeyard.github.app import mint

    held = _tokens.get(installation_id)
    if held is None or held.expires_at - _now() < RENEW_BEFORE:
        api = PrConfig.from_env().github_api_url
        held = await mint(api, int(app["app_id"]), _secret(svc, app, "pem"), installation_id)
        _tokens[installation_id] = held
    return held.token


async def repositories(svc: Services) -> list[dict[str, Any]]:
    """Every repository the App's installations may reach, with the installation's id."""
    from codeyard.github.app import repositories as listed

    app = await _app(svc)
    api = PrConfig.from_env().github_api_url
    out = []
    for item in app.get("installations") or []:
        token = await _token(svc, app, int(item["id"]))
        out += [{**r, "installation_id": int(item["id"])} for r in await listed(api, token)]
    return out


async def create_repository(
    svc: Services, name: str, private: bool, installation_id: int | None
) -> dict[str, Any]:
    """A new repository in the organization the App is installed on (the one named, or the
    only one); what ``GET /api/github/app/repos`` lists for it."""
    from codeyard.github.app import create_repository as create

    app = await _app(svc)
    installs = app.get("installations") or []
    chosen = [i for i in installs if installation_id in (None, int(i["id"]))]
    if len(chosen) != 1:
        known = ", ".join(f"{i['id']} ({i['account']})" for i in installs) or "none"
        raise BadRequest(
            f"Name the installation to create the repository in: installation_id, one of "
            f"{known} (install the App on an organization first if there is none)."
        )
    install = chosen[0]
    token = await _token(svc, app, int(install["id"]))
    api = PrConfig.from_env().github_api_url
    created = await create(api, token, str(install["account"]), name, private)
    return {**created, "installation_id": int(install["id"])}


async def refresh(svc: Services) -> bool:
    """Make the first installation's token current for pull requests; False without one."""
    app = await _load(svc, KEY)
    installs = (app or {}).get("installations") or [] if isinstance(app, dict) else []
    if not installs:
        use_app_token(None)
        return False
    use_app_token(await _token(svc, app, int(installs[0]["id"])))
    return True


async def app_key(svc: Services) -> tuple[int, str] | None:
    """The App's id and private key (for the sweeper's App-hook calls); None without an App."""
    app = await _load(svc, KEY)
    return (int(app["app_id"]), _secret(svc, app, "pem")) if isinstance(app, dict) else None


async def webhook_secret(svc: Services) -> str:
    """The App's webhook secret ('' without an App): its deliveries are signed with it."""
    app = await _load(svc, KEY)
    return _secret(svc, app, "webhook_secret") if isinstance(app, dict) else ""


async def keep_token(svc: Services, every: float = 300.0) -> None:
    """The background task: renew the installation token before it expires."""
    try:
        while True:
            try:
                await refresh(svc)
            except CodeyardError as exc:  # GitHub refused or is unreachable: next round
                log.warning("GitHub App token not renewed: %s", exc.detail)
            except Exception:  # the loop must outlive one bad round, or tokens go stale
                log.exception("GitHub App token not renewed")
            await asyncio.sleep(every)
    finally:
        use_app_token(None)
