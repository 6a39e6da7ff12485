"""Merge requests on GitLab (gitlab.com or self-managed) through its REST API v4, with a token.

The endpoints used: create, read and merge a merge request; the jobs of its head pipeline (the
checks); its approvals (the review state). A merge request is a :class:`PullRequest` like any
other: ``number`` is its ``iid``, the checks are the head pipeline's jobs by name. GitLab marks a
draft by the title (``Draft:``), and merges by its project's own method: ``squash`` is a flag,
``rebase`` is refused with what to do instead.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from codeyard.domain.errors import BadRequest, Conflict
from codeyard.prs.base import Check, MergeMethod, PrConfig, PrState, PullRequest, ReviewState
from codeyard.prs.forge import ForgeRest, said

__all__ = ["GitLabRest", "job_check"]

_STATES: dict[str, PrState] = {"opened": "open", "merged": "merged"}  # closed, locked: closed
#: GitLab job status → (check status, conclusion).
_JOBS: dict[str, tuple[str, str | None]] = {
    "created": ("queued", None),
    "pending": ("queued", None),
    "waiting_for_resource": ("queued", None),
    "preparing": ("queued", None),
    "scheduled": ("queued", None),
    "running": ("in_progress", None),
    "success": ("completed", "success"),
    "failed": ("completed", "failure"),
    "canceled": ("completed", "cancelled"),
    "skipped": ("completed", "skipped"),
    "manual": ("completed", "skipped"),  # waits for a person; does not block the pipeline
}


def job_check(job: dict[str, Any]) -> Check:
    """A pipeline job as a check; a failed job allowed to fail is ``neutral``, as GitLab shows
    it (a warning, the pipeline still passes)."""
    status, conclusion = _JOBS.get(str(job["status"]), ("queued", None))
    if conclusion == "failure" and job.get("allow_failure"):
        conclusion = "neutral"
    return Check(str(job["name"]), status, conclusion)


class GitLabRest(ForgeRest):
    name = "gitlab"
    label = "GitLab"
    token_variable = "CODEYARD_GITLAB_TOKEN"
    url_variable = "CODEYARD_GITLAB_URL"
    api_path = "/api/v4"

    def __init__(self, config: PrConfig, *, timeout: float = 30.0) -> None:
        super().__init__(config.gitlab_url, config.gitlab_token, timeout=timeout)

    def _auth(self) -> dict[str, str]:
        return {"PRIVATE-TOKEN": self.token or ""}

    def _project(self, remote_url: str) -> str:
        """The project's id as GitLab takes it in a path: ``group%2Fsub%2Frepo``."""
        return quote(self._path(remote_url), safe="")

    async def create(
        self, remote_url: str, head: str, base: str, title: str, body: str, draft: bool
    ) -> PullRequest:
        project = self._project(remote_url)
        shown = title if not draft or title.lower().startswith("draft:") else f"Draft: {title}"
        payload = {
            "source_branch": head,
            "target_branch": base,
            "title": shown,
            "description": body,
            "remove_source_branch": False,
        }
        doing = f"opening a merge request from '{head}' into '{base}'"
        async with self._client() as client:
            response = await self._send(
                client, "POST", f"/projects/{project}/merge_requests", doing=doing, json=payload
            )
        if response.status_code == 409:
            raise Conflict(
                f"a merge request from '{head}' into '{base}' is already open: GitLab says "
                f'"{said(response)}"',
                status=409,
            )
        if not response.is_success:
            raise self._error(response, doing, f"project {self._path(remote_url)}")
        return self._pull(response.json(), [], None, doing)

    async def get(self, remote_url: str, number: int) -> PullRequest:
        project = self._project(remote_url)
        doing = f"reading merge request !{number} of {self._path(remote_url)}"
        missing = f"merge request !{number}"
        base = f"/projects/{project}/merge_requests/{number}"
        async with self._client() as client:
            data = await self._ok(client, "GET", base, doing=doing, missing=missing)
            pipeline = (data.get("head_pipeline") if isinstance(data, dict) else None) or {}
            jobs: list[dict[str, Any]] = []
            if pipeline.get("id"):
                url = f"/projects/{project}/pipelines/{int(pipeline['id'])}/jobs"
                params = {"per_page": 100}
                jobs = await self._ok(client, "GET", url, doing=doing, missing=url, params=params)
            approvals = await self._ok(
                client, "GET", f"{base}/approvals", doing=doing, missing=missing
            )
        try:
            checks = [job_check(j) for j in jobs]
            approved = bool(approvals.get("approved")) and bool(approvals.get("approved_by"))
        except (KeyError, TypeError, AttributeError) as exc:
            raise self._not_understood(doing, exc) from exc
        review: ReviewState | None = "approved" if approved else None
        if review is None and data.get("reviewers"):
            review = "pending"
        return self._pull(data, checks, review, doing)

    async def merge(
        self, remote_url: str, number: int, method: MergeMethod, sha: str | None
    ) -> None:
        if method == "rebase":
            raise BadRequest(
                "GitLab merges with the project's merge method: choose 'merge' or 'squash', or "
                "set the project to fast-forward merges (Settings → Merge requests) to rebase"
            )
        project = self._project(remote_url)
        doing = f"merging merge request !{number}"
        payload: dict[str, Any] = {"squash": method == "squash", **({"sha": sha} if sha else {})}
        async with self._client() as client:
            response = await self._send(
                client,
                "PUT",
                f"/projects/{project}/merge_requests/{number}/merge",
                doing=doing,
                json=payload,
            )
        if response.is_success:
            return
        if response.status_code in (405, 406, 422):
            raise Conflict(
                f"GitLab will not merge merge request !{number} ({said(response)}): wait for "
                "its pipeline and approvals, or resolve its conflicts (rebase the run and push)",
                status=response.status_code,
            )
        if response.status_code == 409:
            raise Conflict(
                f"Merge request !{number}'s head moved ({said(response)}): read it again and "
                "merge the commit you reviewed",
                status=409,
            )
        raise self._error(response, doing, f"merge request !{number}")

    def _pull(
        self, data: Any, checks: list[Check], review: ReviewState | None, doing: str
    ) -> PullRequest:
        try:
            title = str(data["title"])
            status = str(data.get("detailed_merge_status") or data.get("merge_status") or "")
            mergeable = (
                None
                if status in ("", "checking", "unchecked", "preparing")
                else (status in ("mergeable", "can_be_merged"))
            )
            return PullRequest(
                url=str(data["web_url"]),
                number=int(data["iid"]),
                state=_STATES.get(str(data["state"]), "closed"),
                draft=bool(data.get("draft") or data.get("work_in_progress")),
                title=title,
                head=str(data["source_branch"]),
                base=str(data["target_branch"]),
                checks=checks,
                review_state=review,
                head_sha=data.get("sha"),
                mergeable=mergeable,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise self._not_understood(doing, exc) from exc
