"""The one permission-decision function every tool call of every provider passes.

Today it allows everything except steps a scenario marks ``"deny": true``. The policy engine
(hard gates → trust → policy sets → permission mode) replaces the body, not the call sites.
"""

from __future__ import annotations

from codeyard.domain.tools import Decision, ToolRequest


def decide(request: ToolRequest) -> Decision:
    if request.hints.get("deny"):
        return Decision(False, "the scenario marks this step as denied", rule="scenario:deny")
    return Decision(True, None, rule="default:allow")
