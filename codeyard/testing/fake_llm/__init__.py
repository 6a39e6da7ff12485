"""A scripted fake model server speaking the APIs coding-agent CLIs use, for offline tests.

Anthropic Messages, OpenAI Responses, OpenAI Chat Completions and Gemini ``generateContent``
are served from one queue of :class:`Reply` objects; every request is logged so a test can
assert what the agent sent. See ``script.py`` for the reply format and ``codeyard fake-llm``.
"""

from codeyard.testing.fake_llm.core import FakeState, RecordedRequest
from codeyard.testing.fake_llm.script import (
    HttpError,
    Reply,
    ScriptError,
    ToolCall,
    Usage,
    load_script,
    parse_replies,
    parse_reply,
)
from codeyard.testing.fake_llm.server import FakeLLM, build_app

__all__ = [
    "FakeLLM",
    "FakeState",
    "HttpError",
    "RecordedRequest",
    "Reply",
    "ScriptError",
    "ToolCall",
    "Usage",
    "build_app",
    "load_script",
    "parse_replies",
    "parse_reply",
]
