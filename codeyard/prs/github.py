"""Pull requests through GitHub's REST API (github.com or an Enterprise server), with a token.

The endpoints used: create, read and merge a pull; the head commit's check runs and commit
statuses; the pull's reviews; and the base branch, whose protection names the required checks.
GitHub's answers are turned into ``BadRequest`` (what to fix: token, access, network) or
``Conflict`` (the pull request already exists); nothing from here reaches the API as a 500.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from codeyard.domain.errors import BadRequest, Conflict
from codeyard.prs.base import (
    Check,
    MergeMethod,
    PrConfig,
    PullRequest,
    fold_reviews,
    parse_remote,
    redact_remote,
)

if TYPE_CHECKING:
    # httpx (with the Rich and Click it imports) loads on first use, not at the server's
    # start-up (issue 15).
    import httpx

__all__ = ["NO_TOKEN", "GitHubRest"]

NO_TOKEN = (
    "No GitHub token configured: set CODEYARD_GITHUB_TOKEN (or GITHUB_TOKEN or GH_TOKEN) in the "
    "server's environment to a token that may write pull requests"
)
_API_VERSION = "2022-11-28"
_MAX_PAGES = 10


class GitHubRest:
    """GitHub's REST API over httpx; one short-lived client per operation (nothing to close)."""

    name = "github"

    def __init__(self, config: PrConfig, *, timeout: float = 30.0, page_size: int = 100) -> None:
        self.config = config
        self.api_url = config.github_api_url.rstrip("/")
        self.web_host = config.github_web_host
        self.timeout = timeout
        self.page_size = page_size

    def matches(self, remote_url: str) -> bool:
        remote = parse_remote(remote_url)
        return remote is not None and remote.host == self.web_host

    async def problem(self) -> str | None:
        return None if self.config.github_token else NO_TOKEN

    async def create(
        self, remote_url: str, head: str, base: str, title: str, body: str, draft: bool
    ) -> PullRequest:
        repo = self._repo(remote_url)
        payload = {"title": title, "head": head, "base": base, "body": body, "draft": draft}
        async with self._client() as client:
            response = await self._request(
                client,
                "POST",
                f"/repos/{repo}/pulls",
                json=payload,
                doing=f"opening a pull request from '{head}' into '{base}' of {repo}",
                missing=f"repository {repo}",
            )
        return self._pull(response.json(), [], doing=f"opening a pull request in {repo}")

    async def get(self, remote_url: str, number: int) -> PullRequest:
        repo = self._repo(remote_url)
        doing = f"reading pull request #{number} of {repo}"
        async with self._client() as client:
            response = await self._request(
                client,
                "GET",
                f"/repos/{repo}/pulls/{number}",
                doing=doing,
                missing=f"pull request #{number} in {repo}",
            )
            pull = response.json()
            sha = quote(str(_field(pull, doing, "head", "sha")), safe="")
            runs = await self._paged(
                client, f"/repos/{repo}/commits/{sha}/check-runs", doing, key="check_runs"
            )
            reviews = await self._paged(client, f"/repos/{repo}/pulls/{number}/reviews", doing)
            combined = await self._request(
                client, "GET", f"/repos/{repo}/commits/{sha}/status", doing=doing, missing=sha
            )
            base = str(_field(pull, doing, "base", "ref"))
            required = await self.required_checks(client, repo, base)
        try:
            checks = [Check(r["name"], r["status"], r.get("conclusion")) for r in runs]
            checks += [_status_check(s) for s in (combined.json() or {}).get("statuses") or []]
            pairs = [((r.get("user") or {}).get("login", ""), r["state"]) for r in reviews]
        except (KeyError, TypeError, AttributeError) as exc:
            raise _not_understood(doing, exc) from exc
        return self._pull(pull, checks, doing=doing, reviews=pairs, required=required)

    async def required_checks(
        self, client: httpx.AsyncClient, repo: str, branch: str
    ) -> list[str] | None:
        """The check names ``branch``'s protection requires (``[]``: none, or unprotected);
        None when GitHub would not say (no such branch, no access, unreachable): merging then
        leaves the decision to GitHub, which refuses with 405 if a required check is missing.

        Read from ``GET /repos/{o}/{r}/branches/{branch}``, which any token that may read the
        repository sees, rather than ``…/protection`` (administration permission).
        """
        import httpx

        try:
            response = await client.get(f"/repos/{repo}/branches/{quote(branch, safe='')}")
        except httpx.HTTPError:
            return None
        if not response.is_success:
            return None
        try:
            body = response.json()
            if not body.get("protected"):
                return []
            rules = (body.get("protection") or {}).get("required_status_checks") or {}
            names = [str(c) for c in rules.get("contexts") or []]
            names += [str(c["context"]) for c in rules.get("checks") or [] if c.get("context")]
        except (ValueError, AttributeError, TypeError, KeyError):
            return None
        return list(dict.fromkeys(names))

    async def merge(
        self, remote_url: str, number: int, method: MergeMethod, sha: str | None
    ) -> None:
        repo = self._repo(remote_url)
        doing = f"merging pull request #{number} of {repo}"
        payload: dict[str, Any] = {"merge_method": method, **({"sha": sha} if sha else {})}
        import httpx

        async with self._client() as client:
            try:
                response = await client.put(f"/repos/{repo}/pulls/{number}/merge", json=payload)
            except httpx.TransportError as exc:
                raise BadRequest(
                    f"GitHub at {self.api_url} could not be reached while {doing} ({exc})"
                ) from exc
        if response.is_success:
            return
        said = _message(response)
        if response.status_code == 405:
            raise Conflict(
                f"GitHub will not merge pull request #{number} ({said}): wait for required "
                "checks and reviews, or resolve its conflicts (rebase the run and push)",
                status=405,
            )
        if response.status_code == 409:
            raise Conflict(
                f"Pull request #{number}'s head moved ({said}): read it again and merge the "
                "commit you reviewed",
                status=409,
            )
        raise self._error(response, doing, f"pull request #{number} in {repo}", {})

    async def repository(self, full_name: str) -> dict[str, Any]:
        """``GET /repos/{owner}/{name}``: the repository as the token sees it (``BadRequest``
        naming the fix when it does not)."""
        path = "/".join(quote(s, safe="") for s in full_name.split("/", 1))
        doing = f"reading the repository {full_name}"
        async with self._client() as client:
            response = await self._request(
                client, "GET", f"/repos/{path}", doing=doing, missing=f"repository {full_name}"
            )
        body = response.json()
        if not isinstance(body, dict):
            raise _not_understood(doing, "expected an object")
        return body

    # --- plumbing ------------------------------------------------------------------------

    def _repo(self, remote_url: str) -> str:
        """``owner/repo`` of a remote this host matched, quoted for a URL path."""
        remote = parse_remote(remote_url)
        if remote is None or len(remote.segments) != 2:
            raise BadRequest(
                f"'{redact_remote(remote_url)}' does not name a GitHub repository "
                "(expected https://HOST/OWNER/REPO or git@HOST:OWNER/REPO.git)"
            )
        return "/".join(quote(s, safe="") for s in remote.segments)

    def _client(self) -> httpx.AsyncClient:
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": _API_VERSION,
            "Authorization": f"Bearer {self.config.github_token}",
            "User-Agent": "codeyard",
        }
        import httpx

        return httpx.AsyncClient(
            base_url=self.api_url,
            headers=headers,
            timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0)),
            follow_redirects=True,  # renamed repositories answer with a redirect
        )

    async def _request(
        self,
        client: httpx.AsyncClient,
        method: str,
        url: str,
        *,
        doing: str,
        missing: str,
        json: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> httpx.Response:
        import httpx

        try:
            response = await client.request(method, url, json=json, params=params)
        except httpx.TimeoutException as exc:
            raise BadRequest(
                f"GitHub at {self.api_url} did not answer within {self.timeout:g}s while "
                f"{doing}; try again later"
            ) from exc
        except httpx.TransportError as exc:
            raise BadRequest(
                f"GitHub at {self.api_url} could not be reached while {doing} "
                f"({type(exc).__name__}: {exc}); check the network and CODEYARD_GITHUB_API_URL"
            ) from exc
        if response.is_success:
            return response
        raise self._error(response, doing, missing, json or {})

    async def _paged(
        self, client: httpx.AsyncClient, url: str, doing: str, *, key: str | None = None
    ) -> list[dict[str, Any]]:
        """Every item of a listing, following ``Link: rel="next"`` on the API's own origin."""
        items: list[dict[str, Any]] = []
        params: dict[str, Any] | None = {"per_page": self.page_size}
        next_url: str | None = url
        for _ in range(_MAX_PAGES):
            if next_url is None:
                break
            response = await self._request(
                client, "GET", next_url, doing=doing, missing=url, params=params
            )
            body = response.json()
            page = body.get(key) if key and isinstance(body, dict) else body
            if not isinstance(page, list):
                raise _not_understood(doing, f"expected a list in {url}")
            items.extend(page)
            params = None  # the next link carries them
            next_url = response.links.get("next", {}).get("url")
            if next_url is not None and not next_url.startswith(self.api_url + "/"):
                break  # never send the token elsewhere
        return items

    def _error(
        self, response: httpx.Response, doing: str, missing: str, sent: dict[str, Any]
    ) -> BadRequest | Conflict:
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        message = str(body.get("message") or response.reason_phrase)
        details = [_describe(e) for e in body.get("errors") or [] if e]
        said = "; ".join(details) or message
        if status == 401:
            return BadRequest(
                f"GitHub rejected the token ({status} {message}) while {doing}: set a valid token "
                "in CODEYARD_GITHUB_TOKEN (or GITHUB_TOKEN or GH_TOKEN)",
                status=status,
            )
        if status == 403 or status == 429:
            limited = response.headers.get("x-ratelimit-remaining") == "0" or (
                "rate limit" in message.lower()
            )
            hint = (
                "GitHub's API rate limit is used up; try again later"
                if limited
                else "the token lacks permission: it needs write access to pull requests "
                "(classic token: the 'repo' scope)"
            )
            return BadRequest(
                f"GitHub refused {doing} ({status} {message}): {hint}", upstream_status=status
            )
        if status == 404:
            return BadRequest(
                f"GitHub found no {missing} ({status}) while {doing}: check the remote's owner "
                f"and name, and that the token can see the repository on {self.web_host}",
                status=status,
            )
        if status == 422 and "already exists" in said.lower():
            return Conflict(
                f"a pull request from '{sent.get('head')}' into '{sent.get('base')}' is already "
                f'open: GitHub says "{said}"',
                status=status,
            )
        if status == 422:
            return BadRequest(f"GitHub did not accept {doing}: {said}", upstream_status=status)
        return BadRequest(
            f"GitHub answered {status} {message} while {doing}; try again later", status=status
        )

    def _pull(
        self,
        data: Any,
        checks: list[Check],
        *,
        doing: str,
        reviews: list[tuple[str, str]] | None = None,
        required: list[str] | None = None,
    ) -> PullRequest:
        try:
            merged = bool(data.get("merged") or data.get("merged_at"))
            requested = bool(data.get("requested_reviewers") or data.get("requested_teams"))
            return PullRequest(
                url=str(data["html_url"]),
                number=int(data["number"]),
                state="merged" if merged else ("open" if data["state"] == "open" else "closed"),
                draft=bool(data.get("draft")),
                title=str(data["title"]),
                head=str(data["head"]["ref"]),
                base=str(data["base"]["ref"]),
                checks=checks,
                review_state=fold_reviews(reviews or [], reviewers_requested=requested),
                head_sha=(data.get("head") or {}).get("sha"),
                mergeable=data.get("mergeable"),
                required_checks=required,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise _not_understood(doing, exc) from exc


def _status_check(status: dict[str, Any]) -> Check:
    """A commit status (external CI services) as a check: ``pending`` is still running,
    ``error`` a failure, as GitHub's branch protection reads them."""
    state = str(status["state"])
    if state == "pending":
        return Check(str(status["context"]), "in_progress", None)
    conclusion = "success" if state == "success" else "failure"
    return Check(str(status["context"]), "completed", conclusion)


def _field(data: Any, doing: str, *keys: str) -> Any:
    try:
        for key in keys:
            data = data[key]
    except (KeyError, TypeError) as exc:
        raise _not_understood(doing, exc) from exc
    return data


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase
    return str(body.get("message") if isinstance(body, dict) else body)


def _describe(error: Any) -> str:
    """One entry of a 422's ``errors``: its message, else "field code" (e.g. "head invalid")."""
    if isinstance(error, dict):
        if error.get("message"):
            return str(error["message"])
        return " ".join(str(error[k]) for k in ("resource", "field", "code") if error.get(k))
    return str(error)


def _not_understood(doing: str, reason: object) -> BadRequest:
    return BadRequest(
        f"GitHub's answer was not understood while {doing} ({reason}); is "
        "CODEYARD_GITHUB_API_URL a GitHub API (https://api.github.com or https://HOST/api/v3)?"
    )
