"""A GitHub App for Codeyard, created from a manifest (issue 21): the GitHub calls, no storage.

The manifest flow: Codeyard builds a manifest (name, webhook URL, the permissions and events the
pull-request loop needs) and the browser posts it to GitHub; GitHub creates the App and sends the
browser back with a one-time ``code``, which :func:`convert` trades for the App's id, private key
and webhook secret. From the key, githubkit signs the App's JWT (RS256) and mints installation
tokens (one hour), which then act as the token for pull requests, checks and webhooks.

Answers are read as JSON rather than githubkit's parsed models: Enterprise servers of different
versions omit fields the newest schema marks required, and only a few fields are used here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from githubkit import AppAuthStrategy, GitHub, TokenAuthStrategy, UnauthAuthStrategy
from githubkit.exception import RequestError, RequestFailed

from codeyard.domain.errors import BadRequest
from codeyard.github.client import Delivery, next_cursor

__all__ = ["AppCredentials", "InstallationToken", "convert", "manifest"]

#: What the pull-request loop reads and writes; nothing more is asked of the installer.
PERMISSIONS = {
    "contents": "write",  # push run branches
    "pull_requests": "write",  # open, update, merge
    "checks": "read",
    "statuses": "read",
    "actions": "read",  # failing job logs
    "metadata": "read",
    "administration": "write",  # required checks (branch protection), new repositories
}
EVENTS = [
    "pull_request",
    "pull_request_review",
    "pull_request_review_comment",
    "check_run",
    "check_suite",
    "status",
    "push",
    "issue_comment",
]


def manifest(name: str, external_url: str) -> dict[str, Any]:
    """The App manifest GitHub's ``/settings/apps/new`` form takes (``hook_attributes`` points at
    this server's webhook route; GitHub returns the browser to ``redirect_url``)."""
    base = external_url.rstrip("/")
    return {
        "name": name,
        "url": base,
        "hook_attributes": {"url": f"{base}/api/github/webhooks", "active": True},
        "redirect_url": f"{base}/api/github/app/callback",
        "setup_url": f"{base}/api/github/app/setup",
        "setup_on_update": True,
        "public": False,
        "default_permissions": dict(PERMISSIONS),
        "default_events": list(EVENTS),
    }


@dataclass(frozen=True, slots=True)
class AppCredentials:
    """What GitHub hands over once; ``pem``, ``webhook_secret`` and ``client_secret`` are
    secrets (stored encrypted, never shown)."""

    app_id: int
    slug: str
    html_url: str
    owner: str
    client_id: str
    pem: str
    webhook_secret: str
    client_secret: str


@dataclass(frozen=True, slots=True)
class InstallationToken:
    token: str
    expires_at: datetime


def _github(api_url: str, auth: Any) -> GitHub[Any]:
    return GitHub(
        auth,
        base_url=api_url.rstrip("/") + "/",
        timeout=30.0,
        auto_retry=False,
        http_cache=False,
        user_agent="codeyard",
    )


def _problem(exc: RequestFailed | RequestError[Exception], doing: str) -> BadRequest:
    if isinstance(exc, RequestFailed):
        status = exc.response.status_code
        hint = {
            401: "the App's key was rejected: create the App again (POST /api/github/app/manifest)",
            404: "GitHub does not know it (a code is valid for one hour, once; an installation "
            "may have been removed)",
            422: "the code was used already or expired: start again with POST "
            "/api/github/app/manifest",
        }.get(status, "try again later")
        return BadRequest(
            f"GitHub answered {status} while {doing}: {hint}.", upstream_status=status
        )
    return BadRequest(f"GitHub could not be reached while {doing} ({exc}); check the network.")


