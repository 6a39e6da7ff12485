"""One decision for one tool call: hard gates → run trust → rules in order → permission mode.

Why one function: every provider's tool calls pass here (principle 4), so a rule means the same
for Claude's ``Bash``, Codex's command execution and an ACP ``execute``. It is total (never
raises: an internal error denies, principle 5) and deterministic for a given worktree on disk.

Shell lines are judged per simple command: a rule's ``command`` regex is searched in each one,
each takes its own first matching rule, and the line is

- denied if any command is denied, else asked if any is asked (the earliest such rule is named);
- allowed only if every command is allowed, by rules or (when no rule matches some of them) by
  the permission mode;
- never allowed when it cannot be parsed: gates are looked for in its rough pieces, only
  ``ask``/``deny`` rules apply (to the line, its rough pieces and the commands of those that
  parse), and otherwise it is asked (``shell:unparseable``), whatever the trust or mode.

Decision ``rule`` ids: ``gate:<gate id>``, ``shell:unparseable``, ``trust``,
``policy:<policy id>#<rule index>``, ``mode:<default|plan|auto>``, ``engine:error``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

from codeyard.domain.policy.commands import SimpleCommand, command_places, walk
from codeyard.domain.policy.gates import (
    ALWAYS_DENY,
    GateHit,
    GateSettings,
    command_gates,
    path_gates,
    read_gates,
    rough_parts,
    scan_text,
)
from codeyard.domain.policy.paths import Place, Resolver, Root, command_line, input_paths, start_dir
from codeyard.domain.policy.rules import Action, CompiledPolicies, CompiledRule
from codeyard.domain.policy.shell import split
from codeyard.domain.tools import ToolRequest

__all__ = ["PermissionMode", "PolicyContext", "PolicyDecision", "evaluate", "mode_default"]

PermissionMode = Literal["default", "plan", "auto"]
#: Kinds that only look: every mode allows them when no rule speaks.
READ_ONLY_KINDS = frozenset({"read", "search", "task"})
WRITE_KINDS = frozenset({"edit", "write"})


@dataclass(frozen=True, slots=True)
class PolicyContext:
    """What a decision depends on besides the call. ``policies``: already merged (run, project,
    agent sets) and ordered, see :func:`rules.compile_policies`."""

    worktree: str | os.PathLike[str]
    policies: CompiledPolicies = field(default_factory=CompiledPolicies)
    trusted: bool = False
    permission_mode: PermissionMode = "default"
    gates: GateSettings = field(default_factory=GateSettings)
    #: Places no tool call may touch (the data directory), except the run's ``own`` worktrees
    #: (all of them; ``worktree`` is the first).
    private: tuple[str, ...] = ()
    own: tuple[str, ...] = ()
    root: Root = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.permission_mode not in get_args(PermissionMode):
            raise ValueError(f"unknown permission mode {self.permission_mode!r}")
        object.__setattr__(self, "root", Root.of(self.worktree))


@dataclass(frozen=True, slots=True)
class PolicyDecision:
    action: Action
    #: What made the decision (see the module docstring for the id forms).
    rule: str
    #: A sentence for the audit log and the approval card.
    reason: str
    #: A hard gate decided: an approval is the only way through.
    gate: bool = False
    #: Every rule that contributed, e.g. one per command of a shell line allowed by rules.
    rules: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.action == "allow"


def evaluate(request: ToolRequest, ctx: PolicyContext) -> PolicyDecision:
    """Decide ``request`` under ``ctx``. Never raises."""
    try:
        return _evaluate(request, ctx)
    except Exception as exc:  # fail closed; the reason is kept in the audited decision
        return PolicyDecision(
            "deny",
            "engine:error",
            f"the policy could not be evaluated ({type(exc).__name__}: {exc})",
        )


def mode_default(mode: PermissionMode, kind: str) -> PolicyDecision:
    """The decision when no rule matches: ``default`` asks for everything but reads (MCP, fetch
    and unknown tools may have side effects), ``plan`` also denies edits and writes, ``auto``
    allows."""
    rule = f"mode:{mode}"
    if mode == "auto":
        return PolicyDecision("allow", rule, "auto mode allows what no rule or gate stops")
    if kind in READ_ONLY_KINDS:
        return PolicyDecision("allow", rule, f"{kind} calls are allowed in {mode} mode")
    if mode == "plan" and kind in WRITE_KINDS:
        return PolicyDecision("deny", rule, "plan mode does not change files")
    return PolicyDecision("ask", rule, f"{mode} mode asks before {kind} calls")


@dataclass(frozen=True, slots=True)
class _Subject:
    """One thing rules are matched against: a simple command, or the whole non-shell call."""

    text: str | None
    places: Sequence[Place]


def _evaluate(request: ToolRequest, ctx: PolicyContext) -> PolicyDecision:
    resolve = Resolver(ctx.root)
    kind = request.kind
    line = command_line(request.input) or ""
    shell = kind == "bash" or bool(line)
    start = start_dir(request.input, ctx.root)
    places: list[Place] = []
    commands: list[SimpleCommand] | None = None
    # 0. Private places: denied whatever the settings, rules, trust or mode say.
    own = ctx.own or (ctx.root.lexical,)
    private = read_gates(request.input, start, ctx.private, own)
    if private:
        return _gate(private, ctx.gates)
    # 1. Hard gates.
    if shell:
        commands = split(line) if line.strip() else None
        hits = (
            scan_text(line, start, resolve)
            if commands is None
            else command_gates(commands, start, resolve)
        )
    else:
        places = input_paths(request.input, ctx.root)
        hits = path_gates(places) if kind in WRITE_KINDS else []
    if hits:
        return _gate(hits, ctx.gates)

    rules = ctx.policies.for_tool(request.tool, kind)
    if commands is None and shell:  # unreadable: only restrictive rules may speak
        found = [
            r
            for text, paths in _rough_subjects(line, start, resolve)
            if (r := rules.first(text, paths, restrictive_only=True))
        ]
        if found:
            rule = min(found, key=lambda r: (r.action != "deny", r.order))
            return _by_rule(rule, f"`{_short(line)}`")
        return PolicyDecision(
            "ask",
            "shell:unparseable",
            f"the command line cannot be read safely, so no rule or mode may allow it: "
            f"`{_short(line)}`",
        )
    # 2. Run trust.
    if ctx.trusted:
        return PolicyDecision("allow", "trust", "the run is trusted")
    # 3. Rules, first match per subject.
    if commands is None:
        subjects = [_Subject(None, places)]
    else:
        subjects = [
            _Subject(c.text, command_places(c, cwd, resolve) if rules.uses_paths else ())
            for c, cwd in walk(commands, start, resolve)
        ]
    if not subjects:  # e.g. a line that is only a comment
        return mode_default(ctx.permission_mode, kind)
    matched = [(s, rules.first(s.text, s.places)) for s in subjects]
    for action in ("deny", "ask"):
        hit = [(s, r) for s, r in matched if r is not None and r.action == action]
        if hit:
            subject, rule = min(hit, key=lambda sr: sr[1].order)
            return _by_rule(rule, _what(subject))
    allowed = _unique(r.id for _, r in matched if r is not None)
    unmatched = [s for s, r in matched if r is None]
    if not unmatched:
        first = matched[0][1]
        assert first is not None
        single = len(allowed) == 1 and first.reason
        reason = first.reason if single else f"allowed by {', '.join(allowed)}"
        return PolicyDecision("allow", first.id, reason or "", rules=allowed)
    # 4. The permission mode, for what no rule decided.
    fallback = mode_default(ctx.permission_mode, kind)
    what = f" for `{_short(unmatched[0].text)}`" if unmatched[0].text is not None else ""
    return PolicyDecision(
        fallback.action,
        fallback.rule,
        f"no rule matches{what}; {fallback.reason}",
        rules=(*allowed, fallback.rule),
    )


def _rough_subjects(
    line: str, start: str | None, resolve: Resolver
) -> Iterator[tuple[str, list[Place]]]:
    """What ``deny``/``ask`` rules see of a line that cannot be read: each rough piece, and the
    commands (with their paths) of the pieces that do parse."""
    for part in rough_parts(line):
        yield part, []
        for cmd, cwd in walk(split(part) or [], start, resolve):
            yield cmd.text, command_places(cmd, cwd, resolve)


def _by_rule(rule: CompiledRule, what: str) -> PolicyDecision:
    reason = rule.describe()
    return PolicyDecision(
        rule.action, rule.id, f"{reason}: {what}" if what else reason, rules=(rule.id,)
    )


def _gate(hits: list[GateHit], settings: GateSettings) -> PolicyDecision:
    denying = [h for h in hits if h.gate in ALWAYS_DENY or settings.action(h.gate) == "deny"]
    hit = (denying or hits)[0]
    return PolicyDecision(
        "deny" if denying else "ask",
        f"gate:{hit.gate}",
        hit.reason,
        gate=True,
        rules=_unique(f"gate:{h.gate}" for h in hits),
    )


def _unique(ids: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(ids))


def _what(subject: _Subject) -> str:
    if subject.text is not None:
        return f"`{_short(subject.text)}`"
    return _short(", ".join(p.raw for p in subject.places))


def _short(text: str | None, limit: int = 200) -> str:
    text = text or ""
    return text if len(text) <= limit else text[: limit - 1] + "…"
