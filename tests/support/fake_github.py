"""A small, real HTTP server that answers like GitHub's REST API for the endpoints Codeyard uses.

GitHub cannot be reached from where the tests run, so ``codeyard.prs.github`` talks to this
instead, over real HTTP on 127.0.0.1 (``http.server`` in a thread). It implements only:

* ``POST /repos/{owner}/{repo}/pulls`` (422 for a duplicate, a missing field, an unknown branch,
  or no commits between the branches),
* ``GET /repos/{owner}/{repo}/pulls/{number}``,
* ``GET /repos/{owner}/{repo}/pulls?state=open`` with an ``ETag`` (``If-None-Match`` → 304),
* ``POST /graphql`` for the one query shape ``codeyard.github.poller`` sends (aliased
  ``repository``/``pullRequest`` blocks with the head commit's check rollup and the base
  branch's current tip),
* rate-limit headers from :attr:`FakeGitHub.rate` on every answer,
* ``GET /repos/{owner}/{repo}/commits/{ref}/check-runs``,
* ``GET /repos/{owner}/{repo}/pulls/{number}/reviews``,
* ``PUT /repos/{owner}/{repo}/pulls/{number}/merge`` (405 when not mergeable, 409 when ``sha``
  is not the head),
* ``GET /repos/{owner}/{repo}/actions/jobs/{id}/logs`` (a 302 to the log file, served without
  the token as GitHub's log storage does), ``GET …/check-runs/{id}/annotations``,
  ``GET …/commits/{ref}/status`` (combined commit statuses),
  ``GET …/pulls/{number}/reviews/{id}/comments`` (a review's inline comments),
* ``GET /repos/{owner}/{repo}`` (the repository),
* ``GET /repos/{owner}/{repo}/branches/{branch}`` (its protection's required checks, set with
  :meth:`FakeGitHub.protect`),
* ``GET /repos/{owner}/{repo}/hooks/{id}/deliveries`` (cursor-paged, newest first) and
  ``POST …/deliveries/{delivery_id}/attempts`` (redeliver: same ``guid``, a new attempt),

and it *sends* webhooks: :meth:`FakeGitHub.add_hook` registers a repository hook (a URL and a
secret; GitHub pings it at once) and :meth:`FakeGitHub.deliver` posts a signed delivery to every
hook of the repository over real HTTP, recording the attempt as GitHub does (status code 0 when
the receiver could not be reached). Call ``deliver`` from a thread (``asyncio.to_thread``) when
the receiver runs in the test's event loop.

with GitHub's pagination (``per_page``/``page`` and a ``Link: rel="next"`` header), 401 "Bad
credentials" unless ``Authorization: Bearer <token>`` matches, and 404 for unknown repositories.
``api_prefix="/api/v3"`` makes it an Enterprise server: only paths under the prefix answer. A
repository may be backed by a real bare git repository, so that branches must really have been
pushed before a pull request can be opened from them. Every request is recorded.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

DOCS = "https://docs.github.com/rest"
_GQL_REPO = re.compile(r'(r\d+): repository\(owner: "([^"]+)", name: "([^"]+)"\)')
_GQL_PULL = re.compile(r"(p\d+): pullRequest\(number: (\d+)\)")
_ROUTES = [
    ("POST", re.compile(r"/repos/([^/]+)/([^/]+)/pulls"), "create_pull"),
    ("GET", re.compile(r"/repos/([^/]+)/([^/]+)/pulls"), "list_pulls"),
    ("POST", re.compile(r"/graphql"), "graphql"),
    ("GET", re.compile(r"/repos/([^/]+)/([^/]+)/pulls/(\d+)"), "get_pull"),
    ("GET", re.compile(r"/repos/([^/]+)/([^/]+)/commits/([^/]+)/check-runs"), "check_runs"),
    ("GET", re.compile(r"/repos/([^/]+)/([^/]+)/pulls/(\d+)/reviews"), "reviews"),
    (
        "GET",
        re.compile(r"/repos/([^/]+)/([^/]+)/pulls/(\d+)/reviews/(\d+)/comments"),
        "review_comments",
    ),
    ("GET", re.compile(r"/repos/([^/]+)/([^/]+)/commits/([^/]+)/status"), "combined_status"),
    ("GET", re.compile(r"/repos/([^/]+)/([^/]+)/actions/jobs/(\d+)/logs"), "job_log"),
    (
        "GET",
        re.compile(r"/repos/([^/]+)/([^/]+)/check-runs/(\d+)/annotations"),
        "annotations_of",
    ),
    ("PUT", re.compile(r"/repos/([^/]+)/([^/]+)/pulls/(\d+)/merge"), "merge_pull"),
    ("GET", re.compile(r"/repos/([^/]+)/([^/]+)/hooks/(\d+)/deliveries"), "hook_deliveries"),
    ("GET", re.compile(r"/repos/([^/]+)/([^/]+)/branches/([^/]+)"), "branch"),
    ("GET", re.compile(r"/repos/([^/]+)/([^/]+)"), "get_repo"),
    (
        "POST",
        re.compile(r"/repos/([^/]+)/([^/]+)/hooks/(\d+)/deliveries/(\d+)/attempts"),
        "redeliver",
    ),
]


@dataclass
class Recorded:
    """One request as the server saw it (header names lower-cased)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    json: Any