async def convert(api_url: str, code: str) -> AppCredentials:
    """Trade the manifest flow's one-time ``code`` for the new App's credentials."""
    doing = "creating the GitHub App from its manifest"
    async with _github(api_url, UnauthAuthStrategy()) as gh:
        try:
            response = await gh.rest.apps.async_create_from_manifest(code)
        except (RequestFailed, RequestError) as exc:
            raise _problem(exc, doing) from exc
    data = response.json()
    try:
        return AppCredentials(
            app_id=int(data["id"]),
            slug=str(data["slug"]),
            html_url=str(data["html_url"]),
            owner=str((data.get("owner") or {}).get("login") or ""),
            client_id=str(data.get("client_id") or ""),
            pem=str(data["pem"]),
            webhook_secret=str(data.get("webhook_secret") or ""),
            client_secret=str(data.get("client_secret") or ""),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BadRequest(f"GitHub's answer was not understood while {doing} ({exc}).") from exc


async def installation(api_url: str, app_id: int, pem: str, installation_id: int) -> str:
    """The account an installation of this App is on; ``BadRequest`` when it is not one of
    this App's (so a forged setup redirect records nothing)."""
    doing = f"reading installation {installation_id} of the GitHub App"
    async with _github(api_url, AppAuthStrategy(app_id, pem)) as gh:
        try:
            response = await gh.rest.apps.async_get_installation(installation_id)
        except (RequestFailed, RequestError) as exc:
            raise _problem(exc, doing) from exc
    return str(((response.json() or {}).get("account") or {}).get("login") or "")


async def mint(api_url: str, app_id: int, pem: str, installation_id: int) -> InstallationToken:
    """A new installation token (GitHub: valid one hour), signed for with the App's key."""
    doing = f"minting a token for installation {installation_id}"
    async with _github(api_url, AppAuthStrategy(app_id, pem)) as gh:
        try:
            response = await gh.rest.apps.async_create_installation_access_token(installation_id)
        except (RequestFailed, RequestError) as exc:
            raise _problem(exc, doing) from exc
    data = response.json()
    try:
        expires = datetime.fromisoformat(str(data["expires_at"]).replace("Z", "+00:00"))
        return InstallationToken(str(data["token"]), expires)
    except (KeyError, TypeError, ValueError) as exc:
        raise BadRequest(f"GitHub's answer was not understood while {doing} ({exc}).") from exc


def _repo(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "full_name": str(r["full_name"]),
        "private": bool(r.get("private")),
        "html_url": str(r.get("html_url") or ""),
        "clone_url": str(r.get("clone_url") or ""),
    }


async def create_repository(
    api_url: str, token: str, organization: str, name: str, private: bool
) -> dict[str, Any]:
    """A new repository in the installation's organization (with a first commit, so branches
    can be pushed and pull requests opened at once). GitHub lets an App create repositories in
    organizations only, with *Administration: write*."""
    doing = f"creating the repository {organization}/{name}"
    body: dict[str, Any] = {"name": name, "private": private, "auto_init": True}
    async with _github(api_url, TokenAuthStrategy(token)) as gh:
        try:
            response = await gh.rest.repos.async_create_in_org(organization, data=body)
        except RequestFailed as exc:
            if exc.response.status_code == 422:
                raise BadRequest(
                    f"GitHub did not create {organization}/{name}: the name is taken or not "
                    "allowed; choose another name.",
                    upstream_status=422,
                ) from exc
            if exc.response.status_code in (403, 404):
                raise BadRequest(
                    f"GitHub refused {doing} ({exc.response.status_code}): the App needs "
                    "'Administration: write' and must be installed on an organization (Apps "
                    "cannot create repositories on personal accounts).",
                    upstream_status=exc.response.status_code,
                ) from exc
            raise _problem(exc, doing) from exc
        except RequestError as exc:
            raise _problem(exc, doing) from exc
    try:
        return _repo(response.json())
    except (KeyError, TypeError) as exc:
        raise BadRequest(f"GitHub's answer was not understood while {doing} ({exc}).") from exc


async def repositories(api_url: str, token: str) -> list[dict[str, Any]]:
    """The repositories an installation token may reach (``full_name``, ``private``, URLs)."""
    doing = "listing the repositories of the App's installation"
    out: list[dict[str, Any]] = []
    async with _github(api_url, TokenAuthStrategy(token)) as gh:
        for page in range(1, 11):
            try:
                response = await gh.rest.apps.async_list_repos_accessible_to_installation(
                    per_page=100, page=page
                )
            except (RequestFailed, RequestError) as exc:
                raise _problem(exc, doing) from exc
            repos = (response.json() or {}).get("repositories") or []
            out += [_repo(r) for r in repos]
            if len(repos) < 100:
                break
    return out


async def hook_deliveries(api_url: str, app_id: int, pem: str, pages: int = 3) -> list[Delivery]:
    """The App webhook's recent deliveries, newest first (its hook is the App's own, listed with
    the App's JWT, not a repository's)."""
    doing = "listing the GitHub App's webhook deliveries"
    out: list[Delivery] = []
    cursor: str | None = None
    async with _github(api_url, AppAuthStrategy(app_id, pem)) as gh:
        for _ in range(pages):
            try:
                if cursor is None:
                    response = await gh.rest.apps.async_list_webhook_deliveries(per_page=100)
                else:
                    response = await gh.rest.apps.async_list_webhook_deliveries(
                        per_page=100, cursor=cursor
                    )
            except (RequestFailed, RequestError) as exc:
                raise _problem(exc, doing) from exc
            out += [
                Delivery(d.id, d.guid, d.event, d.status_code, d.redelivery)
                for d in response.parsed_data
            ]
            cursor = next_cursor(response.headers.get("link", ""))
            if cursor is None:
                break
    return out


async def redeliver(api_url: str, app_id: int, pem: str, delivery_id: int) -> None:
    async with _github(api_url, AppAuthStrategy(app_id, pem)) as gh:
        try:
            await gh.rest.apps.async_redeliver_webhook_delivery(delivery_id)
        except (RequestFailed, RequestError) as exc:
            raise _problem(exc, f"redelivering the App's delivery {delivery_id}") from exc
