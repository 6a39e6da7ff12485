"""What every pull-request host implements, and the plain data passed to and from it.

A host translates between a forge (GitHub's REST API, the ``gh`` CLI, later GitLab) and
:class:`PullRequest`; it stores nothing. Which host serves a remote is decided in
:mod:`codeyard.prs.registry`. Remote URLs are parsed here because every forge sees the same git
URL shapes (``https://``, ``ssh://``, scp-like ``git@host:path``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

__all__ = [
    "PASSING",
    "TOKEN_VARIABLES",
    "Check",
    "MergeMethod",
    "PrConfig",
    "PrState",
    "PullRequest",
    "PullRequestHost",
    "Remote",
    "ReviewState",
    "fold_reviews",
    "parse_remote",
    "redact_remote",
    "use_app_token",
]

PrState = Literal["open", "closed", "merged"]
MergeMethod = Literal["merge", "squash", "rebase"]
ReviewState = Literal["approved", "changes_requested", "commented", "pending"]

#: Environment variables a GitHub token is read from, first set wins.
TOKEN_VARIABLES = ("CODEYARD_GITHUB_TOKEN", "GITHUB_TOKEN", "GH_TOKEN")
API_URL_VARIABLE = "CODEYARD_GITHUB_API_URL"
DEFAULT_API_URL = "https://api.github.com"


#: Conclusions that satisfy a required check (GitHub counts neutral and skipped as passing).
PASSING = frozenset({"success", "neutral", "skipped"})


@dataclass(frozen=True, slots=True)
class Check:
    """One CI check on the head commit. ``status``: queued, in_progress or completed;
    ``conclusion`` (success, failure, neutral, cancelled, skipped, timed_out, action_required)
    only once completed."""

    name: str
    status: str
    conclusion: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "conclusion": self.conclusion}


@dataclass(frozen=True, slots=True)
class PullRequest:
    """A pull request as ``GET /api/runs/{id}/pull-request`` shows it, whatever the host."""

    url: str
    number: int
    state: PrState
    draft: bool
    title: str
    head: str
    base: str
    checks: list[Check] = field(default_factory=list)
    review_state: ReviewState | None = None
    #: The head commit the checks ran on; whether GitHub can merge it (None: not computed yet).
    head_sha: str | None = None
    mergeable: bool | None = None
    #: Check names the base branch's protection requires; None when the host cannot tell
    #: (the ``gh`` CLI, a token that may not read the branch).
    required_checks: list[str] | None = None

    def waiting_on(self) -> list[str]:
        """Required checks the head has not passed, each with why: ``tests: failure``,
        ``lint: in_progress``, ``build: not reported``. Merging waits until this is empty."""
        out = []
        for name in self.required_checks or []:
            runs = [c for c in self.checks if c.name == name]
            if not runs:
                out.append(f"{name}: not reported")
            elif any(c.status != "completed" for c in runs):
                out.append(f"{name}: {next(c.status for c in runs if c.status != 'completed')}")
            elif failed := [c for c in runs if c.conclusion not in PASSING]:
                out.append(f"{name}: {failed[0].conclusion}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "number": self.number,
            "state": self.state,
            "draft": self.draft,
            "title": self.title,
            "head": self.head,
            "base": self.base,
            "checks": [c.to_dict() for c in self.checks],
            "review_state": self.review_state,
            "head_sha": self.head_sha,
            "mergeable": self.mergeable,
            "required_checks": self.required_checks,
            "waiting_on": self.waiting_on(),
        }


#: A GitHub App installation's token, kept fresh by ``services.github_app`` (installation
#: tokens last an hour, so it cannot be configured once): used when no token variable is set.
_app_token: list[str | None] = [None]


def use_app_token(token: str | None) -> None:
    """Set (or clear) the App installation token :meth:`PrConfig.from_env` falls back to."""
    _app_token[0] = token


@dataclass(frozen=True, slots=True)
class PrConfig:
    """How to reach the forge. A plain value so that settings, tests and the CLI can all build it.

    ``github_api_url`` is ``https://api.github.com`` or an Enterprise server's
    ``https://HOST/api/v3``. ``github_web_url`` names the host remotes live on when it cannot be
    derived from the API URL (see :attr:`github_web_host`).
    """

    github_token: str | None = None
    github_api_url: str = DEFAULT_API_URL
    github_web_url: str | None = None
    #: GitLab (gitlab.com or self-managed): the web URL remotes live on; the API is ``/api/v4``.
    gitlab_url: str = "https://gitlab.com"
    gitlab_token: str | None = None
    #: Gitea or Forgejo: no public default (Codeberg is one: ``https://codeberg.org``).
    gitea_url: str | None = None
    gitea_token: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PrConfig:
        """``CODEYARD_GITHUB_TOKEN`` / ``GITHUB_TOKEN`` / ``GH_TOKEN`` (first non-empty),
        ``CODEYARD_GITHUB_API_URL`` and ``CODEYARD_GITHUB_WEB_URL`` (the host remotes use, when
        it cannot be derived from the API URL); ``CODEYARD_GITLAB_URL``/``_TOKEN`` and
        ``CODEYARD_GITEA_URL``/``_TOKEN`` for the other forges. Tokens stay in the environment,
        never in the database."""
        env = os.environ if environ is None else environ
        token = next((env[v].strip() for v in TOKEN_VARIABLES if env.get(v, "").strip()), None)
        if token is None and environ is None:
            token = _app_token[0]
        api_url = env.get(API_URL_VARIABLE, "").strip() or DEFAULT_API_URL
        web_url = env.get("CODEYARD_GITHUB_WEB_URL", "").strip() or None

        def read(name: str) -> str | None:
            return env.get(name, "").strip() or None

        return cls(
            github_token=token,
            github_api_url=api_url.rstrip("/"),
            github_web_url=web_url,
            gitlab_url=(read("CODEYARD_GITLAB_URL") or "https://gitlab.com").rstrip("/"),
            gitlab_token=read("CODEYARD_GITLAB_TOKEN"),
            gitea_url=(read("CODEYARD_GITEA_URL") or "").rstrip("/") or None,
            gitea_token=read("CODEYARD_GITEA_TOKEN"),
        )

    @property
    def github_web_host(self) -> str:
        """The host name git remotes use: ``api.github.com`` → ``github.com``;
        ``https://ghe.example.com/api/v3`` → ``ghe.example.com``; ``api.x.ghe.com`` → ``x.ghe.com``.
        """
        if self.github_web_url:
            return _hostname(self.github_web_url)
        parts = urlsplit(self.github_api_url)
        host = (parts.hostname or "").lower()
        if parts.path.rstrip("/").endswith("/api/v3"):
            return host
        return host.removeprefix("api.")


@dataclass(frozen=True, slots=True)
class Remote:
    """A git remote on some host: ``path`` is ``owner/repo`` (GitLab: ``group/sub/repo``)."""

    host: str
    path: str

    @property
    def segments(self) -> list[str]:
        return self.path.split("/")


_SCP_LIKE = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>[^/].*)$")


def _hostname(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def parse_remote(remote_url: str) -> Remote | None:
    """Host and repository path of a network remote; None for local paths and ``file://``.

    ``https://github.com/o/r(.git)``, ``ssh://git@github.com[:22]/o/r.git`` and
    ``git@github.com:o/r.git`` all give ``Remote("github.com", "o/r")``.
    """
    url = remote_url.strip()
    if "://" in url:
        parts = urlsplit(url)
        if parts.scheme == "file" or not parts.hostname:
            return None
        host, path = parts.hostname.lower(), parts.path
    else:
        match = _SCP_LIKE.match(url)
        # "C:\repo" and "C:/repo" are Windows paths, not host "C".
        if match is None or len(match["host"]) == 1:
            return None
        host, path = match["host"].lower(), match["path"]
    path = path.strip("/").removesuffix(".git").strip("/")
    if not path or any(s in ("", ".", "..") for s in path.split("/")):
        return None
    return Remote(host, path)


def redact_remote(remote_url: str) -> str:
    """The remote without credentials (``https://user:token@host/…`` → ``https://host/…``), so it
    can go into an error message."""
    if "://" not in remote_url:
        return remote_url
    parts = urlsplit(remote_url)
    if parts.password is None and not (parts.username and parts.scheme.startswith("http")):
        return remote_url
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return parts._replace(netloc=netloc).geturl()


def fold_reviews(
    reviews: Iterable[tuple[str, str]], *, reviewers_requested: bool
) -> ReviewState | None:
    """One review state from ``(user, STATE)`` pairs in submission order, as GitHub decides.

    Each reviewer's latest approval or change request counts (a later comment does not undo it, a
    dismissal does); any change request beats approvals. With no verdict, "commented" if someone
    commented, else "pending" while reviewers are requested, else None.
    """
    verdicts: dict[str, str] = {}
    commented = False
    for user, state in reviews:
        state = state.upper()
        if state in ("APPROVED", "CHANGES_REQUESTED"):
            verdicts[user] = state
        elif state == "DISMISSED":
            verdicts.pop(user, None)
        elif state == "COMMENTED":
            commented = True
    if "CHANGES_REQUESTED" in verdicts.values():
        return "changes_requested"
    if "APPROVED" in verdicts.values():
        return "approved"
    if commented:
        return "commented"
    return "pending" if reviewers_requested else None


class PullRequestHost(Protocol):
    """One way of talking to one forge. Built from a :class:`PrConfig` by its registered factory.

    Errors are domain errors: ``BadRequest`` for what the operator can fix (token, access,
    unreachable host), ``Conflict`` when the pull request already exists.
    """

    name: str

    def matches(self, remote_url: str) -> bool:
        """True when this host serves ``remote_url`` (whether or not it is usable)."""
        ...

    async def problem(self) -> str | None:
        """Why this host cannot be used, phrased as the remedy; None when it can.

        The registry joins the problems of every matching host with ", or ", most preferred
        first, so start with a capital only if you expect to be first.
        """
        ...

    async def create(
        self, remote_url: str, head: str, base: str, title: str, body: str, draft: bool
    ) -> PullRequest:
        """Open a pull request from branch ``head`` into ``base`` (both already pushed)."""
        ...

    async def get(self, remote_url: str, number: int) -> PullRequest:
        """The pull request's current state, checks and review state."""
        ...

    async def merge(
        self, remote_url: str, number: int, method: MergeMethod, sha: str | None
    ) -> None:
        """Merge it on the forge; with ``sha``, only if the head is still that commit
        (``Conflict`` when it moved or the forge refuses to merge)."""
        ...
