"""The CLI's only way to the server: an ``httpx`` client, server discovery, problem → exception.

Discovery order: ``--server`` / ``CODEYARD_SERVER``, else the ``url`` in ``<data_dir>/server.json``
(written by ``codeyard serve``), else, when no data dir was named and that server is not running,
the newest running server started with another ``--data-dir`` (said on stderr), else
``http://127.0.0.1:8420``. The token: ``--token`` /
``CODEYARD_TOKEN``, else the one ``codeyard login`` stored for that URL, else
``CODEYARD_ADMIN_TOKEN``, else ``<data_dir>/admin.token``.

Tests inject an ``httpx.BaseTransport`` (``httpx.MockTransport`` in unit tests); everything else
goes over the network to a real server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from codeyard import __version__, locator
from codeyard.cli.credentials import stored_token
from codeyard.cli.errors import CliError as CliError  # re-exported: commands import it here
from codeyard.config import Settings

DEFAULT_URL = "http://127.0.0.1:8420"
#: Plain requests; streams use a longer read timeout (the server pings every 15 s).
REQUEST_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
STREAM_TIMEOUT = httpx.Timeout(10.0, read=60.0)


class Unreachable(CliError):
    """The server does not answer at all (refused, DNS, timeout)."""

    def __init__(self, url: str, reason: str | None = None) -> None:
        message = f"Cannot reach Codeyard at {url} — is `codeyard serve` running?"
        super().__init__(message, notes=[reason] if reason else None)
        self.url = url


#: API routes that server messages point to, and the CLI command that does the same. A person
#: at a terminal is told the command, not the HTTP request.
CLI_EQUIVALENTS = (
    ("GET /api/runs/{id}/checkpoints", "`codeyard checkpoints RUN`"),
    ("GET /api/runs", "`codeyard ls`"),
    ("GET /api/approvals", "`codeyard approvals`"),
    ("GET /api/users", "`codeyard users list`"),
    ("POST /api/users", "`codeyard users add`"),
    ("GET /api/tokens", "`codeyard token list`"),
    ("POST /api/tokens", "`codeyard token create`"),
    ("POST /api/auth/login", "`codeyard login`"),
)


def in_cli_terms(message: str) -> str:
    """``message`` with API routes replaced by the CLI commands that do the same."""
    for route, command in CLI_EQUIVALENTS:
        message = message.replace(route, command)
    return message


class ApiError(CliError):
    """An error status from the server; ``problem`` is its RFC 7807 body (or a stand-in)."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        detail = problem.get("detail")
        if not isinstance(detail, str) or not detail:
            detail = str(problem.get("title") or f"HTTP {status}")
        super().__init__(in_cli_terms(detail), notes=_problem_notes(status, problem))

    @property
    def current_status(self) -> str | None:
        value = self.problem.get("current_status")
        return str(value) if value is not None else None


def _problem_notes(status: int, problem: dict[str, Any]) -> list[str]:
    notes: list[str] = []
    if problem.get("current_status") is not None:
        notes.append(f"current status: {problem['current_status']}")
    errors = problem.get("errors")
    if errors is None and isinstance(problem.get("detail"), list):
        errors = problem["detail"]  # FastAPI's own validation body: {"detail": [...]}
    if isinstance(errors, list):
        notes.extend(f"- {_format_validation_error(item)}" for item in errors)
    conflicts = problem.get("conflicts")
    if isinstance(conflicts, list) and conflicts:
        notes.append("conflicts: " + ", ".join(str(c) for c in conflicts))
    if status == 401:
        notes.append(
            "Check --token / CODEYARD_TOKEN, sign in with `codeyard login`, or use the "
            "admin.token file in the data directory."
        )
    if status == 429 and problem.get("retry_after") is not None:
        notes.append(f"retry after {problem['retry_after']} s")
    return notes


def _format_validation_error(item: Any) -> str:
    if not isinstance(item, dict):
        return str(item)
    loc = item.get("loc") or item.get("field") or item.get("path")
    message = item.get("msg") or item.get("message") or item.get("detail") or ""
    if isinstance(loc, list | tuple):
        parts = [str(p) for p in loc]
        if parts and parts[0] in ("body", "query", "path"):
            parts = parts[1:]
        loc = ".".join(parts)
    return f"{loc}: {message}" if loc else str(message)


