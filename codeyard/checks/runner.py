"""Run a repository's check commands in a run's worktree, sandboxed like its setup script.

Each check runs with ``bash -c`` under :func:`codeyard.workspace.repo_setup.run_script` (the
run's bubblewrap sandbox: the worktree writable, the host read-only, the data dir invisible),
one after another so their output does not interleave. The worktree state is recorded before
they run (:func:`snapshot_tree`), so a result can later be matched against the state a landing
would take.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from codeyard.checks.spec import CheckResult, CheckSpec
from codeyard.domain.events import CheckCompleted, CheckStarted, NewEvent
from codeyard.sandbox import Sandbox
from codeyard.workspace.diff import snapshot_tree
from codeyard.workspace.repo_setup import run_script

__all__ = ["Report", "SuiteResult", "run_suite", "worktree_trees"]

Report = Callable[[NewEvent], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class SuiteResult:
    results: list[CheckResult]
    #: The tree id of each worktree when the checks started.
    trees: dict[str, str]

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if not r.ok]

    @property
    def passed(self) -> bool:
        return not self.failures


async def worktree_trees(worktrees: Mapping[str, str]) -> dict[str, str]:
    """The current state of each worktree, by repository id."""
    return {repo_id: await snapshot_tree(Path(path)) for repo_id, path in worktrees.items()}


async def run_suite(
    worktrees: Mapping[str, str],
    checks: Mapping[str, Sequence[CheckSpec]],
    *,
    trigger: str,
    sandbox: Sandbox,
    env: Mapping[str, str],
    report: Report,
) -> SuiteResult:
    """Every check of every repository that has a worktree; events through ``report``."""
    trees = await worktree_trees({r: p for r, p in worktrees.items() if checks.get(r)})
    jail = sandbox.for_run([Path(p) for p in worktrees.values()], sandbox.network)
    results: list[CheckResult] = []
    for repo_id, path in worktrees.items():
        for spec in checks.get(repo_id, ()):
            await report(
                CheckStarted(repo_id=repo_id, name=spec.name, command=spec.command, trigger=trigger)
            )
            done = await run_script(
                spec.command,
                Path(path),
                {**env, "CODEYARD_WORKTREE": path, "CODEYARD_CHECK": spec.name},
                spec.timeout_seconds,
                jail,
            )
            result = CheckResult(
                repo_id=repo_id,
                name=spec.name,
                command=spec.command,
                ok=done.ok,
                exit_code=done.exit_code,
                timed_out=done.timed_out,
                duration_ms=done.duration_ms,
                log_tail=done.output[-8000:],
            )
            results.append(result)
            await report(
                CheckCompleted(
                    repo_id=repo_id,
                    name=spec.name,
                    command=spec.command,
                    ok=result.ok,
                    exit_code=result.exit_code,
                    timed_out=result.timed_out,
                    duration_ms=result.duration_ms,
                    log_tail=result.log_tail,
                )
            )
    return SuiteResult(results, trees)
