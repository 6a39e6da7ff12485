"""The REST calls of the pull-request loop: what failed on a head commit (with its log and
annotations), and what a review asked for (its inline comments).

Built on :class:`~codeyard.prs.github.GitHubRest` (same token, Enterprise URL, error wording):
the loop reads the same pull requests the host opened. A failing check's log is the GitHub
Actions job log (``/actions/jobs/{id}/logs``, a redirect to the log file); for checks of other
apps, and when the log is gone, the check run's own output (title, summary, text) stands in.
Peers' fix loops fired "without the failing log": the log is fetched before the turn starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from codeyard.github.feedback import FAILED_CONCLUSIONS, FAILED_STATES
from codeyard.prs.github import GitHubRest

if TYPE_CHECKING:
    # httpx (with the Rich and Click it imports) loads on first use, not at the server's
    # start-up (issue 15).
    import httpx

__all__ = ["FailedCheck", "PrFeedbackApi"]

#: Bytes of a job log read at most (the end is what matters; logs can be hundreds of MB).
LOG_BYTES = 512 * 1024
#: Annotations per check shown to the agent.
MAX_ANNOTATIONS = 20


@dataclass(frozen=True, slots=True)
class FailedCheck:
    name: str
    url: str
    log: str
    annotations: list[dict[str, Any]] = field(default_factory=list)


def _path(repo: str) -> str:
    return "/".join(quote(s, safe="") for s in repo.split("/", 1))


class PrFeedbackApi(GitHubRest):
    """``repo`` arguments are ``owner/name`` (as webhooks and the poller name them)."""

    async def failed_checks(self, repo: str, sha: str) -> list[FailedCheck]:
        """Every failed check run and commit status of ``sha``, each with its log."""
        doing = f"reading the checks of {sha[:12]} in {repo}"
        base = f"/repos/{_path(repo)}/commits/{quote(sha, safe='')}"
        out: list[FailedCheck] = []
        async with self._client() as client:
            runs = await self._paged(client, f"{base}/check-runs", doing, key="check_runs")
            for run in runs:
                if run.get("status") != "completed" or run.get("conclusion") not in (
                    FAILED_CONCLUSIONS
                ):
                    continue
                out.append(await self._check(client, repo, run, doing))
            combined = await self._request(
                client, "GET", f"{base}/status", doing=doing, missing=f"commit {sha} in {repo}"
            )
            for status in (combined.json() or {}).get("statuses") or []:
                if status.get("state") in FAILED_STATES:
                    text = str(status.get("description") or "(no description)")
                    url = str(status.get("target_url") or "")
                    out.append(FailedCheck(str(status.get("context")), url, text))
        return out

    async def required_for(self, repo: str, branch: str) -> list[str] | None:
        """The checks ``branch``'s protection requires (see :meth:`GitHubRest.required_checks`)."""
        async with self._client() as client:
            return await self.required_checks(client, _path(repo), branch)

    async def _check(
        self, client: httpx.AsyncClient, repo: str, run: dict[str, Any], doing: str
    ) -> FailedCheck:
        run_id = int(run["id"])
        output = run.get("output") or {}
        log = await self._job_log(client, repo, run_id)
        if not log:
            parts = [output.get("title"), output.get("summary"), output.get("text")]
            log = "\n".join(str(p) for p in parts if p)
        notes: list[dict[str, Any]] = []
        if int(output.get("annotations_count") or 0) > 0:
            found = await self._paged(
                client, f"/repos/{_path(repo)}/check-runs/{run_id}/annotations", doing
            )
            notes = [a for a in found if a.get("annotation_level") != "notice"][:MAX_ANNOTATIONS]
        url = str(run.get("details_url") or run.get("html_url") or "")
        return FailedCheck(str(run.get("name")), url, log, notes)

    async def _job_log(self, client: httpx.AsyncClient, repo: str, job_id: int) -> str:
        """The Actions job log's end; empty when the check is not an Actions job or its log
        expired (404/410), so the caller falls back to the check's output."""
        url = f"/repos/{_path(repo)}/actions/jobs/{job_id}/logs"
        import httpx

        try:
            async with client.stream("GET", url) as response:
                if not response.is_success:
                    return ""
                tail = b""
                async for chunk in response.aiter_bytes():
                    tail = (tail + chunk)[-LOG_BYTES:]
        except httpx.HTTPError:
            return ""
        return tail.decode("utf-8", errors="replace")

    async def review_comments(self, repo: str, number: int, review_id: int) -> list[dict[str, Any]]:
        """The inline comments of one review, each with its file and line."""
        doing = f"reading review {review_id} of pull request #{number} in {repo}"
        url = f"/repos/{_path(repo)}/pulls/{number}/reviews/{review_id}/comments"
        async with self._client() as client:
            return await self._paged(client, url, doing)

    async def latest_change_request(self, repo: str, number: int) -> dict[str, Any] | None:
        """The newest review that requested changes (the poller only sees the decision)."""
        doing = f"reading the reviews of pull request #{number} in {repo}"
        async with self._client() as client:
            reviews = await self._paged(
                client, f"/repos/{_path(repo)}/pulls/{number}/reviews", doing
            )
        asked = [r for r in reviews if str(r.get("state", "")).upper() == "CHANGES_REQUESTED"]
        return asked[-1] if asked else None