@dataclass
class _Hook:
    id: int
    repo: str
    url: str
    secret: str
    target: str = "repository"  # "integration": a GitHub App's own hook


@dataclass
class _Repo:
    bare: Path | None
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    reviews: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    review_comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    required: dict[str, list[str]] = field(default_factory=dict)  # protected branch → checks


class _Reply(Exception):
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def _validation(*errors: dict[str, Any]) -> _Reply:
    return _Reply(
        422,
        {"message": "Validation Failed", "errors": list(errors), "documentation_url": DOCS},
    )


class FakeGitHub:
    """Use as ``with FakeGitHub(token) as fake:``; point ``github_api_url`` at ``fake.api_url``."""

    routes = _ROUTES

    def authorized(self, path: str, authorization: str) -> bool:
        """Whether a request to ``path`` may be answered (subclasses know more credentials)."""
        return authorization in (f"Bearer {self.token}", f"token {self.token}")

    def __init__(
        self, token: str = "ghp_fake", *, api_prefix: str = "", web_url: str = "https://github.com"
    ) -> None:
        self.token = token
        self.api_prefix = api_prefix.rstrip("/")
        self.web_url = web_url.rstrip("/")
        self.requests: list[Recorded] = []
        self.delay = 0.0  # seconds to wait before answering, for timeout tests
        self.errors: list[str] = []  # bugs in this fake, raised when it stops
        self._repos: dict[str, _Repo] = {}
        self._runs_by_sha: dict[str, list[dict[str, Any]]] = {}
        self._statuses_by_sha: dict[str, list[dict[str, Any]]] = {}
        self._logs: dict[int, bytes] = {}  # check run id → its Actions job log
        self._annotations: dict[int, list[dict[str, Any]]] = {}
        self._next_id = 1
        self._next_number = 1
        self._if_none_match: str | None = None
        self.hooks: dict[int, _Hook] = {}
        #: ``X-RateLimit-*`` headers sent with every answer (tests lower ``remaining``).
        self.rate = {"limit": 5000, "remaining": 4999, "reset": int(time.time()) + 3600}
        self.deliveries: list[dict[str, Any]] = []  # every attempt, oldest first
        self._lock = threading.Lock()
        self.current = threading.local()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> FakeGitHub:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.block_on_close = True  # server_close() waits for requests being answered
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-github"
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        assert not self.errors, f"the fake GitHub failed: {self.errors}"

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def api_url(self) -> str:
        return self.url + self.api_prefix

    # --- arranging state -----------------------------------------------------------------

    def add_repo(self, full_name: str, bare: Path | None = None) -> None:
        """Make ``owner/repo`` exist; with ``bare``, branches are looked up in that repository."""
        with self._lock:
            self._repos[full_name] = _Repo(bare)

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def add_check_run(
        self,
        sha: str,
        name: str,
        status: str,
        conclusion: str | None = None,
        *,
        log: str | None = None,
        output: dict[str, Any] | None = None,
        annotations: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """A check run on ``sha``; with ``log`` it is an Actions job whose log can be fetched."""
        with self._lock:
            runs = self._runs_by_sha.setdefault(sha, [])
            run_id = self._new_id()
            out = {"title": None, "summary": None, "text": None, **(output or {})}
            out["annotations_count"] = len(annotations or [])
            run = {
                "id": run_id,
                "name": name,
                "head_sha": sha,
                "status": status,
                "conclusion": conclusion,
                "details_url": f"https://github.com/checks/{run_id}",
                "html_url": f"https://github.com/checks/{run_id}",
                "output": out,
            }
            runs.append(run)
            if log is not None:
                self._logs[run_id] = log.encode()
            self._annotations[run_id] = list(annotations or [])
            return dict(run)

    def protect(self, full_name: str, branch: str, required: list[str]) -> None:
        """Branch protection on ``branch`` requiring the named checks to pass."""
        with self._lock:
            self._repos[full_name].required[branch] = list(required)

    def add_status(
        self, sha: str, context: str, state: str, description: str = "", target_url: str = ""
    ) -> None:
        """A commit status (the older statuses API external CI services use)."""
        with self._lock:
            self._statuses_by_sha.setdefault(sha, []).append(
                {
                    "id": self._new_id(),
                    "context": context,
                    "state": state,
                    "description": description,
                    "target_url": target_url,
                }
            )

    def add_review(
        self,
        full_name: str,
        number: int,
        user: str,
        state: str,
        *,
        body: str = "",
        comments: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """A review; ``comments`` (``path``, ``line``, ``body``) are its inline comments."""
        with self._lock:
            repo = self._repos[full_name]
            reviews = repo.reviews.setdefault(number, [])
            submitted = None if state == "PENDING" else f"2024-01-01T00:00:{len(reviews):02d}Z"
            review_id = self._new_id()
            review = {
                "id": review_id,
                "user": {"login": user, "type": "Bot" if user.endswith("[bot]") else "User"},
                "state": state,
                "body": body,
                "submitted_at": submitted,
                "html_url": f"{self.web_url}/{full_name}/pull/{number}#review-{review_id}",
            }
            reviews.append(review)
            repo.review_comments[review_id] = [
                {
                    "id": self._new_id(),
                    "pull_request_review_id": review_id,
                    "user": review["user"],
                    "html_url": f"{self.web_url}/{full_name}/pull/{number}#discussion",
                    **c,
                }
                for c in comments or []
            ]
            return dict(review)

    def update_pull(self, full_name: str, number: int, **changes: Any) -> dict[str, Any]:
        """Change a pull (``state="closed"``, ``merged=True``, ``requested_reviewers=[…]``)."""
        with self._lock:
            pull = self._repos[full_name].pulls[number]
            if changes.pop("merged", False):
                changes.update(state="closed", merged=True, merged_at="2024-01-02T00:00:00Z")
            pull.update(changes)
            return dict(pull)

    def add_hook(self, full_name: str, url: str, secret: str) -> int:
        """A repository webhook to ``url`` signed with ``secret``; GitHub pings it at once."""
        with self._lock:
            hook_id = 1000 + len(self.hooks) + 1
            self.hooks[hook_id] = _Hook(hook_id, full_name, url, secret)
        self.deliver(full_name, "ping", {"zen": "Keep it logically awesome.", "hook_id": hook_id})
        return hook_id

    def deliver(self, full_name: str, event: str, payload: dict[str, Any]) -> list[int]:
        """Send ``event`` to every hook of the repository; the attempts' status codes."""
        body = {**payload, "repository": {"full_name": full_name, "id": 1}}
        codes = []
        for hook in [h for h in self.hooks.values() if h.repo == full_name]:
            guid = str(uuid.uuid4())
            codes.append(self._attempt(hook, guid, event, json.dumps(body).encode(), False))
        return codes

    def resend(self, delivery_id: int) -> int:
        """Send a recorded delivery again at once (same ``guid``), as "Redeliver" does."""
        with self._lock:
            original = next(d for d in self.deliveries if d["id"] == delivery_id)
            hook = self.hooks[original["hook_id"]]
        return self._attempt(hook, original["guid"], original["event"], original["payload"], True)

    def _attempt(self, hook: _Hook, guid: str, event: str, raw: bytes, redelivery: bool) -> int:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/fake",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": guid,
            "X-GitHub-Hook-ID": str(hook.id),
            "X-GitHub-Hook-Installation-Target-Type": hook.target,
            "X-GitHub-Hook-Installation-Target-ID": "1",
            "X-Hub-Signature-256": "sha256="
            + hmac.new(hook.secret.encode(), raw, hashlib.sha256).hexdigest(),
        }
        started = time.monotonic()
        request = urllib.request.Request(hook.url, data=raw, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                code = int(answer.status)
        except urllib.error.HTTPError as refused:
            code = refused.code
        except (urllib.error.URLError, OSError):
            code = 0  # GitHub: "failed to connect to host"
        action = json.loads(raw).get("action")
        with self._lock:
            self.deliveries.append(
                {
                    "id": 50_000 + len(self.deliveries) + 1,
                    "guid": guid,
                    "delivered_at": "2026-12-03T12:00:00Z",
                    "redelivery": redelivery,
                    "duration": round(time.monotonic() - started, 3),
                    "status": "OK"
                    if 200 <= code < 300
                    else "failed to connect"
                    if not code
                    else "Invalid HTTP Response: " + str(code),
                    "status_code": code,
                    "event": event,
                    "action": action,
                    "installation_id": None,
                    "repository_id": 1,
                    "hook_id": hook.id,
                    "payload": raw,
                }
            )
        return code

    def pull(self, full_name: str, number: int) -> dict[str, Any]:
        with self._lock:
            return dict(self._repos[full_name].pulls[number])

    # --- answering -----------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> _Reply:
        parts = urlsplit(target)
        query = parse_qs(parts.query)
        body = json.loads(raw) if raw else None
        with self._lock:
            self.requests.append(Recorded(method, parts.path, query, headers, body))
        if self.delay:
            time.sleep(self.delay)
        if parts.path.startswith("/_logs/"):  # log storage: a signed URL, no token
            log = self._logs.get(int(parts.path.rsplit("/", 1)[1]))
            return _Reply(404, {"message": "Not Found"}) if log is None else _Reply(200, log)
        if not parts.path.startswith(self.api_prefix + "/"):
            return _Reply(404, {"message": "Not Found", "documentation_url": DOCS})
        path = parts.path.removeprefix(self.api_prefix)
        self.current.headers = headers  # this thread's request, for handlers that need them
        if not self.authorized(path, headers.get("authorization") or ""):
            return _Reply(401, {"message": "Bad credentials", "documentation_url": DOCS})
        for route_method, pattern, name in self.routes:
            match = pattern.fullmatch(path)
            if match and route_method == method:
                answer = getattr(self, "_" + name)
                try:
                    with self._lock:
                        self._if_none_match = headers.get("if-none-match")
                        reply: _Reply = answer(query, body, *match.groups())
                except _Reply as refused:
                    return refused
                return reply
        return _Reply(404, {"message": "Not Found", "documentation_url": DOCS})

    def _repo(self, owner: str, name: str) -> _Repo:
        repo = self._repos.get(f"{owner}/{name}")
        if repo is None:
            raise _Reply(404, {"message": "Not Found", "documentation_url": DOCS})
        return repo

    def _create_pull(self, _q: Any, body: Any, owner: str, name: str) -> _Reply:
        repo = self._repo(owner, name)
        body = body if isinstance(body, dict) else {}
        for key in ("title", "head", "base"):
            if not body.get(key):
                raise _validation(
                    {"resource": "PullRequest", "field": key, "code": "missing_field"}
                )
        head, base = body["head"], body["base"]
        head_sha, base_sha = self._sha(repo, head, "head"), self._sha(repo, base, "base")
        if repo.bare is not None and _is_ancestor(repo.bare, head_sha, base_sha):
            raise _validation(
                {
                    "resource": "PullRequest",
                    "code": "custom",
                    "message": f"No commits between {base} and {head}",
                }
            )
        for pull in repo.pulls.values():
            if (
                pull["state"] == "open"
                and pull["head"]["ref"] == head
                and pull["base"]["ref"] == base
            ):
                raise _validation(
                    {
                        "resource": "PullRequest",
                        "code": "custom",
                        "message": f"A pull request already exists for {owner}:{head}.",
                    }
                )
        number, self._next_number = self._next_number, self._next_number + 1
        repo.pulls[number] = {
            "url": f"{self.api_url}/repos/{owner}/{name}/pulls/{number}",
            "html_url": f"{self.web_url}/{owner}/{name}/pull/{number}",
            "number": number,
            "state": "open",
            "draft": bool(body.get("draft", False)),
            "title": body["title"],
            "body": body.get("body"),
            "merged": False,
            "merged_at": None,
            "user": {"login": "codeyard-bot"},
            "head": {"ref": head, "sha": head_sha, "label": f"{owner}:{head}"},
            "base": {"ref": base, "sha": base_sha, "label": f"{owner}:{base}"},
            "requested_reviewers": [],
            "requested_teams": [],
            "mergeable": True,
        }
        return _Reply(201, repo.pulls[number])

    def _get_pull(self, _q: Any, _b: Any, owner: str, name: str, number: str) -> _Reply:
        repo = self._repo(owner, name)
        pull = repo.pulls.get(int(number))
        if pull is None:
            raise _Reply(404, {"message": "Not Found", "documentation_url": DOCS})
        self._follow_head(repo, pull)
        return _Reply(200, pull)

    def _follow_head(self, repo: _Repo, pull: dict[str, Any]) -> None:
        """A push to the head branch moves the pull request's head, as on GitHub."""
        if repo.bare is not None and pull["state"] == "open":
            done = subprocess.run(
                ["git", "rev-parse", "--verify", "--quiet", f"refs/heads/{pull['head']['ref']}"],
                cwd=repo.bare,
                capture_output=True,
                text=True,
            )
            if done.returncode == 0:
                pull["head"]["sha"] = done.stdout.strip()

    def _check_runs(self, query: Any, _b: Any, owner: str, name: str, ref: str) -> _Reply:
        self._repo(owner, name)
        runs = self._runs_by_sha.get(ref, [])
        page, link = self._page(query, runs, f"/repos/{owner}/{name}/commits/{ref}/check-runs")
        return _Reply(200, {"total_count": len(runs), "check_runs": page}, link)

    def _reviews(self, query: Any, _b: Any, owner: str, name: str, number: str) -> _Reply:
        reviews = self._repo(owner, name).reviews.get(int(number), [])
        page, link = self._page(query, reviews, f"/repos/{owner}/{name}/pulls/{number}/reviews")
        return _Reply(200, page, link)

    def _review_comments(
        self, query: Any, _b: Any, owner: str, name: str, number: str, review_id: str
    ) -> _Reply:
        comments = self._repo(owner, name).review_comments.get(int(review_id))
        if comments is None:
            raise _Reply(404, {"message": "Not Found", "documentation_url": DOCS})
        path = f"/repos/{owner}/{name}/pulls/{number}/reviews/{review_id}/comments"
        page, link = self._page(query, comments, path)
        return _Reply(200, page, link)

    def _combined_status(self, _q: Any, _b: Any, owner: str, name: str, ref: str) -> _Reply:
        self._repo(owner, name)
        statuses = self._statuses_by_sha.get(ref, [])
        states = {s["state"] for s in statuses}
        state = (
            "failure"
            if states & {"failure", "error"}
            else "pending"
            if "pending" in states or not statuses
            else "success"
        )
        body = {"state": state, "sha": ref, "total_count": len(statuses), "statuses": statuses}
        return _Reply(200, body)

    def _job_log(self, _q: Any, _b: Any, owner: str, name: str, job_id: str) -> _Reply:
        self._repo(owner, name)
        if int(job_id) not in self._logs:
            raise _Reply(404, {"message": "Not Found", "documentation_url": DOCS})
        return _Reply(302, None, {"Location": f"{self.url}/_logs/{job_id}"})

    def _annotations_of(self, query: Any, _b: Any, owner: str, name: str, run_id: str) -> _Reply:
        notes = self._annotations.get(int(run_id), [])
        path = f"/repos/{owner}/{name}/check-runs/{run_id}/annotations"
        page, link = self._page(query, notes, path)
        return _Reply(200, page, link)

    def _merge_pull(self, _q: Any, body: Any, owner: str, name: str, number: str) -> _Reply:
        pull = self._repo(owner, name).pulls.get(int(number))
        if pull is None:
            raise _Reply(404, {"message": "Not Found", "documentation_url": DOCS})
        body = body if isinstance(body, dict) else {}
        if pull["state"] != "open" or not pull.get("mergeable", True):
            raise _Reply(405, {"message": "Pull Request is not mergeable"})
        if body.get("sha") and body["sha"] != pull["head"]["sha"]:
            raise _Reply(
                409, {"message": "Head branch was modified. Review and try the merge again."}
            )
        sha = hashlib.sha1(f"merge {number} {body.get('merge_method')}".encode()).hexdigest()
        pull.update(state="closed", merged=True, merged_at="2024-01-02T00:00:00Z")
        pull["merge_method"] = body.get("merge_method", "merge")  # what the test checks
        return _Reply(
            200, {"sha": sha, "merged": True, "message": "Pull Request successfully merged"}
        )

    def _list_pulls(self, query: Any, _b: Any, owner: str, name: str) -> _Reply:
        repo = self._repo(owner, name)
        listing = [
            {k: p[k] for k in ("number", "state", "head", "updated_at") if k in p}
            for p in repo.pulls.values()
            if p["state"] == "open"
        ]
        etag = '"' + hashlib.sha1(json.dumps(listing, sort_keys=True).encode()).hexdigest() + '"'
        if self._if_none_match == etag:
            return _Reply(304, None, {"ETag": etag})
        return _Reply(200, listing, {"ETag": etag})

    def _graphql(self, _q: Any, body: Any) -> _Reply:
        text = str((body or {}).get("query", ""))
        blocks = list(_GQL_REPO.finditer(text))
        data: dict[str, Any] = {}
        for i, block in enumerate(blocks):
            alias, owner, name = block.groups()
            end = blocks[i + 1].start() if i + 1 < len(blocks) else len(text)
            repo = self._repos.get(f"{owner}/{name}")
            if repo is None:
                data[alias] = None
                continue
            node: dict[str, Any] = {}
            for pull_alias, number in _GQL_PULL.findall(text[block.end() : end]):
                pull = repo.pulls.get(int(number))
                if pull is not None:
                    self._follow_head(repo, pull)
                node[pull_alias] = None if pull is None else self._pull_node(pull)
            data[alias] = node
        return _Reply(200, {"data": data})

    def _pull_node(self, pull: dict[str, Any]) -> dict[str, Any]:
        runs = self._runs_by_sha.get(pull["head"]["sha"], [])
        if not runs:
            rollup = None
        else:
            conclusions = [r["conclusion"] for r in runs]
            state = (
                "FAILURE"
                if any(c in ("failure", "timed_out", "cancelled") for c in conclusions)
                else "PENDING"
                if any(r["status"] != "completed" for r in runs)
                else "SUCCESS"
            )
            nodes = [
                {
                    "__typename": "CheckRun",
                    "name": r["name"],
                    "status": r["status"].upper(),
                    "conclusion": (r["conclusion"] or "").upper() or None,
                    "detailsUrl": None,
                }
                for r in runs
            ]
            rollup = {"state": state, "contexts": {"nodes": nodes}}
        state = "MERGED" if pull.get("merged") else str(pull["state"]).upper()
        return {
            "number": pull["number"],
            "state": state,
            "isDraft": pull["draft"],
            "mergeable": "MERGEABLE" if pull.get("mergeable", True) else "CONFLICTING",
            "reviewDecision": None,
            "headRefOid": pull["head"]["sha"],
            "baseRefName": pull["base"]["ref"],
            "baseRef": {"target": {"oid": self._tip(pull["base"]["ref"], pull)}},
            "commits": {"nodes": [{"commit": {"statusCheckRollup": rollup}}]},
        }

    def _tip(self, branch: str, pull: dict[str, Any]) -> str:
        """The branch's tip now (in the backing bare repository when there is one)."""
        repo = next(r for r in self._repos.values() if any(p is pull for p in r.pulls.values()))
        if repo.bare is None:
            return str(pull["base"]["sha"])
        return self._sha(repo, branch, "base")

    def _get_repo(self, _q: Any, _b: Any, owner: str, name: str) -> _Reply:
        self._repo(owner, name)
        full = {"full_name": f"{owner}/{name}", "private": True, "default_branch": "main"}
        return _Reply(200, {**full, "html_url": f"{self.web_url}/{owner}/{name}"})

    def _branch(self, _q: Any, _b: Any, owner: str, name: str, branch: str) -> _Reply:
        repo = self._repo(owner, name)
        branch = unquote(branch)
        try:
            sha = self._sha(repo, branch, "branch")
        except _Reply:
            raise _Reply(404, {"message": "Branch not found", "documentation_url": DOCS}) from None
        required = repo.required.get(branch)
        body: dict[str, Any] = {"name": branch, "commit": {"sha": sha}, "protected": False}
        if required is not None:
            # Both spellings GitHub uses: ``contexts`` (names) and ``checks`` (name and app).
            rules = {
                "enforcement_level": "non_admins",
                "contexts": required,
                "checks": [{"context": c, "app_id": None} for c in required],
            }
            protection = {"enabled": True, "required_status_checks": rules}
            body.update(protected=True, protection=protection)
        return _Reply(200, body)

    def _hook_deliveries(self, query: Any, _b: Any, owner: str, name: str, hook_id: str) -> _Reply:
        self._repo(owner, name)
        hook = self.hooks.get(int(hook_id))
        if hook is None or hook.repo != f"{owner}/{name}":
            raise _Reply(404, {"message": "Not Found", "documentation_url": DOCS})
        mine = [d for d in reversed(self.deliveries) if d["hook_id"] == hook.id]
        per_page = min(int(query.get("per_page", ["30"])[0]), 100)
        start = int(query.get("cursor", ["0"])[0] or 0)
        chunk = mine[start : start + per_page]
        shown = [{k: v for k, v in d.items() if k not in ("hook_id", "payload")} for d in chunk]
        if start + per_page >= len(mine):
            return _Reply(200, shown)
        path = f"/repos/{owner}/{name}/hooks/{hook_id}/deliveries"
        nxt = urlencode({"per_page": per_page, "cursor": start + per_page})
        return _Reply(200, shown, {"Link": f'<{self.api_url}{path}?{nxt}>; rel="next"'})

    def _redeliver(
        self, _q: Any, _b: Any, owner: str, name: str, hook_id: str, delivery_id: str
    ) -> _Reply:
        hook = self.hooks.get(int(hook_id))
        found = [d for d in self.deliveries if d["id"] == int(delivery_id)]
        if hook is None or not found:
            raise _Reply(404, {"message": "Not Found", "documentation_url": DOCS})
        # Sent after answering, like GitHub (and outside the lock the handler holds).
        original = found[0]
        threading.Thread(
            target=self._attempt,
            args=(hook, original["guid"], original["event"], original["payload"], True),
            daemon=True,
        ).start()
        return _Reply(202, {})

    def _page(
        self, query: dict[str, list[str]], items: list[dict[str, Any]], path: str
    ) -> tuple[list[dict[str, Any]], dict[str, str]]:
        per_page = min(int(query.get("per_page", ["30"])[0]), 100)
        page = int(query.get("page", ["1"])[0])
        chunk = items[(page - 1) * per_page : page * per_page]
        if page * per_page >= len(items):
            return chunk, {}
        nxt = urlencode({"per_page": per_page, "page": page + 1})
        return chunk, {"Link": f'<{self.api_url}{path}?{nxt}>; rel="next"'}

    def _sha(self, repo: _Repo, branch: str, field_name: str) -> str:
        if repo.bare is None:
            return hashlib.sha1(branch.encode()).hexdigest()
        done = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"],
            cwd=repo.bare,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise _validation({"resource": "PullRequest", "field": field_name, "code": "invalid"})
        return done.stdout.strip()


def _is_ancestor(bare: Path, ancestor: str, descendant: str) -> bool:
    args = ["git", "merge-base", "--is-ancestor", ancestor, descendant]
    return subprocess.run(args, cwd=bare, capture_output=True).returncode == 0


def _handler_for(fake: FakeGitHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are separate writes

        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                reply = fake.handle(self.command, self.path, headers, raw)
            except Exception as exc:  # a bug in the fake: answer 500, fail the test at exit
                fake.errors.append(f"{self.command} {self.path}: {exc!r}")
                reply = _Reply(500, {"message": "fake GitHub failed"})
            raw_text = isinstance(reply.body, bytes)
            data = (
                b""
                if reply.status == 304 or (reply.status == 302 and reply.body is None)
                else reply.body
                if isinstance(reply.body, bytes)
                else json.dumps(reply.body).encode()
            )
            self.send_response(reply.status)
            for key, value in fake.rate.items():
                self.send_header(f"X-RateLimit-{key.capitalize()}", str(value))
            kind = "text/plain" if raw_text else "application/json"
            self.send_header("Content-Type", f"{kind}; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-GitHub-Api-Version-Selected", "2022-11-28")
            for key, value in reply.headers.items():
                self.send_header(key, value)
            try:
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up waiting (timeout tests)

        do_GET = do_POST = do_PATCH = do_PUT = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the recorded requests say enough

    return Handler
