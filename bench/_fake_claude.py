"""The fake Claude model ``bench/agents_scale.py``'s agents talk to.

The fake answers by each conversation's progress (four tool calls, then text; see ``STEPS``),
after ``think`` seconds, in a process of its own (its CPU must share neither the server's nor
the bench client's GIL): ``start_fake`` runs this module as ``python -m bench._fake_claude
<port> <think>``. Kept apart from the bench's own steps as ``bench/_loop_lag.py`` keeps the
loop-lag probe.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import httpx

from bench._common import PY, ROOT, free_port
from codeyard.testing.fake_llm import FakeLLM
from codeyard.testing.fake_llm.core import FakeState, RecordedRequest
from codeyard.testing.fake_llm.script import Reply, ToolCall

#: The agent's turn, one reply per model call: which reply answers is the number of tool
#: results the conversation already holds.
STEPS = (
    Reply(tool_calls=(ToolCall("Read", {"file_path": "{cwd}/README.md"}),)),
    Reply(tool_calls=(ToolCall("Grep", {"pattern": "bench", "path": "{cwd}"}),)),
    Reply(tool_calls=(ToolCall("Glob", {"pattern": "*.md", "path": "{cwd}"}),)),
    Reply(tool_calls=(ToolCall("Write", {"file_path": "{cwd}/notes.txt", "content": "seen\n"}),)),
    Reply(text="I read the README and wrote notes.txt."),
)
TOOL_CALLS = len(STEPS) - 1


class ConversationFake(FakeState):
    """Answers by the conversation's progress instead of one shared queue: with dozens of
    agents talking at once, a queue would hand one agent's next step to another."""

    def __init__(self, think: float) -> None:
        super().__init__()
        self.think = think

    def take(self, request: RecordedRequest) -> Reply:
        messages = request.body.get("messages") if isinstance(request.body, dict) else None
        done = 0
        for message in messages or []:
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, list):
                done += sum(
                    1 for b in content if isinstance(b, dict) and b.get("type") == "tool_result"
                )
        with self._lock:
            request.model_call = True
            self._requests.clear()  # bodies are large; nothing here reads the log
        return replace(STEPS[min(done, len(STEPS) - 1)], delay=self.think)


def serve_fake(port: int, think: float) -> None:
    """The fake model in this (child) process until it is terminated."""
    fake = FakeLLM(port=port)
    fake.state = ConversationFake(think)
    fake.start()
    try:
        while True:
            time.sleep(3600)
    finally:
        fake.stop()


def start_fake(root: Path, think: float) -> tuple[subprocess.Popen[bytes], str]:
    """The fake model in its own process (its CPU must not share this client's GIL)."""
    port = free_port()
    with (root / "fake.log").open("w") as log:
        fake = subprocess.Popen(
            [PY, "-m", "bench._fake_claude", str(port), str(think)],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    end = time.monotonic() + 30
    while True:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=2).status_code == 200:
                return fake, url
        if fake.poll() is not None or time.monotonic() > end:
            fake.kill()
            fake.wait(5)
            raise RuntimeError(f"the fake model did not start; see {root / 'fake.log'}")
        time.sleep(0.1)


if __name__ == "__main__":
    serve_fake(int(sys.argv[1]), float(sys.argv[2]))
