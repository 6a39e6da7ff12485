"""Properties of the policy engine, checked with hypothesis.

- evaluation is total (never an internal error) and deterministic;
- a hard gate is never ``allow`` (whatever the rules, trust or mode: only an approval passes);
- a higher-priority ``deny`` always beats a lower ``allow``;
- adding an unrelated rule never changes a decision;
- a compound command is allowed only if every part is (exactly: deny if any part is denied,
  else ask if any is asked, else allow);
- the fast paths (required literals, the literal index) agree with trying every rule in order.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from codeyard.domain.policy import (
    ACTIONS,
    GateSettings,
    Policy,
    PolicyContext,
    PolicyDecision,
    Rule,
    compile_policies,
    evaluate,
    split,
)
from codeyard.domain.policy.globs import PathGlob
from codeyard.domain.policy.matching import RulePlan, required_literal
from codeyard.domain.policy.paths import Root, _realpath, resolve
from codeyard.domain.tools import ToolRequest

SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def wt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("props") / "wt"
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "inner").symlink_to(root / "src")
    (root / "escape").symlink_to("/etc")
    yield root


# -- strategies ----------------------------------------------------------------------------

WORDS = [
    "ls",
    "cat",
    "git",
    "status",
    "log",
    "make",
    "npm",
    "test",
    "curl",
    "echo",
    "grep",
    "src/a.py",
    "README.md",
    "-la",
    "--short",
    "x",
    "build",
    "inner/b.py",
    "'a b'",
    "$HOME",
    "$(date)",
    "sudo",
    "timeout",
    "5",
]
OPERATORS = [" && ", " || ", " | ", "; ", "\n", " & "]
GATED = [
    "git push --force",
    "git push -f origin main",
    "git reset --hard",
    "git clean -fdx",
    "git merge main",
    "git pull",
    "git rebase main",
    "git cherry-pick abc",
    "rm -rf /",
    "rm -rf ..",
    "echo x > /etc/motd",
    "cp a /tmp/",
    "sudo git merge x",
    "bash -c 'git pull'",
    "timeout 5 git push -f",
    "echo $(git reset --hard)",
    "eval 'git push -f'",
]
TOOLS = [
    "Bash",
    "Edit",
    "Write",
    "Read",
    "Grep",
    "WebFetch",
    "mcp__github__create_issue",
    "mcp__jira__delete_issue",
    "Task",
]
KIND_OF = {
    "Bash": "bash",
    "Edit": "edit",
    "Write": "write",
    "Read": "read",
    "Grep": "search",
    "WebFetch": "fetch",
    "mcp__github__create_issue": "mcp",
    "mcp__jira__delete_issue": "mcp",
    "Task": "task",
}
INSIDE_PATHS = ["src/a.py", "README.md", "docs/x.md", "src/pkg/b.py", "inner/c.py", ".env"]

PATH_GLOBS = ["src/**", "*.py", "README.md", "/etc/**", "**", ".env", "inner/*.py", "{src,docs}/**"]
simple_commands = st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join)

rules = st.builds(
    Rule,
    action=st.sampled_from(ACTIONS),
    tool=st.none()
    | st.sampled_from(["Bash", "bash", "Edit", "Read", "mcp__github__*", "*", "mcp"]),
    command=st.none() | st.sampled_from(["^ls", "cat", "^git status", "test$", "curl", ".*", "x"]),
    path=st.none() | st.sampled_from(PATH_GLOBS),
)


@st.composite
def policy_lists(draw: st.DrawFn, max_policies: int = 4) -> list[Policy]:
    count = draw(st.integers(0, max_policies))
    return [
        Policy(
            f"pol{i}",
            f"policy {i}",
            tuple(draw(st.lists(rules, max_size=6))),
            enabled=draw(st.booleans()),
            priority=draw(st.integers(-3, 3)),
        )
        for i in range(count)
    ]


@st.composite
def compounds(draw: st.DrawFn) -> tuple[list[str], str]:
    parts = draw(st.lists(simple_commands, min_size=1, max_size=4))
    line = parts[0]
    for part in parts[1:]:
        line += draw(st.sampled_from(OPERATORS)) + part
    return parts, line


def tool_calls() -> st.SearchStrategy[ToolRequest]:
    shell = compounds().map(lambda pl: ToolRequest("c", "Bash", "bash", {"command": pl[1]}))
    files = st.builds(
        lambda tool, path: ToolRequest("c", tool, KIND_OF[tool], {"file_path": path}),  # type: ignore[arg-type]
        st.sampled_from(TOOLS[1:]),
        st.sampled_from(INSIDE_PATHS),
    )
    return shell | files


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)


def any_input() -> st.SearchStrategy[dict[str, Any]]:
    keys = st.sampled_from(
        [
            "command",
            "cmd",
            "path",
            "file_path",
            "paths",
            "changes",
            "cwd",
            "locations",
            "notebook_path",
            "other",
        ]
    )
    leaf = st.none() | st.integers() | st.text(max_size=30) | st.sampled_from(GATED + WORDS)
    values = st.recursive(leaf, _containers, max_leaves=6)
    return st.dictionaries(keys, values, max_size=4)


TOKENS = [*WORDS, *GATED, *OPERATORS, "(", ")", "'", '"', "`", "$(", "<<", "\\", "{", "}"]
modes = st.sampled_from(["default", "plan", "auto"])


def decide(wt: Path, request: ToolRequest, policies: list[Policy], **ctx: Any) -> PolicyDecision:
    return evaluate(request, PolicyContext(wt, compile_policies(policies), **ctx))


# -- properties ----------------------------------------------------------------------------


@SETTINGS
@given(
    tool=st.sampled_from(TOOLS) | st.text(max_size=20),
    kind=st.sampled_from([*sorted(set(KIND_OF.values())), "other"]),
    tool_input=any_input(),
    policies=policy_lists(),
    trusted=st.booleans(),
    mode=modes,
)
def test_total_and_deterministic(
    wt: Path,
    tool: str,
    kind: Any,
    tool_input: dict[str, Any],
    policies: list[Policy],
    trusted: bool,
    mode: Any,
) -> None:
    request = ToolRequest("c", tool, kind, tool_input)
    first = decide(wt, request, policies, trusted=trusted, permission_mode=mode)
    assert first.rule != "engine:error", first.reason
    assert first.action in ACTIONS and first.rule and first.reason
    assert decide(wt, request, policies, trusted=trusted, permission_mode=mode) == first


@SETTINGS
@given(line=st.text(max_size=80) | st.lists(st.sampled_from(TOKENS), max_size=12).map("".join))
def test_the_shell_reader_never_raises(line: str) -> None:
    result = split(line)
    assert result is None or all(isinstance(c.text, str) for c in result)


@SETTINGS
@given(
    before=st.lists(simple_commands, max_size=2),
    gated=st.sampled_from(GATED),
    after=st.lists(simple_commands, max_size=2),
    operator=st.sampled_from(OPERATORS),
    policies=policy_lists(),
    trusted=st.booleans(),
    mode=modes,
    deny_gates=st.booleans(),
)
def test_a_hard_gate_is_never_allowed(
    wt: Path,
    before: list[str],
    gated: str,
    after: list[str],
    operator: str,
    policies: list[Policy],
    trusted: bool,
    mode: Any,
    deny_gates: bool,
) -> None:
    line = operator.join([*before, gated, *after])
    policies = [Policy("all", "allow everything", (Rule("allow"),), priority=9), *policies]
    gates = GateSettings({"git-push-force": "deny"} if deny_gates else {})
    request = ToolRequest("c", "Bash", "bash", {"command": line})
    d = decide(wt, request, policies, trusted=trusted, permission_mode=mode, gates=gates)
    assert d.action != "allow" and d.gate, (line, d)
    assert d.rule.startswith("gate:")


@SETTINGS
@given(request=tool_calls(), lower=policy_lists(), mode=modes, data=st.data())
def test_a_higher_priority_deny_beats_a_lower_allow(
    wt: Path, request: ToolRequest, lower: list[Policy], mode: Any, data: st.DataObject
) -> None:
    if request.kind == "bash":
        commands = split(request.input["command"])
        assume(commands)  # lines that cannot be read are never allowed anyway
        assert commands is not None
        target = data.draw(st.sampled_from(commands))
        deny = Rule("deny", command=re.escape(target.text))
    else:
        deny = Rule("deny", tool=data.draw(st.sampled_from([request.tool, request.kind, "*"])))
    top = max([p.priority for p in lower], default=0) + 1
    policies = [
        *lower,
        Policy("hi", "high", (deny,), priority=top),
        Policy("lo", "low", (Rule("allow"), Rule("allow", tool=request.tool)), priority=top - 1),
    ]
    d = decide(wt, request, policies, permission_mode=mode)
    if d.gate:  # e.g. `git $X`: a gate speaks first, and never allows
        assert d.action != "allow"
        return
    assert (d.action, d.rule) == ("deny", "policy:hi#0"), d


@SETTINGS
@given(
    request=tool_calls(),
    policies=policy_lists(),
    unrelated=st.builds(
        Rule,
        action=st.sampled_from(ACTIONS),
        tool=st.none() | st.sampled_from(["zz_unrelated", "mcp__zz__*"]),
        command=st.none() | st.sampled_from([r"^zz_never\b", "qqq"]),
        path=st.none() | st.sampled_from(["/nonexistent_zz/**", "zz_nowhere/**"]),
    ),
    priority=st.integers(-5, 5),
    append_to=st.integers(0, 3),
    trusted=st.booleans(),
    mode=modes,
)
def test_an_unrelated_rule_changes_nothing(
    wt: Path,
    request: ToolRequest,
    policies: list[Policy],
    unrelated: Rule,
    priority: int,
    append_to: int,
    trusted: bool,
    mode: Any,
) -> None:
    assume(unrelated.tool or unrelated.command or unrelated.path)
    before = decide(wt, request, policies, trusted=trusted, permission_mode=mode)
    extended = [*policies, Policy("new", "new", (unrelated,), priority=priority)]
    assert decide(wt, request, extended, trusted=trusted, permission_mode=mode) == before
    if policies:
        i = append_to % len(policies)
        p = policies[i]
        grown = Policy(p.id, p.name, (*p.rules, unrelated), p.enabled, p.priority)
        changed = [*policies[:i], grown, *policies[i + 1 :]]
        assert decide(wt, request, changed, trusted=trusted, permission_mode=mode) == before


@SETTINGS
@given(parts_line=compounds(), policies=policy_lists(), mode=modes)
def test_compound_commands_are_allowed_only_if_every_part_is(
    wt: Path, parts_line: tuple[list[str], str], policies: list[Policy], mode: Any
) -> None:
    parts, line = parts_line

    def action(command: str) -> str:
        request = ToolRequest("c", "Bash", "bash", {"command": command})
        return decide(wt, request, policies, permission_mode=mode).action

    whole = action(line)
    each = [action(p) for p in parts]
    if "allow" in whole:
        assert each == ["allow"] * len(parts), (line, each)
    if split(line) is not None:  # for readable lines, exactly:
        expected = "deny" if "deny" in each else "ask" if "ask" in each else "allow"
        assert whole == expected, (line, each)


# -- the fast paths agree with the plain definition -----------------------------------------

REGEX_PIECES = [
    "git",
    "ls",
    "x",
    " ",
    r"\.",
    r"\b",
    r"\s+",
    r"\d",
    "[a-c]",
    "[^/]",
    "(foo|bar)",
    "a?",
    "b*",
    "c+",
    "d{2}",
    "e{0,3}",
    "^",
    "$",
    ".",
    ".*",
    "(?:xy)?",
    "|",
    "-",
    r"\-",
    "(?=q)",
    "(?i)",
    "é",
]


@SETTINGS
@given(pieces=st.lists(st.sampled_from(REGEX_PIECES), min_size=1, max_size=6), data=st.data())
def test_required_literal_is_in_every_match(pieces: list[str], data: st.DataObject) -> None:
    pattern = "".join(pieces)
    try:
        re.compile(pattern)
    except re.error:
        assume(False)
    literal = required_literal(pattern)
    text = data.draw(st.from_regex(pattern))
    assert literal in text, (pattern, literal, text)


GLOB_PIECES = ["src", "/", "**", "*", "?", "a", ".py", "[ab]", "[!a]", "{x,y}", "-", "."]


@SETTINGS
@given(pieces=st.lists(st.sampled_from(GLOB_PIECES), min_size=1, max_size=6), data=st.data())
def test_path_glob_literal_is_in_every_match(pieces: list[str], data: st.DataObject) -> None:
    glob = PathGlob.compile("".join(pieces))
    path = data.draw(st.from_regex(glob.regex, fullmatch=True))
    assert glob.literal in path, (glob, path)


@SETTINGS
@given(
    policies=policy_lists(max_policies=6),
    text=st.none() | simple_commands,
    raw_paths=st.lists(st.sampled_from([*INSIDE_PATHS, "/etc/a", "escape/x", "$X"]), max_size=3),
    tool=st.sampled_from(TOOLS),
    restrictive=st.booleans(),
)
def test_rule_plan_equals_trying_every_rule(
    wt: Path,
    policies: list[Policy],
    text: str | None,
    raw_paths: list[str],
    tool: str,
    restrictive: bool,
) -> None:
    compiled = compile_policies(policies)
    root = Root.of(wt)
    places = [resolve(p, root.lexical, root, known="$" not in p) for p in raw_paths]
    kind = KIND_OF[tool]
    applicable = [r for r in compiled.rules if r.tool is None or r.tool.matches(tool.lower(), kind)]
    expected = next(
        (
            r
            for r in applicable
            if not (restrictive and r.action == "allow") and r.matches(text, places)
        ),
        None,
    )
    plan = compiled.for_tool(tool, kind)
    assert isinstance(plan, RulePlan)
    assert plan.first(text, places, restrictive_only=restrictive) == expected


@SETTINGS
@given(
    parts=st.lists(
        st.sampled_from(["src", "pkg", "..", ".", "inner", "escape", "no", ""]), max_size=6
    ),
    base=st.sampled_from(["wt", "real", "/", "/tmp"]),
)
def test_fast_realpath_equals_os_realpath(wt: Path, parts: list[str], base: str) -> None:
    root = Root.of(wt)
    start = {"wt": str(wt), "real": root.real}.get(base, base)
    path = start.rstrip("/") + "/" + "/".join(parts)
    assert _realpath(path, root) == os.path.realpath(path)
