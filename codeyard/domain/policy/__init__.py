"""The policy engine: pure decisions for tool calls (hard gates, trust, rules, permission mode).

Public surface: build ``Policy``/``Rule`` values (or validate API input with ``parse_rules`` /
``check_rules``), order and compile them once with ``compile_policies``, then call
``evaluate(request, PolicyContext(...))`` per tool call. ``split`` is the shell reader the rules
and gates use, exposed for previews and tests.
"""

from codeyard.domain.policy.engine import (
    PermissionMode,
    PolicyContext,
    PolicyDecision,
    evaluate,
    mode_default,
)
from codeyard.domain.policy.gates import GATES, GateAction, GateId, GateSettings
from codeyard.domain.policy.rules import (
    ACTIONS,
    Action,
    CompiledPolicies,
    CompiledRule,
    Policy,
    Rule,
    check_rules,
    compile_policies,
    parse_rules,
)
from codeyard.domain.policy.shell import split

__all__ = [
    "ACTIONS",
    "GATES",
    "Action",
    "CompiledPolicies",
    "CompiledRule",
    "GateAction",
    "GateId",
    "GateSettings",
    "PermissionMode",
    "Policy",
    "PolicyContext",
    "PolicyDecision",
    "Rule",
    "check_rules",
    "compile_policies",
    "evaluate",
    "mode_default",
    "parse_rules",
    "split",
]
