"""What the token-over-REST forges beyond GitHub share: GitLab and Gitea/Forgejo (issue 21).

Each is reached at one configured web URL (its API under a fixed path), with one token from the
server's environment, over httpx with one short-lived client per operation. Answers that are not
a success become domain errors naming the fix (the token variable, access, the network), so a
forge's refusal reaches the API as a 4xx problem, never a 500. The forges' own meanings (which
status says "cannot merge", how a duplicate is reported) stay in their modules.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from codeyard.domain.errors import BadRequest, Conflict
from codeyard.prs.base import parse_remote, redact_remote

if TYPE_CHECKING:
    # httpx (with the Rich and Click it imports) loads on first use, not at the server's
    # start-up (issue 15).
    import httpx

__all__ = ["ForgeRest", "said"]


def said(response: httpx.Response) -> str:
    """The forge's own words: GitLab's ``message``/``error`` (a string, list or field map),
    Gitea's ``message``; else the reason phrase."""
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase
    if not isinstance(body, dict):
        return str(body)
    value = body.get("message") or body.get("error") or response.reason_phrase
    if isinstance(value, dict):
        parts = [(k, " ".join(map(str, v)) if isinstance(v, list) else v) for k, v in value.items()]
        return "; ".join(f"{k} {v}" for k, v in parts)
    if isinstance(value, list):
        return "; ".join(map(str, value))
    return str(value)


class ForgeRest(abc.ABC):
    """Subclasses set ``name``, ``label``, the variables naming their settings, the API path,
    and :meth:`_auth`. ``web_url`` is where remotes live (``https://gitlab.example.com``)."""

    name = "forge"
    label = "the forge"
    token_variable = ""
    url_variable = ""
    api_path = ""

    def __init__(self, web_url: str | None, token: str | None, *, timeout: float = 30.0) -> None:
        self.web_url = (web_url or "").rstrip("/")
        self.web_host = (urlsplit(self.web_url).hostname or "").lower()
        self.api_url = self.web_url + self.api_path
        self.token = token
        self.timeout = timeout

    def matches(self, remote_url: str) -> bool:
        remote = parse_remote(remote_url)
        return bool(self.web_host) and remote is not None and remote.host == self.web_host

    async def problem(self) -> str | None:
        if self.token:
            return None
        return (
            f"No {self.label} token configured: set {self.token_variable} in the server's "
            f"environment to a token that may write merge requests on {self.web_host}"
        )

    @abc.abstractmethod
    def _auth(self) -> dict[str, str]:
        """The header carrying the token, as the forge spells it."""

    def _path(self, remote_url: str, *, segments: int | None = None) -> str:
        """The repository path of a remote this forge matched (``group/sub/repo``)."""
        remote = parse_remote(remote_url)
        if (
            remote is None
            or len(remote.segments) < 2
            or (segments is not None and len(remote.segments) != segments)
        ):
            raise BadRequest(
                f"'{redact_remote(remote_url)}' does not name a {self.label} repository "
                f"(expected {self.web_url}/OWNER/REPO or git@{self.web_host}:OWNER/REPO.git)"
            )
        return remote.path

    def _client(self) -> httpx.AsyncClient:
        import httpx  # on first use, not at the server's start-up (issue 15)

        return httpx.AsyncClient(
            base_url=self.api_url,
            headers={"Accept": "application/json", "User-Agent": "codeyard", **self._auth()},
            timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0)),
        )

    async def _send(
        self,
        client: httpx.AsyncClient,
        method: str,
        url: str,
        *,
        doing: str,
        json: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> httpx.Response:
        """The response whatever its status; unreachable or silent forges are ``BadRequest``."""
        import httpx

        try:
            return await client.request(method, url, json=json, params=params)
        except httpx.TimeoutException as exc:
            raise BadRequest(
                f"{self.label} at {self.web_url} did not answer within {self.timeout:g}s while "
                f"{doing}; try again later"
            ) from exc
        except httpx.TransportError as exc:
            raise BadRequest(
                f"{self.label} at {self.web_url} could not be reached while {doing} "
                f"({type(exc).__name__}: {exc}); check the network and {self.url_variable}"
            ) from exc

    async def _ok(
        self,
        client: httpx.AsyncClient,
        method: str,
        url: str,
        *,
        doing: str,
        missing: str,
        json: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        """The JSON of a successful answer; any other is the error :meth:`_error` names."""
        response = await self._send(client, method, url, doing=doing, json=json, params=params)
        if not response.is_success:
            raise self._error(response, doing, missing)
        try:
            return response.json()
        except ValueError as exc:
            raise self._not_understood(doing, exc) from exc

    def _error(self, response: httpx.Response, doing: str, missing: str) -> BadRequest | Conflict:
        status, words = response.status_code, said(response)
        if status == 401:
            return BadRequest(
                f"{self.label} rejected the token ({status} {words}) while {doing}: set a valid "
                f"token in {self.token_variable}",
                status=status,
            )
        if status == 403:
            return BadRequest(
                f"{self.label} refused {doing} ({status} {words}): the token needs the 'api' "
                "scope (GitLab) or write access to the repository (Gitea)",
                upstream_status=status,
            )
        if status == 404:
            return BadRequest(
                f"{self.label} found no {missing} ({status}) while {doing}: check the remote's "
                f"path and that the token can see it on {self.web_host}",
                status=status,
            )
        if status == 409:
            return Conflict(f"{self.label} refused {doing}: {words}", status=status)
        if status in (400, 422):
            text = f"{self.label} did not accept {doing}: {words}"
            return BadRequest(text, upstream_status=status)
        return BadRequest(
            f"{self.label} answered {status} {words} while {doing}; try again later",
            upstream_status=status,
        )

    def _not_understood(self, doing: str, reason: object) -> BadRequest:
        return BadRequest(
            f"{self.label}'s answer was not understood while {doing} ({reason}); is "
            f"{self.url_variable} the forge's web URL ({self.web_url})?"
        )
