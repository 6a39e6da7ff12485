"""Server-sent events: a frame parser, and following a run's stream across dropped connections.

The parser follows the WHATWG rules the server's frames rely on: ``field: value`` lines (one
leading space stripped), several ``data:`` lines joined with ``\\n``, ``:`` comments ignored
(the server's ``: ping``), a blank line ends a frame, and ``id:`` is remembered as the last event
id even on frames without data.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from codeyard.cli.client import ApiClient, ApiError, CliError, Unreachable, run_path
from codeyard.cli.format import as_dict
from codeyard.domain.status import IDLE

#: Consecutive failed connections before following gives up.
DEFAULT_RETRIES = 3
IDLE_STATUSES: frozenset[str] = frozenset(str(s) for s in IDLE)


@dataclass(frozen=True, slots=True)
class SseFrame:
    event: str
    data: str
    id: str | None = None
    retry: int | None = None

    def json(self) -> Any:
        return json.loads(self.data)


class SseParser:
    """Feed lines (without their line ending); complete frames come back from :meth:`feed`."""

    def __init__(self) -> None:
        self.last_event_id: str | None = None
        self._event = ""
        self._data: list[str] = []
        self._retry: int | None = None
        self._first = True

    def feed(self, line: str) -> SseFrame | None:
        if self._first:
            self._first = False
            line = line.removeprefix("\ufeff")
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, sep, value = line.partition(":")
        if sep:
            value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> SseFrame | None:
        data, event, retry = self._data, self._event, self._retry
        self._data, self._event, self._retry = [], "", None
        if not data:
            return None
        return SseFrame(
            event=event or "message", data="\n".join(data), id=self.last_event_id, retry=retry
        )


def parse_frames(lines: Iterable[str]) -> Iterator[SseFrame]:
    """Frames from an iterable of lines; an unterminated last frame is dropped, as in browsers."""
    parser = SseParser()
    for line in lines:
        frame = parser.feed(line)
        if frame is not None:
            yield frame


class StreamLost(CliError):
    """Following gave up after several failed reconnects."""


#: Called before each reconnect with the attempt number and what went wrong.
RetryHook = Callable[[int, str], None]


@dataclass(slots=True)
class _Progress:
    """Where following stands: the last event id seen, and what the current connection saw."""

    last_id: int
    received: bool = False
    idle: bool = False
    resync: bool = False

    def new_connection(self) -> None:
        self.received = self.resync = False


def follow_run(
    api: ApiClient,
    run: str,
    *,
    after: int = 0,
    retries: int = DEFAULT_RETRIES,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: RetryHook | None = None,
) -> Iterator[dict[str, Any]]:
    """The run's events after event id ``after``, live, until the run is idle.

    Streams ``GET /api/runs/{run}/events/stream?until_idle=1``. A dropped connection, a 5xx, a
    ``resync`` hint or a stream that ends while the run is still active reconnects with
    ``Last-Event-ID``; events already seen are skipped. After ``retries`` consecutive failures
    it raises :class:`StreamLost` (:class:`Unreachable` when the server refuses connections).
    A 4xx answer (unknown run, bad token) raises :class:`ApiError` at once.
    """
    progress = _Progress(last_id=after)
    path = run_path(run, "events", "stream")
    failures = 0
    while True:
        progress.new_connection()
        refused = False
        try:
            yield from _stream_once(api, path, progress)
        except httpx.TransportError as exc:
            problem, refused = _describe(exc), isinstance(exc, httpx.ConnectError)
        except ApiError as exc:
            if exc.status < 500:
                raise
            problem = f"HTTP {exc.status}: {exc.message}"
        else:
            if progress.resync and progress.received:
                failures = 0
                continue
            if progress.idle or (not progress.resync and _run_is_idle(api, run)):
                return
            problem = "the stream ended while the run is still active"
            if progress.resync:
                problem = "the server asked to resync"
        failures = 1 if progress.received else failures + 1
        if failures > retries:
            if refused:
                raise Unreachable(api.url, problem)
            raise StreamLost(
                f"Lost the event stream of run {run} after {retries} retries ({problem}).",
                notes=[f"Follow it again with `codeyard logs {run} -f`."],
            )
        if on_retry is not None:
            on_retry(failures, problem)
        sleep(min(0.5 * 2 ** (failures - 1), 5.0))


def _stream_once(api: ApiClient, path: str, progress: _Progress) -> Iterator[dict[str, Any]]:
    headers = {"Last-Event-ID": str(progress.last_id)} if progress.last_id else {}
    params = {"until_idle": 1, "after": progress.last_id}
    with api.stream(path, params=params, headers=headers) as response:
        for frame in parse_frames(response.iter_lines()):
            if frame.event == "resync":
                progress.resync = True
                return
            try:
                event = frame.json()
            except ValueError:
                continue
            if not isinstance(event, dict):
                continue
            event_id = _as_int(event.get("id", frame.id))
            if event_id is not None:
                if event_id <= progress.last_id:
                    continue
                progress.last_id = event_id
            progress.received = True
            if event.get("type") == "run.status":
                progress.idle = str(as_dict(event.get("data")).get("to")) in IDLE_STATUSES
            yield event


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _run_is_idle(api: ApiClient, run: str) -> bool:
    """Whether the run is idle now; False when the server cannot be reached (then we retry)."""
    try:
        body = api.get(run_path(run))
    except Unreachable:
        return False
    return isinstance(body, dict) and str(body.get("status")) in IDLE_STATUSES
