"""The CLI's SSE parser and reconnecting follower.

These unit tests mock the server's HTTP with ``httpx.MockTransport`` (to drop connections at
exact points); the integration tests follow runs on a real server.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from codeyard.cli.client import ApiClient, ApiError, Target, Unreachable
from codeyard.cli.sse import SseFrame, SseParser, StreamLost, follow_run, parse_frames

# -- the parser ---------------------------------------------------------------------------------


def frames(text: str) -> list[SseFrame]:
    return list(parse_frames(text.split("\n")))


def test_frame_with_id_event_and_data() -> None:
    assert frames('id: 7\nevent: tool.call\ndata: {"a": 1}\n\n') == [
        SseFrame(event="tool.call", data='{"a": 1}', id="7")
    ]


def test_multi_line_data_is_joined_with_newlines() -> None:
    (frame,) = frames("data: first\ndata: second\ndata:\ndata:  indented\n\n")
    assert frame.data == "first\nsecond\n\n indented"  # only one leading space is stripped
    assert frame.event == "message"


def test_comments_and_pings_are_ignored() -> None:
    text = ": ping\n\nid: 1\n: a comment inside a frame\ndata: x\n\n: ping\n\n"
    assert frames(text) == [SseFrame(event="message", data="x", id="1")]


def test_last_event_id_is_tracked_across_frames() -> None:
    parser = SseParser()
    lines = ["id: 5", "data: a", "", "data: b", "", "id: 9", "", "data: c", ""]
    got = [f for f in map(parser.feed, lines) if f is not None]
    # A frame without ``id:`` keeps the last id; an id-only frame dispatches nothing but counts.
    assert [(f.data, f.id) for f in got] == [("a", "5"), ("b", "5"), ("c", "9")]
    assert parser.last_event_id == "9"


def test_field_details() -> None:
    text = "\ufeffretry: 3000\nevent: x\ndata\nid: bad\0id\nunknown: field\n\n"
    (frame,) = frames(text)
    # ``data`` without a colon is an empty data line; an id with NUL is ignored.
    assert frame == SseFrame(event="x", data="", id=None, retry=3000)


def test_an_unterminated_last_frame_is_dropped() -> None:
    assert frames("data: complete\n\ndata: cut off") == [SseFrame("message", "complete")]


# -- following ------------------------------------------------------------------------------------


def event(event_id: int, kind: str, **data: Any) -> dict[str, Any]:
    return {"id": event_id, "run_id": "run_1", "seq": event_id, "type": kind, "data": data}


def sse(*events: dict[str, Any]) -> bytes:
    return "".join(
        f"id: {e['id']}\nevent: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events
    ).encode()


class Dropping(httpx.SyncByteStream):
    """A response body that sends some bytes and then loses the connection."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def __iter__(self) -> Iterator[bytes]:
        yield self.body
        raise httpx.ReadError("connection reset by peer")


Handler = Callable[[httpx.Request], httpx.Response]


def follow(handler: Handler, **kwargs: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """Follow run_1 through ``handler``; the events, and the reasons given for each retry."""
    retries: list[str] = []
    target = Target(url="http://codeyard.test", token="tok", source="--server")
    with ApiClient(target, transport=httpx.MockTransport(handler)) as api:
        got = list(
            follow_run(
                api,
                "run_1",
                sleep=lambda _s: None,
                on_retry=lambda _n, why: retries.append(why),
                **kwargs,
            )
        )
    return got, retries


def test_follow_yields_events_until_an_idle_status() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = sse(
            event(1, "run.status", to="running"),
            event(2, "agent.message", text="hi"),
            event(3, "run.status", to="review"),
        )
        return httpx.Response(200, content=b": ping\n\n" + body)

    got, retries = follow(handler)
    assert [e["id"] for e in got] == [1, 2, 3]
    assert retries == []
    (request,) = seen  # the idle status ended it: no extra GET of the run
    assert request.url.path == "/api/runs/run_1/events/stream"
    assert request.url.params["until_idle"] == "1"
    assert request.url.params["after"] == "0"
    assert "last-event-id" not in request.headers
    assert request.headers["authorization"] == "Bearer tok"
    assert request.headers["accept"] == "text/event-stream"


def test_a_dropped_connection_resumes_after_the_last_event_id() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            body = sse(event(1, "turn.started", turn=1), event(2, "agent.message", text="a"))
            return httpx.Response(200, stream=Dropping(body))
        # The replay overlaps: event 2 must not be yielded twice.
        body = sse(event(2, "agent.message", text="a"), event(3, "run.status", to="failed"))
        return httpx.Response(200, content=body)

    got, retries = follow(handler)
    assert [e["id"] for e in got] == [1, 2, 3]
    assert len(retries) == 1 and "ReadError" in retries[0]
    assert seen[1].headers["last-event-id"] == "2"
    assert seen[1].url.params["after"] == "2"


def test_a_stream_that_ends_while_the_run_is_active_reconnects() -> None:
    streams = iter(
        [sse(event(4, "turn.started", turn=1)), sse(event(5, "run.status", to="completed"))]
    )

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/runs/run_1":
            return httpx.Response(200, json={"id": "run_1", "status": "running"})
        return httpx.Response(200, content=next(streams))

    got, retries = follow(handler, after=3)
    assert [e["id"] for e in got] == [4, 5]
    assert retries == ["the stream ended while the run is still active"]


def test_a_stream_that_ends_on_an_idle_run_stops() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/runs/run_1":
            return httpx.Response(200, json={"id": "run_1", "status": "review"})
        return httpx.Response(200, content=b": ping\n\n")

    assert follow(handler, after=10) == ([], [])


def test_a_resync_hint_reconnects_at_once() -> None:
    bodies = iter(
        [
            sse(event(1, "turn.started", turn=1)) + b"event: resync\ndata: {}\n\n",
            sse(event(2, "run.status", to="review")),
        ]
    )

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=next(bodies))

    got, retries = follow(handler)
    assert [e["id"] for e in got] == [1, 2]
    assert retries == []


def test_following_gives_up_after_the_retries() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(200, stream=Dropping(b": ping\n\n"))

    with pytest.raises(StreamLost, match="after 2 retries") as caught:
        follow(handler, retries=2)
    assert calls == 3
    assert "codeyard logs run_1 -f" in caught.value.notes[0]


def test_a_refusing_server_is_unreachable_after_the_retries() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused")

    with pytest.raises(Unreachable) as caught:
        follow(handler, retries=1)
    assert caught.value.url == "http://codeyard.test"


def test_a_4xx_is_not_retried() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        problem = {"title": "Not Found", "status": 404, "detail": "No run 'run_1'."}
        return httpx.Response(404, json=problem)

    with pytest.raises(ApiError, match="No run 'run_1'"):
        follow(handler)


def test_a_5xx_is_retried() -> None:
    answers = iter(
        [
            httpx.Response(503, json={"detail": "busy"}),
            httpx.Response(200, content=sse(event(1, "run.status", to="review"))),
        ]
    )

    got, retries = follow(lambda _request: next(answers))
    assert [e["id"] for e in got] == [1]
    assert retries == ["HTTP 503: busy"]
