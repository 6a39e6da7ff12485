"""Agents spoken to over the Agent Client Protocol: Gemini CLI, Copilot CLI, OpenCode, any other.

Typed ACP messages (``wire``), one pure normalizer (``normalize``), one turn driver (``turn``)
and the providers (``provider``).
"""

from codeyard.agents.acp.provider import (
    AcpProvider,
    ClaudeAcpProvider,
    CodexAcpProvider,
    CopilotProvider,
    GeminiProvider,
    GenericAcpProvider,
    KiloProvider,
    OpenCodeProvider,
    QwenProvider,
)

__all__ = [
    "AcpProvider",
    "ClaudeAcpProvider",
    "CodexAcpProvider",
    "CopilotProvider",
    "GeminiProvider",
    "GenericAcpProvider",
    "KiloProvider",
    "OpenCodeProvider",
    "QwenProvider",
]
