"""Compiled rules and the first-match search over them.

Why a plan: first-match-wins over 1,000 rules would run up to 1,000 regexes per simple command.
Every command regex and path glob carries a *required literal* (text any match must contain,
``""`` when unsure); one substring test per rule discards almost all of them before a regex
runs. The result is the same as trying every rule in order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from codeyard.domain.policy.globs import PathGlob, ToolGlob
from codeyard.domain.policy.paths import Place

__all__ = ["CompiledRule", "RulePlan", "required_literal"]

Action = Literal["allow", "ask", "deny"]


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule ready to match. ``id`` is ``policy:<policy id>#<rule index>``; ``order`` its rank."""

    id: str
    order: int
    action: Action
    reason: str | None
    tool: ToolGlob | None
    command: re.Pattern[str] | None
    path: PathGlob | None
    #: ``required_literal`` of the command regex, worked out once.
    command_literal: str = ""

    def describe(self) -> str:
        parts = [f"tool {self.tool.pattern!r}" if self.tool else ""]
        parts.append(f"command /{self.command.pattern}/" if self.command else "")
        parts.append(f"path {self.path.pattern!r}" if self.path else "")
        what = ", ".join(p for p in parts if p) or "every call"
        return self.reason or f"rule {self.id} ({self.action} {what})"

    def matches(self, text: str | None, places: Sequence[Place]) -> bool:
        """Paths: an ``allow`` needs every path to match on its resolved location; ``ask`` and
        ``deny`` need one, on any spelling (see ``PathGlob.matches``)."""
        if self.command is not None and (text is None or not self.command.search(text)):
            return False
        if self.path is not None:
            if not places:
                return False
            if self.action == "allow":
                return all(self.path.matches(p, True) for p in places)
            return any(self.path.matches(p, False) for p in places)
        return True


class RulePlan:
    """The rules that apply to one tool, in order, with their literals ready."""

    __slots__ = ("_by_command", "_by_head", "_by_path", "_plain", "rules", "uses_paths")

    def __init__(self, rules: Sequence[CompiledRule]) -> None:
        self.rules = tuple(rules)
        self._by_command = _LiteralIndex(
            [(r.command_literal, r) for r in self.rules if r.command is not None]
        )
        self._by_head: dict[tuple[bool, str], list[CompiledRule]] = {}
        other: list[tuple[str, CompiledRule]] = []
        for rule in self.rules:
            glob = rule.path
            if rule.command is not None or glob is None:
                continue
            if glob.head is not None:
                self._by_head.setdefault((glob.absolute, glob.head), []).append(rule)
            else:
                other.append((glob.literal, rule))
        self._by_path = _LiteralIndex(other)
        self._plain = [r for r in self.rules if r.command is None and r.path is None]
        #: Whether any rule looks at paths (if not, a decision need not resolve them).
        self.uses_paths = any(r.path is not None for r in self.rules)

    def first(
        self, text: str | None, places: Sequence[Place], *, restrictive_only: bool = False
    ) -> CompiledRule | None:
        """The first rule (in order) matching a command text and/or paths.

        ``restrictive_only`` skips ``allow`` rules (for lines that cannot be parsed).
        """
        maybe: list[CompiledRule] = list(self._plain)
        if text is not None:
            maybe += self._by_command.candidates(text)
        if places:
            if self._by_head:
                for key in _heads(places):
                    maybe += self._by_head.get(key, ())
            if self._by_path:
                maybe += self._by_path.candidates(_spellings(places))
        maybe.sort(key=_order)
        for rule in maybe:
            if restrictive_only and rule.action == "allow":
                continue
            if rule.matches(text, places):
                return rule
        return None


