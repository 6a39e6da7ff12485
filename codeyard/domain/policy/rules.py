"""Policies and their rules: the stored shape, validation, and the compiled form the engine walks.

Why compile: regexes and globs are checked once, when a policy is saved (a bad one is a 422
naming the policy and the rule), and a decision then only runs prepared matchers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from codeyard.domain.errors import ValidationFailed
from codeyard.domain.policy.globs import GlobError, PathGlob, ToolGlob
from codeyard.domain.policy.matching import Action, CompiledRule, RulePlan, required_literal

__all__ = [
    "ACTIONS",
    "Action",
    "CompiledPolicies",
    "CompiledRule",
    "Policy",
    "Rule",
    "RulePlan",
    "check_rules",
    "compile_policies",
    "parse_rules",
]

ACTIONS: tuple[Action, ...] = ("allow", "ask", "deny")
_FIELDS = ("tool", "command", "path", "action", "reason")


@dataclass(frozen=True, slots=True)
class Rule:
    """``{tool?, command?, path?, action, reason?}``; a rule without matchers matches everything.

    ``tool``: glob on the tool name or kind (see ``ToolGlob``). ``command``: regex searched in
    each simple command of a shell line (``re.search``: anchor with ``^``/``$``). ``path``: glob
    on the paths a call names (see ``globs``); an ``allow`` needs every path to match, an
    ``ask``/``deny`` any one.
    """

    action: Action
    tool: str | None = None
    command: str | None = None
    path: str | None = None
    reason: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rule:
        """Build from already-validated data (see :func:`check_rules`)."""
        return cls(
            action=cast(Action, data["action"]),
            tool=data.get("tool"),
            command=data.get("command"),
            path=data.get("path"),
            reason=data.get("reason"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k in _FIELDS if (v := getattr(self, k)) is not None}


@dataclass(frozen=True, slots=True)
class Policy:
    id: str
    name: str
    rules: tuple[Rule, ...] = ()
    enabled: bool = True
    priority: int = 0


class CompiledPolicies:
    """Rules of all applicable policies in decision order (priority desc, then as given)."""

    __slots__ = ("_by_name", "_general", "_memo", "rules")
    _MEMO_SIZE = 1024

    def __init__(self, rules: Sequence[CompiledRule] = ()) -> None:
        self.rules = tuple(rules)
        by_name: dict[str, list[CompiledRule]] = {}
        general: list[CompiledRule] = []
        for rule in self.rules:
            if rule.tool is not None and rule.tool.literal is not None:
                by_name.setdefault(rule.tool.literal, []).append(rule)
            else:
                general.append(rule)
        self._by_name = {k: tuple(v) for k, v in by_name.items()}
        self._general = tuple(general)
        self._memo: dict[tuple[str, str], RulePlan] = {}

    def __len__(self) -> int:
        return len(self.rules)

    def for_tool(self, tool: str, kind: str) -> RulePlan:
        """The rules whose tool matcher accepts this call, in order (memoized: pure and small)."""
        key = (tool.lower(), kind)
        found = self._memo.get(key)
        if found is None:
            tool_l = key[0]
            picked = [r for r in self._general if r.tool is None or r.tool.matches(tool_l, kind)]
            picked += self._by_name.get(tool_l, ())
            if kind != tool_l:
                picked += self._by_name.get(kind, ())
            found = RulePlan(sorted(picked, key=lambda r: r.order))
            if len(self._memo) >= self._MEMO_SIZE:
                self._memo.clear()
            self._memo[key] = found
        return found


def check_rules(rules: Any, loc: Sequence[str | int] = ("rules",)) -> list[dict[str, Any]]:
    """Every problem with a list of rules, as ``{loc, msg, rule}`` (empty when valid)."""
    if not isinstance(rules, list | tuple):
        return [{"loc": [*loc], "msg": "rules must be a list"}]
    errors: list[dict[str, Any]] = []
    for i, rule in enumerate(rules):
        data = rule.to_dict() if isinstance(rule, Rule) else rule
        for field, msg in _rule_problems(data):
            where = [*loc, i] if field is None else [*loc, i, field]
            errors.append({"loc": where, "msg": msg, "rule": i})
    return errors


def parse_rules(
    rules: Any, *, policy: str, loc: Sequence[str | int] = ("rules",)
) -> tuple[Rule, ...]:
    """Validated rules, or :class:`ValidationFailed` (422) naming the policy and each bad rule."""
    errors = check_rules(rules, loc)
    if errors:
        raise _failure(policy, errors)
    return tuple(r if isinstance(r, Rule) else Rule.from_dict(r) for r in rules)


def compile_policies(policies: Iterable[Policy]) -> CompiledPolicies:
    """Enabled policies' rules in decision order: priority descending, ties in the given order.

    Disabled policies are still validated: a bad stored policy is an error, not a silent gap.
    """
    ordered = sorted(enumerate(policies), key=lambda p: (-p[1].priority, p[0]))
    compiled: list[CompiledRule] = []
    for _, policy in ordered:
        errors = check_rules(list(policy.rules), ("policies", policy.id, "rules"))
        if errors:
            raise _failure(policy.name, errors)
        if not policy.enabled:
            continue
        for index, rule in enumerate(policy.rules):
            compiled.append(_compile(rule, f"policy:{policy.id}#{index}", len(compiled)))
    return CompiledPolicies(compiled)


def _compile(rule: Rule, rule_id: str, order: int) -> CompiledRule:
    return CompiledRule(
        id=rule_id,
        order=order,
        action=rule.action,
        reason=rule.reason,
        tool=ToolGlob.compile(rule.tool) if rule.tool is not None else None,
        command=re.compile(rule.command) if rule.command is not None else None,
        path=PathGlob.compile(rule.path) if rule.path is not None else None,
        command_literal=required_literal(rule.command) if rule.command is not None else "",
    )


def _rule_problems(data: Any) -> list[tuple[str | None, str]]:
    if not isinstance(data, Mapping):
        return [(None, "each rule must be an object")]
    problems: list[tuple[str | None, str]] = []
    for key in data:
        if key not in _FIELDS:
            problems.append((str(key), f"unknown field; a rule has {', '.join(_FIELDS)}"))
    action = data.get("action")
    if action not in ACTIONS:
        problems.append(("action", f"must be one of {', '.join(ACTIONS)} (got {action!r})"))
    for field in ("tool", "command", "path", "reason"):
        value = data.get(field)
        if value is None:
            continue
        if not isinstance(value, str):
            problems.append((field, "must be a string"))
        elif field != "reason" and not value.strip():
            problems.append((field, "must not be empty (leave it out to match everything)"))
        elif field == "command":
            try:
                re.compile(value)
            except re.error as exc:
                problems.append((field, f"invalid regular expression {value!r}: {exc}"))
        elif field in ("tool", "path"):
            try:
                (ToolGlob if field == "tool" else PathGlob).compile(value)
            except GlobError as exc:
                problems.append((field, f"invalid glob {value!r}: {exc}"))
    return problems


def _failure(policy: str, errors: list[dict[str, Any]]) -> ValidationFailed:
    for error in errors:
        error["policy"] = policy
    first = errors[0]
    if "rule" in first:
        field = first["loc"][-1] if isinstance(first["loc"][-1], str) else None
        where = f"rule {first['rule']}" + (f" ({field})" if field else "")
    else:
        where = "rules"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return ValidationFailed(
        f"Policy '{policy}' {where}: {first['msg']}{more}", errors=errors, policy=policy
    )
