"""Small, real HTTP servers that answer like GitLab's REST API v4 and Gitea's (Forgejo's) v1 for
the endpoints ``codeyard.prs.gitlab`` and ``codeyard.prs.gitea`` call.

Neither forge can be reached from where the tests run, so the hosts talk to these over real HTTP
on 127.0.0.1 (``http.server`` in a thread), token checked on every request as the forge would
(GitLab: ``PRIVATE-TOKEN``; Gitea: ``Authorization: token …``). A repository may be backed by a
real bare git repository: branches must then really have been pushed before a merge request is
opened from them, and a request's head follows its branch as on the real forge.

* :class:`FakeGitLab`: ``POST/GET /projects/{id}/merge_requests[/{iid}]`` (409 for a second open
  request from the same branch, the id a URL-encoded path), ``GET …/approvals``,
  ``GET /projects/{id}/pipelines/{pid}/jobs``, ``PUT …/merge`` (405 when not mergeable, 409 when
  ``sha`` is not the head);
* :class:`FakeGitea`: ``POST/GET /repos/{o}/{r}/pulls[/{n}]`` (409 for a duplicate),
  ``GET …/pulls/{n}/reviews``, ``GET /repos/{o}/{r}/commits/{sha}/status``, ``POST …/merge``
  (405 when not mergeable, 409 when ``head_commit_id`` is not the head).
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

Route = tuple[str, "re.Pattern[str]", str]


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    json: Any


class Reply(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status, self.body = status, body


@dataclass
class _Repo:
    bare: Path | None
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)


class _Fake(ABC):
    """The HTTP server, the request log, repositories; subclasses add routes and shapes."""

    api_prefix = ""
    routes: list[Route] = []

    def __init__(self, token: str, web_url: str) -> None:
        self.token = token
        self.web_url = web_url.rstrip("/")
        self.requests: list[Recorded] = []
        self.errors: list[str] = []
        self.repos: dict[str, _Repo] = {}
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Self:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.block_on_close = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-forge",
            daemon=True,
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        assert not self.errors, f"the fake forge failed: {self.errors}"

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def add_repo(self, path: str, bare: Path | None = None) -> None:
        with self.lock:
            self.repos[path] = _Repo(bare)

    def pull(self, path: str, number: int) -> dict[str, Any]:
        with self.lock:
            return dict(self.repos[path].pulls[number])

    def update_pull(self, path: str, number: int, **changes: Any) -> None:
        with self.lock:
            self.repos[path].pulls[number].update(changes)

    @abstractmethod
    def authorized(self, headers: dict[str, str]) -> bool:
        """Whether the request carries this forge's token in this forge's header."""

    def handle(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> Reply:
        parts = urlsplit(target)
        body = json.loads(raw) if raw else None
        with self.lock:
            self.requests.append(Recorded(method, parts.path, headers, body))
        if not parts.path.startswith(self.api_prefix + "/"):
            return Reply(404, {"message": "404 Not Found"})
        if not self.authorized(headers):
            return Reply(401, {"message": "401 Unauthorized"})
        path = parts.path.removeprefix(self.api_prefix)
        for route_method, pattern, name in self.routes:
            match = pattern.fullmatch(path)
            if match and route_method == method:
                handler: Callable[..., Reply] = getattr(self, "_" + name)
                args = [unquote(g) for g in match.groups()]
                try:
                    with self.lock:
                        return handler(parse_qs(parts.query), body or {}, *args)
                except Reply as refused:
                    return refused
        return Reply(404, {"message": "404 Not Found"})

    def repo(self, path: str) -> _Repo:
        found = self.repos.get(path)
        if found is None:
            raise Reply(404, {"message": "404 Project Not Found"})
        return found

    def tip(self, repo: _Repo, branch: str) -> str | None:
        if repo.bare is None:
            return "f" * 40
        done = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"],
            cwd=repo.bare,
            capture_output=True,
            text=True,
        )
        return done.stdout.strip() if done.returncode == 0 else None


class FakeGitLab(_Fake):
    api_prefix = "/api/v4"
    routes: list[Route] = [
        ("POST", re.compile(r"/projects/([^/]+)/merge_requests"), "create"),
        ("GET", re.compile(r"/projects/([^/]+)/merge_requests/(\d+)"), "get"),
        ("GET", re.compile(r"/projects/([^/]+)/merge_requests/(\d+)/approvals"), "approvals"),
        ("PUT", re.compile(r"/projects/([^/]+)/merge_requests/(\d+)/merge"), "merge"),
        ("GET", re.compile(r"/projects/([^/]+)/pipelines/(\d+)/jobs"), "jobs"),
    ]

    def __init__(self, token: str = "glpat-fake", web_url: str = "https://gitlab.com") -> None:
        super().__init__(token, web_url)
        self.pipelines: dict[str, tuple[int, list[dict[str, Any]]]] = {}  # sha → (id, jobs)
        self.approved_by: dict[tuple[str, int], list[str]] = {}

    def authorized(self, headers: dict[str, str]) -> bool:
        return headers.get("private-token") == self.token

    def add_pipeline(self, sha: str, jobs: list[tuple[str, str, bool]]) -> None:
        """The head pipeline of ``sha``: jobs as (name, GitLab status, allow_failure)."""
        with self.lock:
            number = 100 + len(self.pipelines)
            self.pipelines[sha] = (
                number,
                [{"name": n, "status": s, "allow_failure": a} for n, s, a in jobs],
            )

    def approve(self, path: str, iid: int, user: str) -> None:
        with self.lock:
            self.approved_by.setdefault((path, iid), []).append(user)

    def _create(self, _q: Any, body: dict[str, Any], project: str) -> Reply:
        repo = self.repo(project)
        source, target = body.get("source_branch"), body.get("target_branch")
        if not source or not target or not body.get("title"):
            raise Reply(400, {"error": "source_branch, target_branch, title are missing"})
        sha = self.tip(repo, str(source))
        if sha is None or self.tip(repo, str(target)) is None:
            raise Reply(422, {"message": ["Source branch or target branch does not exist"]})
        for mr in repo.pulls.values():
            if mr["source_branch"] == source and mr["state"] == "opened":
                raise Reply(
                    409,
                    {
                        "message": [
                            "Another open merge request already exists for this source "
                            f"branch: !{mr['iid']}"
                        ]
                    },
                )
        iid = len(repo.pulls) + 1
        title = str(body["title"])
        repo.pulls[iid] = {
            "id": 5000 + iid,
            "iid": iid,
            "project_id": 7,
            "title": title,
            "description": body.get("description") or "",
            "state": "opened",
            "draft": title.lower().startswith("draft:"),
            "source_branch": source,
            "target_branch": target,
            "sha": sha,
            "web_url": f"{self.web_url}/{project}/-/merge_requests/{iid}",
            "detailed_merge_status": "mergeable",
            "reviewers": [],
            "head_pipeline": None,
        }
        return Reply(201, self._shown(repo, repo.pulls[iid]))

    def _shown(self, repo: _Repo, mr: dict[str, Any]) -> dict[str, Any]:
        if mr["state"] == "opened":
            mr["sha"] = self.tip(repo, mr["source_branch"]) or mr["sha"]
        found = self.pipelines.get(mr["sha"])
        mr["head_pipeline"] = {"id": found[0], "sha": mr["sha"]} if found else None
        return dict(mr)

    def _get(self, _q: Any, _b: Any, project: str, iid: str) -> Reply:
        repo = self.repo(project)
        mr = repo.pulls.get(int(iid))
        if mr is None:
            raise Reply(404, {"message": "404 Not found"})
        return Reply(200, self._shown(repo, mr))

    def _approvals(self, _q: Any, _b: Any, project: str, iid: str) -> Reply:
        self.repo(project)
        users = self.approved_by.get((project, int(iid)), [])
        by = [{"user": {"username": u}} for u in users]
        return Reply(200, {"approved": bool(users), "approved_by": by, "approvals_left": 0})

    def _jobs(self, _q: Any, _b: Any, project: str, pipeline: str) -> Reply:
        self.repo(project)
        for number, jobs in self.pipelines.values():
            if number == int(pipeline):
                return Reply(200, jobs)
        raise Reply(404, {"message": "404 Not found"})

    def _merge(self, _q: Any, body: dict[str, Any], project: str, iid: str) -> Reply:
        repo = self.repo(project)
        mr = repo.pulls.get(int(iid))
        if mr is None:
            raise Reply(404, {"message": "404 Not found"})
        self._shown(repo, mr)
        if mr["state"] != "opened" or mr["detailed_merge_status"] != "mergeable":
            raise Reply(405, {"message": "405 Method Not Allowed"})
        if body.get("sha") and body["sha"] != mr["sha"]:
            raise Reply(409, {"message": "SHA does not match HEAD of source branch"})
        mr.update(state="merged", squash=bool(body.get("squash")))
        return Reply(200, dict(mr))


class FakeGitea(_Fake):
    api_prefix = "/api/v1"
    routes: list[Route] = [
        ("POST", re.compile(r"/repos/([^/]+/[^/]+)/pulls"), "create"),
        ("GET", re.compile(r"/repos/([^/]+/[^/]+)/pulls/(\d+)"), "get"),
        ("GET", re.compile(r"/repos/([^/]+/[^/]+)/pulls/(\d+)/reviews"), "reviews"),
        ("POST", re.compile(r"/repos/([^/]+/[^/]+)/pulls/(\d+)/merge"), "merge"),
        ("GET", re.compile(r"/repos/([^/]+/[^/]+)/commits/([^/]+)/status"), "status"),
    ]

    def __init__(self, token: str = "gitea-fake", web_url: str = "https://codeberg.org") -> None:
        super().__init__(token, web_url)
        self.statuses: dict[str, list[dict[str, Any]]] = {}
        self.reviews: dict[tuple[str, int], list[dict[str, Any]]] = {}

    def authorized(self, headers: dict[str, str]) -> bool:
        return headers.get("authorization") == f"token {self.token}"

    def add_status(self, sha: str, context: str, status: str) -> None:
        with self.lock:
            self.statuses.setdefault(sha, []).append({"context": context, "status": status})

    def add_review(self, path: str, number: int, user: str, state: str) -> None:
        with self.lock:
            reviews = self.reviews.setdefault((path, number), [])
            reviews.append({"id": len(reviews) + 1, "user": {"login": user}, "state": state})

    def _create(self, _q: Any, body: dict[str, Any], path: str) -> Reply:
        repo = self.repo(path)
        head, base = str(body.get("head") or ""), str(body.get("base") or "")
        sha = self.tip(repo, head)
        if sha is None or self.tip(repo, base) is None:
            raise Reply(404, {"message": "The target couldn't be found."})
        for pull in repo.pulls.values():
            if pull["head"]["ref"] == head and pull["base"]["ref"] == base and not pull["closed"]:
                raise Reply(
                    409,
                    {
                        "message": "pull request already exists for these targets "
                        f"[id: {pull['id']}]"
                    },
                )
        number = len(repo.pulls) + 1
        repo.pulls[number] = {
            "id": 900 + number,
            "number": number,
            "html_url": f"{self.web_url}/{path}/pulls/{number}",
            "title": body.get("title"),
            "body": body.get("body"),
            "state": "open",
            "closed": False,
            "merged": False,
            "mergeable": True,
            "head": {"ref": head, "sha": sha},
            "base": {"ref": base},
            "requested_reviewers": [],
        }
        return Reply(201, self._shown(repo, repo.pulls[number]))

    def _shown(self, repo: _Repo, pull: dict[str, Any]) -> dict[str, Any]:
        if pull["state"] == "open":
            pull["head"]["sha"] = self.tip(repo, pull["head"]["ref"]) or pull["head"]["sha"]
        return json.loads(json.dumps(pull))

    def _get(self, _q: Any, _b: Any, path: str, number: str) -> Reply:
        repo = self.repo(path)
        pull = repo.pulls.get(int(number))
        if pull is None:
            raise Reply(404, {"message": "The target couldn't be found."})
        return Reply(200, self._shown(repo, pull))

    def _reviews(self, _q: Any, _b: Any, path: str, number: str) -> Reply:
        self.repo(path)
        return Reply(200, self.reviews.get((path, int(number)), []))

    def _status(self, _q: Any, _b: Any, path: str, sha: str) -> Reply:
        self.repo(path)
        statuses = self.statuses.get(sha, [])
        states = {s["status"] for s in statuses}
        state = (
            "failure"
            if states & {"failure", "error"}
            else "pending"
            if ("pending" in states or not statuses)
            else "success"
        )
        return Reply(200, {"state": state, "sha": sha, "statuses": statuses})

    def _merge(self, _q: Any, body: dict[str, Any], path: str, number: str) -> Reply:
        repo = self.repo(path)
        pull = repo.pulls.get(int(number))
        if pull is None:
            raise Reply(404, {"message": "The target couldn't be found."})
        self._shown(repo, pull)
        if pull["state"] != "open" or not pull["mergeable"]:
            raise Reply(405, {"message": "Please try again later"})
        if body.get("head_commit_id") and body["head_commit_id"] != pull["head"]["sha"]:
            raise Reply(409, {"message": "head out of date"})
        pull.update(state="closed", closed=True, merged=True, merge_style=body.get("Do"))
        return Reply(200, None)


def _handler_for(fake: _Fake) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                reply = fake.handle(self.command, self.path, headers, raw)
            except Exception as exc:  # a bug in the fake: answer 500, fail the test at exit
                fake.errors.append(f"{self.command} {self.path}: {exc!r}")
                reply = Reply(500, {"message": "fake forge failed"})
            data = b"" if reply.body is None else json.dumps(reply.body).encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