class _LiteralIndex:
    """Rules keyed by the last three characters of their literal (the most distinctive end:
    ``/opt/secret12``): a text then needs one look-up per position, or one substring test per
    key when there are fewer keys than positions, instead of one test per rule."""

    __slots__ = ("_always", "_by_trigram")

    def __init__(self, pairs: list[tuple[str, CompiledRule]]) -> None:
        self._always = [r for lit, r in pairs if len(lit) < 3]
        self._by_trigram: dict[str, list[tuple[str, CompiledRule]]] = {}
        for lit, rule in pairs:
            if len(lit) >= 3:
                self._by_trigram.setdefault(lit[-3:], []).append((lit, rule))

    def __len__(self) -> int:
        return len(self._always) + len(self._by_trigram)

    def candidates(self, text: str) -> list[CompiledRule]:
        """Every rule whose literal occurs in ``text`` (plus those without a usable literal)."""
        found = list(self._always)
        if not self._by_trigram:
            return found
        index = self._by_trigram
        if len(index) < len(text):
            keys: Iterable[str] = [k for k in index if k in text]
        else:
            keys = {text[i : i + 3] for i in range(len(text) - 2)}
        for key in keys:
            for lit, rule in index.get(key, ()):
                if lit in text:
                    found.append(rule)
        return found


def _order(rule: CompiledRule) -> int:
    return rule.order


def _heads(places: Sequence[Place]) -> set[tuple[bool, str]]:
    """``(absolute, first component)`` of every spelling (see ``PathGlob.head``)."""
    keys = set()
    for place in places:
        for path in (place.real, place.lexical):
            if path is not None:
                keys.add((True, path.split("/", 2)[1]))
        for rel in (place.rel, place.lexical_rel):
            if rel is not None:
                keys.add((False, rel.split("/", 1)[0]))
        if place.real is None:
            raw = place.raw
            keys.add(
                (True, raw.split("/", 2)[1])
                if raw.startswith("/")
                else (False, raw.split("/", 1)[0])
            )
    return keys


def _spellings(places: Sequence[Place]) -> str:
    """Every spelling of every path, NUL-separated (NUL cannot occur in a path)."""
    out = dict.fromkeys(
        s
        for place in places
        for s in (place.raw, place.real, place.lexical, place.rel, place.lexical_rel)
        if s is not None
    )
    return "\x00".join(out)


_INLINE_FLAGS = re.compile(r"\(\?[aiLmsux-]+[:)]")
_GIVE_UP_ESCAPES = frozenset("xuUN0123456789gp")


def required_literal(pattern: str) -> str:
    """The longest text every match of ``pattern`` contains; ``""`` when unsure.

    Conservative by construction: only top-level literal characters count (nothing inside a
    group or class, nothing before ``?``/``*``/``{``), and any top-level ``|``, inline flag
    or numeric escape gives up.
    """
    if _INLINE_FLAGS.search(pattern):
        return ""
    runs: list[str] = []
    cur: list[str] = []
    depth = 0
    i, n = 0, len(pattern)

    def end() -> None:
        if cur:
            runs.append("".join(cur))
            cur.clear()

    while i < n:
        c = pattern[i]
        if c == "\\":
            nxt = pattern[i + 1 : i + 2]
            if nxt in _GIVE_UP_ESCAPES or not nxt:
                return ""
            if depth == 0 and not nxt.isalnum():
                cur.append(nxt)
            else:
                end()
            i += 2
        elif c == "[":
            end()
            i = _class_end(pattern, i)
        elif c in "()":
            end()
            depth += 1 if c == "(" else -1
            i += 1
        elif depth > 0:
            i += 1
        elif c == "|":
            return ""
        elif c in "*?{":
            if cur:
                cur.pop()  # the atom before a `?`, `*` or `{m,n}` may be absent
            end()
            if c == "{":
                close = pattern.find("}", i)
                i = i + 1 if close < 0 else close + 1
            else:
                i += 1
        elif c in "+^$.":
            end()
            i += 1
        else:
            cur.append(c)
            i += 1
    end()
    return max(runs, key=len, default="")


def _class_end(pattern: str, i: int) -> int:
    """Index after the character class starting at ``pattern[i] == '['``."""
    j = i + 1
    if pattern[j : j + 1] == "^":
        j += 1
    if pattern[j : j + 1] == "]":
        j += 1
    while j < len(pattern) and pattern[j] != "]":
        j += 2 if pattern[j] == "\\" else 1
    return j + 1
