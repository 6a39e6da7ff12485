"""Policy decision time with 1,000 rules across 10 policy sets (target: p99 < 1 ms).

Ten policies of 100 rules each, with mixed priorities, are compiled once the way the service
would (``compile_policies``). The rules mix what real sets contain: shell command regexes for
``Bash``, MCP tool globs (``mcp__server3__*``), literal tool names, and path globs for edits and
reads, with allow/ask/deny actions. None of them matches the measured calls except where noted,
so most decisions walk every candidate rule before falling to the permission mode: the worst case
for first-match-wins.

Measured calls (each timed one decision at a time with ``perf_counter_ns``):

- ``bash simple``: ``ls -la src``;
- ``bash compound``: ``cd src && git status --short | grep -v '^??' ;
  npm test 2>&1 | tee ../out.log`` (5 simple commands, a redirection, a ``cd``);
- ``bash gated``: ``git fetch && git push --force origin HEAD`` (stopped by a hard gate);
- ``edit``: ``Edit src/pkg/module_7.py`` (path globs, symlink resolution against a real worktree);
- ``mcp``: ``mcp__github__create_issue``;
- ``read allowed``: a ``Read`` that the last policy's rule allows.

The first decision for a tool name fills a small per-tool memo of candidate rules; it is
reported separately (``first``) and kept out of the percentiles.

    .venv/bin/python bench/policy.py [--decisions 20000] [--json out.json]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import OUT, machine, wait_quiet, write_json
from bench._stats import percentiles
from codeyard.domain.policy import (
    ACTIONS,
    Policy,
    PolicyContext,
    Rule,
    compile_policies,
    evaluate,
)
from codeyard.domain.tools import ToolKind, ToolRequest


def make_policies(seed: int = 7) -> list[Policy]:
    rnd = random.Random(seed)
    policies = []
    for p in range(10):
        rules = []
        for r in range(100):
            n = p * 100 + r
            action = rnd.choice(ACTIONS)
            shape = r % 10
            if shape < 4:
                patterns = [
                    rf"^tool{n}\b",
                    rf"\bsub{n}\b",
                    rf"^make target{n}$",
                    rf"--flag-{n}(=|\s|$)",
                ]
                rule = Rule(action, tool="Bash", command=rnd.choice(patterns))
            elif shape < 6:
                rule = Rule(action, tool=f"mcp__server{n}__*")
            elif shape < 8:
                rule = Rule(action, tool=rnd.choice(["Edit", "Write"]), path=f"gen{n}/**/*.py")
            elif shape == 8:
                rule = Rule(action, tool=f"Tool{n}")
            else:
                rule = Rule(action, path=f"/opt/secret{n}/**")
            rules.append(rule)
        if p == 9:
            rules.append(Rule("allow", tool="Read", path="docs/**"))
        policies.append(Policy(f"pol_{p}", f"set {p}", tuple(rules), priority=rnd.randint(-5, 5)))
    return policies


CALLS: dict[str, tuple[str, ToolKind, dict[str, Any]]] = {
    "bash simple": ("Bash", "bash", {"command": "ls -la src"}),
    "bash compound": (
        "Bash",
        "bash",
        {
            "command": "cd src && git status --short | grep -v '^??' ; "
            "npm test 2>&1 | tee ../out.log"
        },
    ),
    "bash gated": ("Bash", "bash", {"command": "git fetch && git push --force origin HEAD"}),
    "edit": ("Edit", "edit", {"file_path": "src/pkg/module_7.py", "old_string": "a"}),
    "mcp": ("mcp__github__create_issue", "mcp", {"title": "bug", "body": "text"}),
    "read allowed": ("Read", "read", {"file_path": "docs/guide/intro.md"}),
}


def measure(decisions: int) -> dict[str, Any]:
    policies = make_policies()
    t0 = time.perf_counter()
    compiled = compile_policies(policies)
    compile_ms = (time.perf_counter() - t0) * 1000
    results: dict[str, Any] = {"rules": len(compiled), "compile_ms": round(compile_ms, 2)}
    with tempfile.TemporaryDirectory() as tmp:
        worktree = Path(tmp) / "wt"
        (worktree / "src" / "pkg").mkdir(parents=True)
        (worktree / "docs" / "guide").mkdir(parents=True)
        ctx = PolicyContext(worktree, compiled)
        for name, (tool, kind, tool_input) in CALLS.items():
            request = ToolRequest("call_1", tool, kind, tool_input)
            start = time.perf_counter_ns()
            decision = evaluate(request, ctx)
            first_us = (time.perf_counter_ns() - start) / 1000
            samples = []
            for _ in range(decisions):
                start = time.perf_counter_ns()
                evaluate(request, ctx)
                samples.append((time.perf_counter_ns() - start) / 1000)
            samples.sort()
            results[name] = {
                "decision": decision.action,
                "rule": decision.rule,
                "first_us": round(first_us, 1),
                **percentiles(samples, (50, 99), 1, unit="us"),
                "mean_us": round(statistics.fmean(samples), 1),
            }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--decisions", type=int, default=20_000)
    parser.add_argument("--json", type=Path, default=OUT / "policy.json")
    args = parser.parse_args()
    quiet = wait_quiet()
    results = measure(args.decisions)
    worst = max(v["p99_us"] for v in results.values() if isinstance(v, dict))
    print(f"{results['rules']} rules, compiled in {results['compile_ms']} ms")
    print(f"{'call':<15} {'decision':<28} {'first':>8} {'p50':>7} {'p99':>7} {'max':>8}  (µs)")
    for name in CALLS:
        r = results[name]
        what = f"{r['decision']} ({r['rule']})"
        print(
            f"{name:<15} {what:<28} {r['first_us']:>8} {r['p50_us']:>7} {r['p99_us']:>7}"
            f" {r['max_us']:>8}"
        )
    print(f"worst p99: {worst} µs — target p99 < 1000 µs: {'met' if worst < 1000 else 'NOT met'}")
    write_json(
        args.json, {"machine": machine(), **quiet, "results": results, "worst_p99_us": worst}
    )


if __name__ == "__main__":
    main()
