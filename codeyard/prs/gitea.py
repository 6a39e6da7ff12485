"""Pull requests on Gitea or Forgejo (Codeberg, self-hosted) through their REST API v1.

The endpoints used: create, read and merge a pull; the head commit's combined status (Gitea
Actions and external CI report commit statuses, which are the checks); the pull's reviews. A
draft is marked by the title (``WIP:``, Gitea's default prefix). Forgejo answers the same API.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from codeyard.domain.errors import Conflict
from codeyard.prs.base import Check, MergeMethod, PrConfig, PullRequest, fold_reviews
from codeyard.prs.forge import ForgeRest, said

__all__ = ["GiteaRest", "status_check"]

#: Gitea review states in GitHub's spelling, for :func:`fold_reviews`.
_REVIEWS = {"REQUEST_CHANGES": "CHANGES_REQUESTED", "COMMENT": "COMMENTED"}
_DRAFT_PREFIXES = ("wip:", "[wip]")


def status_check(status: dict[str, Any]) -> Check:
    """A commit status as a check (``warning`` passes, as on Gitea's own page)."""
    state = str(status.get("status") or status.get("state"))
    name = str(status["context"])
    if state == "pending":
        return Check(name, "in_progress", None)
    conclusion = {"success": "success", "warning": "neutral"}.get(state, "failure")
    return Check(name, "completed", conclusion)


class GiteaRest(ForgeRest):
    name = "gitea"
    label = "Gitea"
    token_variable = "CODEYARD_GITEA_TOKEN"
    url_variable = "CODEYARD_GITEA_URL"
    api_path = "/api/v1"

    def __init__(self, config: PrConfig, *, timeout: float = 30.0) -> None:
        super().__init__(config.gitea_url, config.gitea_token, timeout=timeout)

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token or ''}"}

    def _repo(self, remote_url: str) -> str:
        return "/".join(quote(s, safe="") for s in self._path(remote_url, segments=2).split("/"))

    async def create(
        self, remote_url: str, head: str, base: str, title: str, body: str, draft: bool
    ) -> PullRequest:
        repo = self._repo(remote_url)
        drafted = draft and not title.lower().startswith(_DRAFT_PREFIXES)
        payload = {"head": head, "base": base, "title": f"WIP: {title}" if drafted else title}
        payload["body"] = body
        doing = f"opening a pull request from '{head}' into '{base}'"
        async with self._client() as client:
            response = await self._send(
                client, "POST", f"/repos/{repo}/pulls", doing=doing, json=payload
            )
        if response.status_code == 409:
            raise Conflict(
                f"a pull request from '{head}' into '{base}' is already open: Gitea says "
                f'"{said(response)}"',
                status=409,
            )
        if not response.is_success:
            raise self._error(response, doing, f"repository {self._path(remote_url)}")
        return self._pull(response.json(), [], [], doing)

    async def get(self, remote_url: str, number: int) -> PullRequest:
        repo = self._repo(remote_url)
        doing = f"reading pull request #{number} of {self._path(remote_url)}"
        missing = f"pull request #{number}"
        async with self._client() as client:
            data = await self._ok(
                client, "GET", f"/repos/{repo}/pulls/{number}", doing=doing, missing=missing
            )
            try:
                sha = quote(str(data["head"]["sha"]), safe="")
            except (KeyError, TypeError) as exc:
                raise self._not_understood(doing, exc) from exc
            combined = await self._ok(
                client, "GET", f"/repos/{repo}/commits/{sha}/status", doing=doing, missing=sha
            )
            reviews = await self._ok(
                client,
                "GET",
                f"/repos/{repo}/pulls/{number}/reviews",
                doing=doing,
                missing=missing,
                params={"limit": 50},
            )
        try:
            checks = [status_check(s) for s in combined.get("statuses") or []]
            pairs = [
                ((r.get("user") or {}).get("login", ""), _REVIEWS.get(r["state"], r["state"]))
                for r in reviews
                if not r.get("dismissed")
            ]
        except (KeyError, TypeError, AttributeError) as exc:
            raise self._not_understood(doing, exc) from exc
        return self._pull(data, checks, pairs, doing)

    async def merge(
        self, remote_url: str, number: int, method: MergeMethod, sha: str | None
    ) -> None:
        repo = self._repo(remote_url)
        doing = f"merging pull request #{number}"
        payload: dict[str, Any] = {"Do": method, **({"head_commit_id": sha} if sha else {})}
        async with self._client() as client:
            response = await self._send(
                client, "POST", f"/repos/{repo}/pulls/{number}/merge", doing=doing, json=payload
            )
        if response.is_success:
            return
        if response.status_code == 405:
            raise Conflict(
                f"Gitea will not merge pull request #{number} ({said(response)}): wait for "
                "required checks and approvals, or resolve its conflicts (rebase the run and "
                "push)",
                status=405,
            )
        if response.status_code == 409:
            raise Conflict(
                f"Pull request #{number}'s head moved ({said(response)}): read it again and "
                "merge the commit you reviewed",
                status=409,
            )
        raise self._error(response, doing, f"pull request #{number}")

    def _pull(
        self, data: Any, checks: list[Check], reviews: list[tuple[str, str]], doing: str
    ) -> PullRequest:
        try:
            title = str(data["title"])
            requested = bool(data.get("requested_reviewers"))
            return PullRequest(
                url=str(data["html_url"]),
                number=int(data["number"]),
                state="merged"
                if data.get("merged")
                else ("open" if data["state"] == "open" else "closed"),
                draft=bool(data.get("draft")) or title.lower().startswith(_DRAFT_PREFIXES),
                title=title,
                head=str(data["head"]["ref"]),
                base=str(data["base"]["ref"]),
                checks=checks,
                review_state=fold_reviews(reviews, reviewers_requested=requested),
                head_sha=(data.get("head") or {}).get("sha"),
                mergeable=data.get("mergeable"),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise self._not_understood(doing, exc) from exc
