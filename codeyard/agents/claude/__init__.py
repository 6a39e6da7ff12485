"""Claude Code through ``claude-agent-sdk``: typed stream-json, a pure normalizer, the provider."""

from codeyard.agents.claude.provider import ClaudeCodeProvider

__all__ = ["ClaudeCodeProvider"]
