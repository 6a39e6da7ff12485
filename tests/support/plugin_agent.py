"""A provider of a test's own, registered like a plug-in, and the writing tool call it makes.

For tests that must control exactly what an agent yields, and when (its last words, its turn's
end, what its "process" does after it), so that an order is checked exactly rather than by
timing. Such a provider subclasses :class:`PluginAgent` (a name and ``run_turn`` are its own),
is added for one test with :func:`registered`, as a plug-in adds one, and writes files with
:func:`write`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

from codeyard.agents import registry
from codeyard.agents.base import AdapterItem, Capabilities, Provider
from codeyard.domain.events import ToolCall, tool_result

A = TypeVar("A", bound=Provider)


class PluginAgent:
    """What such a provider has besides its ``name`` and ``run_turn``: no capability, a
    version, no problem, and any options."""

    capabilities = Capabilities(False, False, False, False, False, False)

    def version(self) -> str | None:
        return "1"

    def problem(self) -> str | None:
        return None

    def validate_options(self, options: dict[str, Any]) -> None:
        return None


@contextlib.contextmanager
def registered(agent: A) -> Iterator[A]:
    """``agent`` registered under its own name until the block ends."""
    registry.register(agent)
    try:
        yield agent
    finally:
        registry.PROVIDERS.unregister(agent.name)


def write(worktree: Path, name: str, call: str, text: str | None = None) -> Iterator[AdapterItem]:
    """One ``Write`` tool call of ``name`` (``text``, else its own name, as its line), the file
    written between the call and its result."""
    yield ToolCall(call_id=call, tool="Write", kind="write", title=name, input={"path": name})
    (worktree / name).write_text(f"{text or name}\n")
    yield tool_result(call_id=call, ok=True, output="", error=None, duration_ms=1)
