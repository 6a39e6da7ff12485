"""OpenAI Codex through ``codex app-server``: typed JSON-RPC, a pure normalizer, the provider."""

from codeyard.agents.codex.provider import CodexProvider

__all__ = ["CodexProvider"]
