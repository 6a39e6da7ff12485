"""The state every API dialect of the fake model server shares: the reply queue and the log.

Kept apart from the HTTP layer so the dialect modules (Anthropic, OpenAI, Gemini) only render a
:class:`~codeyard.testing.fake_llm.script.Reply` in their wire format. The server runs in its own
thread, so everything here is guarded by one lock and waiters use a condition variable.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from codeyard.testing.fake_llm.script import DEFAULT_TEXT, Reply, ToolCall

__all__ = ["FakeState", "RecordedRequest", "find_cwd", "new_id", "sample_for_schema", "substitute"]

log = logging.getLogger("codeyard.fake_llm")

#: How agents state their working directory in the prompt (Claude Code, Codex, Gemini CLI).
_CWD_PATTERNS = (
    re.compile(r"Primary working directory: (\S+)"),
    re.compile(r"Working directory: (\S+)"),
    re.compile(r"<cwd>([^<]+)</cwd>"),
    re.compile(r"working in the directory: (\S+)"),
)


def new_id(prefix: str, length: int = 24) -> str:
    return f"{prefix}{uuid.uuid4().hex[:length]}"


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def find_cwd(body: Any) -> str | None:
    """The working directory an agent announced in its request, if any."""
    for text in _strings(body):
        for pattern in _CWD_PATTERNS:
            match = pattern.search(text)
            if match:
                return match.group(1).rstrip(".,")
    return None


def substitute(value: Any, variables: dict[str, str]) -> Any:
    """``value`` with ``{name}`` placeholders in its strings replaced (unknown ones kept)."""
    if isinstance(value, str):
        for name, replacement in variables.items():
            value = value.replace("{" + name + "}", replacement)
        return value
    if isinstance(value, dict):
        return {k: substitute(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, variables) for v in value]
    return value


def sample_for_schema(schema: Any) -> Any:
    """A minimal value satisfying a JSON schema: answers for structured-output side calls."""
    if not isinstance(schema, dict):
        return None
    kind = schema.get("type")
    if schema.get("enum"):
        return schema["enum"][0]
    if kind == "object":
        props = schema.get("properties") or {}
        return {name: sample_for_schema(props.get(name)) for name in schema.get("required", [])}
    samples = {"string": "Fake answer", "integer": 0, "number": 0, "boolean": False, "array": []}
    return samples.get(kind if isinstance(kind, str) else "")


@dataclass(slots=True)
class RecordedRequest:
    """One request as the fake server received it, and what it answered."""

    api: str
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any
    at: float = field(default_factory=time.time)
    #: Index of the scripted reply that answered, ``None`` for the default or a non-model call.
    reply_index: int | None = None
    #: Whether this was a model call (answered from the script or the default reply).
    model_call: bool = False
    #: Anything suspicious about the exchange (an undeclared tool name, a missing ``{cwd}``…).
    notes: list[str] = field(default_factory=list)

    @property
    def model(self) -> str | None:
        model = self.body.get("model") if isinstance(self.body, dict) else None
        return model if isinstance(model, str) else None

    def text(self) -> str:
        """Every string in the body joined: for "did the agent send X" assertions."""
        return "\n".join(_strings(self.body))


class FakeState:
    """The reply queue, the default reply and the request log, safe across threads."""

    def __init__(self, replies: Iterable[Reply] = (), default: Reply | None = None) -> None:
        self._lock = threading.Condition()
        self._queue: deque[tuple[int, Reply]] = deque()
        self._served = 0
        self._requests: list[RecordedRequest] = []
        self.default = default or Reply(text=DEFAULT_TEXT)
        self.script(replies)

    def script(self, replies: Iterable[Reply]) -> None:
        """Append replies to the queue (they answer model calls in order)."""
        with self._lock:
            for reply in replies:
                self._queue.append((self._served + len(self._queue), reply))

    def clear(self) -> None:
        """Drop the replies not served yet (the log is kept)."""
        with self._lock:
            self._served += len(self._queue)
            self._queue.clear()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def model_calls(self, api: str | None = None) -> list[RecordedRequest]:
        return [r for r in self.requests if r.model_call and (api is None or r.api == api)]

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)
            self._lock.notify_all()

    def take(self, request: RecordedRequest) -> Reply:
        """The reply for a model call: the next scripted one, else the default (logged)."""
        with self._lock:
            request.model_call = True
            if self._queue:
                index, reply = self._queue.popleft()
                self._served = index + 1
                request.reply_index = index
                log.info(
                    "fake LLM: %s %s answered with reply %d (%d left)",
                    request.method,
                    request.path,
                    index,
                    len(self._queue),
                )
            else:
                reply = self.default
                log.info(
                    "fake LLM: no scripted reply left for %s %s; answering the default",
                    request.method,
                    request.path,
                )
                request.notes.append("answered with the default reply: the script is exhausted")
            self._lock.notify_all()
        return reply

    def prepare(self, reply: Reply, request: RecordedRequest, declared: list[str]) -> Reply:
        """Fill ``{cwd}`` in tool inputs and note tool names the agent did not declare."""
        if not reply.tool_calls:
            return reply
        cwd = find_cwd(request.body)
        calls: list[ToolCall] = []
        for call in reply.tool_calls:
            if declared and call.name not in declared:
                note = f"tool '{call.name}' is not among the {len(declared)} tools declared"
                log.warning("fake LLM: %s", note)
                request.notes.append(note)
            tool_input = call.input
            if "{cwd}" in json.dumps(tool_input):
                if cwd is None:
                    request.notes.append("'{cwd}' used but the request states no directory")
                else:
                    tool_input = substitute(tool_input, {"cwd": cwd})
            calls.append(replace(call, input=tool_input))
        return replace(reply, tool_calls=tuple(calls))

    def wait_for(
        self, predicate: Callable[[list[RecordedRequest]], bool], timeout: float = 30.0
    ) -> list[RecordedRequest]:
        """Block until ``predicate(requests)`` holds; raise ``TimeoutError`` otherwise."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate(self._requests):
                left = deadline - time.monotonic()
                if left <= 0:
                    summary = [f"{r.method} {r.path}" for r in self._requests]
                    raise TimeoutError(f"fake LLM: condition not met in {timeout}s; saw {summary}")
                self._lock.wait(left)
            return list(self._requests)

    def wait_for_model_calls(self, count: int, timeout: float = 30.0) -> list[RecordedRequest]:
        """Block until at least ``count`` model calls arrived (in any dialect)."""
        calls = self.wait_for(lambda rs: sum(r.model_call for r in rs) >= count, timeout)
        return [r for r in calls if r.model_call]
