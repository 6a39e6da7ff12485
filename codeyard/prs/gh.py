"""Pull requests through the GitHub CLI, for servers where ``gh auth login`` was done but no token
was given to Codeyard. Used only when ``gh`` is on PATH and logged in to the remote's host.

``gh`` runs without a shell, without prompts, in its own process group (killed on timeout), and
always with ``--repo HOST/OWNER/REPO`` so the server's working directory does not matter.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
from typing import Any

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

__all__ = ["GhCli"]

_VIEW_FIELDS = (
    "url,number,state,isDraft,title,headRefName,baseRefName,statusCheckRollup,reviews,"
    "reviewRequests,reviewDecision,headRefOid,mergeable"
)
_PR_NUMBER = re.compile(r"/pull/(\d+)\b")
_STATUS_CONTEXT = {  # legacy commit statuses, as (status, conclusion)
    "SUCCESS": ("completed", "success"),
    "FAILURE": ("completed", "failure"),
    "ERROR": ("completed", "failure"),
    "PENDING": ("in_progress", None),
    "EXPECTED": ("queued", None),
}


class GhCli:
    """``gh pr create`` / ``gh pr view --json`` for the configured GitHub (or Enterprise) host."""

    name = "gh"

    def __init__(self, config: PrConfig, *, timeout: float = 60.0) -> None:
        self.web_host = config.github_web_host
        self.timeout = timeout

    def matches(self, remote_url: str) -> bool:
        remote = parse_remote(remote_url)
        return remote is not None and remote.host == self.web_host

    async def problem(self) -> str | None:
        if shutil.which("gh") is None:
            return (
                "install the GitHub CLI and log in with `gh auth login` (`gh` is not on the "
                "server's PATH)"
            )
        code, out, err = await self._run("auth", "status", "--hostname", self.web_host)
        if code != 0:
            return (
                f"log in with `gh auth login --hostname {self.web_host}` (`gh` is installed but "
                f"not logged in there: {_first_line(err or out)})"
            )
        return None

    async def create(
        self, remote_url: str, head: str, base: str, title: str, body: str, draft: bool
    ) -> PullRequest:
        repo = self._repo(remote_url)
        args = ["pr", "create", "--repo", repo, "--head", head, "--base", base]
        args += ["--title", title, "--body", body, *(["--draft"] if draft else [])]
        code, out, err = await self._run(*args)
        if code != 0:
            if "already exists" in err:
                raise Conflict(
                    f"a pull request from '{head}' into '{base}' is already open: "
                    f'`gh` says "{err.strip()}"'
                )
            raise BadRequest(f"`gh pr create` for {repo} failed (exit {code}): {err.strip()}")
        found = _PR_NUMBER.findall(out)
        if not found:
            raise BadRequest(f"`gh pr create` for {repo} printed no pull request URL: {out!r}")
        return await self.get(remote_url, int(found[-1]))

    async def get(self, remote_url: str, number: int) -> PullRequest:
        repo = self._repo(remote_url)
        code, out, err = await self._run(
            "pr", "view", str(number), "--repo", repo, "--json", _VIEW_FIELDS
        )
        if code != 0:
            raise BadRequest(
                f"`gh pr view {number}` for {repo} failed (exit {code}): {err.strip()}"
            )
        try:
            return _pull(json.loads(out))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BadRequest(
                f"`gh pr view {number}` printed what was not understood: {exc}"
            ) from exc

    async def merge(
        self, remote_url: str, number: int, method: MergeMethod, sha: str | None
    ) -> None:
        repo = self._repo(remote_url)
        args = ["pr", "merge", str(number), "--repo", repo, f"--{method}"]
        args += ["--match-head-commit", sha] if sha else []
        code, out, err = await self._run(*args)
        if code != 0:
            raise Conflict(
                f"`gh pr merge {number}` for {repo} failed (exit {code}): {_first_line(err or out)}"
            )

    def _repo(self, remote_url: str) -> str:
        remote = parse_remote(remote_url)
        if remote is None or len(remote.segments) != 2:
            raise BadRequest(f"'{redact_remote(remote_url)}' does not name a GitHub repository")
        return f"{remote.host}/{remote.path}"

    async def _run(self, *args: str) -> tuple[int, str, str]:
        """``gh *args`` → (exit code, stdout, stderr); ``BadRequest`` if it cannot run in time."""
        env = {**os.environ, "GH_PROMPT_DISABLED": "1", "GH_NO_UPDATE_NOTIFIER": "1"}
        env.update(NO_COLOR="1", GH_SPINNER_DISABLED="1")
        try:
            proc = await asyncio.create_subprocess_exec(
                "gh",
                *args,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise BadRequest(f"could not run `gh`: {exc}") from exc
        try:
            async with asyncio.timeout(self.timeout):
                out, err = await proc.communicate()
        except TimeoutError:
            raise BadRequest(
                f"`gh {' '.join(args[:2])}` did not finish within {self.timeout:g}s (is "
                f"{self.web_host} reachable?) and was stopped"
            ) from None
        finally:
            if proc.returncode is None:  # timed out or cancelled: leave nothing running
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.communicate()
        code = await proc.wait()
        return code, out.decode(errors="replace"), err.decode(errors="replace")


def _pull(data: dict[str, Any]) -> PullRequest:
    checks = [_check(item) for item in data.get("statusCheckRollup") or []]
    reviews = [((r.get("author") or {}).get("login", ""), r["state"]) for r in data["reviews"]]
    review_state = fold_reviews(reviews, reviewers_requested=bool(data.get("reviewRequests")))
    if review_state is None and data.get("reviewDecision") == "REVIEW_REQUIRED":
        review_state = "pending"
    state = str(data["state"]).lower()
    return PullRequest(
        url=str(data["url"]),
        number=int(data["number"]),
        state="merged" if state == "merged" else ("open" if state == "open" else "closed"),
        draft=bool(data.get("isDraft")),
        title=str(data["title"]),
        head=str(data["headRefName"]),
        base=str(data["baseRefName"]),
        checks=checks,
        review_state=review_state,
        head_sha=data.get("headRefOid"),
        mergeable={"MERGEABLE": True, "CONFLICTING": False}.get(str(data.get("mergeable"))),
    )


def _check(item: dict[str, Any]) -> Check:
    """A CheckRun as is (lower-cased); a StatusContext mapped to check-run terms."""
    if item.get("__typename") == "StatusContext":
        status, conclusion = _STATUS_CONTEXT.get(str(item.get("state")), ("queued", None))
        return Check(str(item["context"]), status, conclusion)
    conclusion = item.get("conclusion") or None
    return Check(
        str(item["name"]), str(item["status"]).lower(), conclusion.lower() if conclusion else None
    )


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else "no output"
