"""The GitHub API calls of the webhook sweeper, through :mod:`githubkit` (typed, async).

githubkit was chosen over PyGithub (synchronous only) and hand-written httpx calls: its models
are generated from GitHub's OpenAPI description, it speaks REST and GraphQL, follows Enterprise
base URLs, and knows GitHub App authentication for when Codeyard connects as an App. Errors
become ``BadRequest`` naming what to fix; nothing here reaches the API as a 500.
"""

from __future__ import annotations

from dataclasses import dataclass

from githubkit import GitHub, TokenAuthStrategy
from githubkit.exception import RequestError, RequestFailed

from codeyard.domain.errors import BadRequest
from codeyard.prs.base import PrConfig

__all__ = ["Delivery", "GitHubClient", "next_cursor"]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One attempt GitHub recorded for a hook: ``guid`` is the ``X-GitHub-Delivery`` header."""

    id: int
    guid: str
    event: str
    status_code: int
    redelivery: bool

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 300


class GitHubClient:
    """A githubkit client per call: the sweeper calls rarely, and nothing is left open."""

    def __init__(self, config: PrConfig, *, timeout: float = 30.0) -> None:
        if not config.github_token:
            raise BadRequest(
                "No GitHub token configured: set CODEYARD_GITHUB_TOKEN to a token that may read "
                "the repository's webhooks (fine-grained: 'Webhooks: read and write')."
            )
        self.config = config
        self.timeout = timeout

    def _github(self) -> GitHub[TokenAuthStrategy]:
        return GitHub(
            TokenAuthStrategy(self.config.github_token or ""),
            base_url=self.config.github_api_url.rstrip("/") + "/",
            timeout=self.timeout,
            auto_retry=False,  # the sweeper runs again later; a retry storm helps nobody
            http_cache=False,
            user_agent="codeyard",
        )

    async def hook_deliveries(self, repo: str, hook_id: int, pages: int = 3) -> list[Delivery]:
        """The hook's recent deliveries, newest first (at most ``pages`` pages of 100)."""
        owner, name = repo.split("/", 1)
        out: list[Delivery] = []
        cursor: str | None = None
        async with self._github() as gh:
            for _ in range(pages):
                try:
                    if cursor is None:
                        resp = await gh.rest.repos.async_list_webhook_deliveries(
                            owner, name, hook_id, per_page=100
                        )
                    else:
                        resp = await gh.rest.repos.async_list_webhook_deliveries(
                            owner, name, hook_id, per_page=100, cursor=cursor
                        )
                except (RequestFailed, RequestError) as exc:
                    doing = f"listing the deliveries of hook {hook_id} of {repo}"
                    raise _problem(exc, doing) from exc
                out += [
                    Delivery(d.id, d.guid, d.event, d.status_code, d.redelivery)
                    for d in resp.parsed_data
                ]
                cursor = next_cursor(resp.headers.get("link", ""))
                if cursor is None:
                    break
        return out

    async def redeliver(self, repo: str, hook_id: int, delivery_id: int) -> None:
        owner, name = repo.split("/", 1)
        async with self._github() as gh:
            try:
                await gh.rest.repos.async_redeliver_webhook_delivery(
                    owner, name, hook_id, delivery_id
                )
            except (RequestFailed, RequestError) as exc:
                raise _problem(exc, f"redelivering delivery {delivery_id} of {repo}") from exc


def next_cursor(link: str) -> str | None:
    """The ``cursor`` of the ``rel="next"`` link (deliveries page by cursor, not by number)."""
    for part in link.split(","):
        if 'rel="next"' in part and "cursor=" in part:
            return part.split("cursor=", 1)[1].split("&", 1)[0].split(">", 1)[0]
    return None


def _problem(exc: RequestFailed | RequestError[Exception], doing: str) -> BadRequest:
    if isinstance(exc, RequestFailed):
        status = exc.response.status_code
        hint = {
            401: "the token was rejected: set a valid CODEYARD_GITHUB_TOKEN",
            403: "the token may not read webhooks: it needs 'Webhooks: read and write' "
            "(classic: admin:repo_hook), or the rate limit is used up",
            404: "no such hook or repository, or the token cannot see it",
        }.get(status, "try again later")
        return BadRequest(f"GitHub answered {status} while {doing}: {hint}.", status=status)
    return BadRequest(f"GitHub could not be reached while {doing} ({exc}); check the network.")
