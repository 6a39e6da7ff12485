"""The providers that come with Codeyard, registered by name like any plug-in
(``codeyard.agents.registry``); each one's module is imported the first time it is needed."""

from __future__ import annotations

from codeyard.agents import registry

#: Provider name → the class that implements it (built without arguments).
BUILTIN: dict[str, str] = {
    "script": "codeyard.agents.script:ScriptProvider",
    "claude-code": "codeyard.agents.claude:ClaudeCodeProvider",
    "codex": "codeyard.agents.codex:CodexProvider",
    "gemini": "codeyard.agents.acp:GeminiProvider",
    "copilot": "codeyard.agents.acp:CopilotProvider",
    "opencode": "codeyard.agents.acp:OpenCodeProvider",
    "qwen": "codeyard.agents.acp:QwenProvider",
    "kilo": "codeyard.agents.acp:KiloProvider",
    "aider": "codeyard.agents.aider:AiderProvider",
    "codex-acp": "codeyard.agents.acp:CodexAcpProvider",
    "claude-acp": "codeyard.agents.acp:ClaudeAcpProvider",
    "acp": "codeyard.agents.acp:GenericAcpProvider",
}


def register_all() -> None:
    """Register every built-in provider (none is imported yet)."""
    for name, target in BUILTIN.items():
        registry.register_lazy(name, target)