def problem_from_response(response: httpx.Response) -> ApiError:
    """The problem JSON of an error response; a readable stand-in when the body is not JSON."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        text = response.text.strip().splitlines()
        body = {
            "title": response.reason_phrase,
            "status": response.status_code,
            "detail": f"HTTP {response.status_code} {response.reason_phrase}"
            + (f": {text[0][:200]}" if text else ""),
        }
    return ApiError(response.status_code, body)


@dataclass(frozen=True, slots=True)
class Target:
    """Where the server is, how we know, and the token to send."""

    url: str
    token: str | None
    source: str  # "--server", "server.json", "running server" or "default"
    #: The data dir of the server when it was found through one (its admin.token, doctor).
    data_dir: Path | None = None
    #: Said once on stderr when the CLI picked a server the user did not name.
    notice: str | None = None


def read_server_file(data_dir: Path) -> dict[str, Any] | None:
    """``server.json`` as written by ``codeyard serve``, or None when absent or unreadable."""
    try:
        value = json.loads((data_dir / "server.json").read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def read_token_file(data_dir: Path) -> str | None:
    try:
        token = (data_dir / "admin.token").read_text().strip()
    except OSError:
        return None
    return token or None


def _live(info: dict[str, Any] | None) -> bool:
    pid = info.get("pid") if info else None
    return isinstance(pid, int) and locator.pid_alive(pid)


def discover(
    settings: Settings, *, server: str | None, token: str | None, data_dir_given: bool = True
) -> Target:
    """The server this command talks to, and the token for it.

    ``--server`` wins; then the data dir's ``server.json``. When no data dir was named
    (``data_dir_given`` False) and the default one has no live server, a server started
    elsewhere with ``--data-dir`` is used (the newest live one in ``locator``), with a notice.
    """
    data_dir: Path | None = settings.data_dir
    notice: str | None = None
    info = read_server_file(settings.data_dir)
    if server:
        url, source, data_dir = server, "--server", None
    elif (
        info
        and isinstance(info.get("url"), str)
        and info["url"]
        and (data_dir_given or _live(info))
    ):
        url, source = info["url"], "server.json"
    elif not data_dir_given and (live := locator.running()):
        picked = live[0]
        url, source, data_dir = picked.url, "running server", picked.data_dir
        notice = (
            f"Using the Codeyard at {picked.url} (data dir {picked.data_dir}, pid {picked.pid}); "
            f"pass --data-dir or --server to choose."
        )
        if len(live) > 1:
            others = ", ".join(f"{e.url} ({e.data_dir})" for e in live[1:])
            notice += f" Also running: {others}."
    elif info and isinstance(info.get("url"), str) and info["url"]:
        url, source = info["url"], "server.json"
    else:
        url, source = DEFAULT_URL, "default"
    url = url.rstrip("/")
    token = (
        token
        or stored_token(url)
        or settings.admin_token
        or (read_token_file(data_dir) if data_dir else None)
    )
    return Target(url=url, token=token, source=source, data_dir=data_dir, notice=notice)


def run_path(run: str, *parts: str) -> str:
    """``/api/runs/<run>/…`` for a run number (``7`` or ``#7``) or id."""
    ident = quote(run.strip().lstrip("#"), safe="")
    return "/".join([f"/api/runs/{ident}", *parts])


class ApiClient:
    """A thin, synchronous client: JSON in, JSON out, errors as :class:`CliError`."""

    def __init__(self, target: Target, *, transport: httpx.BaseTransport | None = None) -> None:
        self.target = target
        headers = {"User-Agent": f"codeyard-cli/{__version__}", "Accept": "application/json"}
        if target.token:
            headers["Authorization"] = f"Bearer {target.token}"
        self._http = httpx.Client(
            base_url=target.url, headers=headers, timeout=REQUEST_TIMEOUT, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        return self.target.url

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        """Send one request; the decoded JSON body (None when empty), or raise."""
        try:
            response = self._http.request(method, path, json=json_body, params=_clean(params))
        except httpx.TimeoutException as exc:
            raise CliError(f"Codeyard at {self.url} did not answer in time ({exc}).") from exc
        except httpx.TransportError as exc:
            raise Unreachable(self.url, str(exc) or type(exc).__name__) from exc
        if response.status_code >= 400:
            raise problem_from_response(response)
        if not response.content:
            return None
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return response.text

    def set_header(self, name: str, value: str) -> None:
        """Send ``name: value`` with every later request (the CSRF header after a sign-in)."""
        self._http.headers[name] = value

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, json_body=body)

    @contextmanager
    def stream(
        self, path: str, *, params: dict[str, Any] | None = None, headers: dict[str, str]
    ) -> Iterator[httpx.Response]:
        """A streaming GET; error statuses raise :class:`ApiError` before the body is read.

        Transport errors (refused, dropped, timed out) propagate as ``httpx`` exceptions so that
        the caller can decide to reconnect.
        """
        request_headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache", **headers}
        with self._http.stream(
            "GET", path, params=_clean(params), headers=request_headers, timeout=STREAM_TIMEOUT
        ) as response:
            if response.status_code >= 400:
                response.read()
                raise problem_from_response(response)
            yield response

    def pages(self, path: str, *, limit: int, **params: Any) -> Iterator[dict[str, Any]]:
        """Items of a cursor-paged list (``{"data", "next_cursor"}``), at most ``limit``."""
        cursor: str | None = None
        remaining = limit
        while remaining > 0:
            body = self.get(path, limit=min(remaining, 500), cursor=cursor, **params)
            items = body.get("data", []) if isinstance(body, dict) else []
            yield from items[:remaining]
            remaining -= len(items)
            cursor = body.get("next_cursor") if isinstance(body, dict) else None
            if not items or not cursor:
                return


def _clean(params: dict[str, Any] | None) -> dict[str, Any] | None:
    if params is None:
        return None
    return {k: v for k, v in params.items() if v is not None}
