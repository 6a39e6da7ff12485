"""The work a worker host does in worktrees it holds, as activities on its own queue (started by
``on_host``): ``shell`` (a workflow step's command) and ``checks`` (a run's check suite, whose
``check.*`` events this host stores as they happen), ``trees`` (the worktrees' state, to tell
whether a suite's result still matches them), ``worktree`` (an operation of
``run_workspace.worktree_reads`` or ``worktree_writes``, found by name in :data:`OPS`: the
review's diff, the commits of landing and pull requests, discard, commit, rebase, agent merge,
checkpoints, the file browser). The commands are
contained by the sandbox this host gives its runs (the stored ``sandbox`` setting applied to
the worker's base sandbox); all run on the host runtime's loop
while this loop heartbeats (a cancel arrives with a heartbeat's answer and kills the work).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from temporalio import activity

from codeyard.checks.runner import run_suite, worktree_trees
from codeyard.checks.spec import CheckSpec
from codeyard.domain.errors import CodeyardError, PayloadTooLarge
from codeyard.domain.events import NewEvent
from codeyard.run_workspace.worktree_dispatch import Here, Op
from codeyard.run_workspace.worktree_reads import READS
from codeyard.run_workspace.worktree_writes import WRITES
from codeyard.sandbox import Sandbox
from codeyard.sandbox import setting as sandbox_setting
from codeyard.temporal.activities import beating
from codeyard.temporal.host import HostRuntime
from codeyard.temporal.on_host import (
    MAX_RESULT,
    ChecksInput,
    ChecksOutput,
    ShellInput,
    ShellOutput,
    TreesInput,
    TreesOutput,
    WorktreeInput,
    WorktreeOutput,
    pack,
    problem_of,
)
from codeyard.workspace import shell

#: Every operation in a run's worktrees by its name: what ``WorktreeInput.op`` names.
OPS: dict[str, Op[Any, Any]] = {op.name: op for op in (*READS, *WRITES)}


def _not_here(worktree: str, host: str) -> str:
    return (
        f"the worktree {worktree} is not on worker host '{host}': its run was landed or "
        "discarded, or moved to another host"
    )


async def _sandbox(runtime: HostRuntime) -> Sandbox:
    return await sandbox_setting.effective(runtime.engine, runtime.config.sandbox or Sandbox())


async def shell_here(runtime: HostRuntime, job: ShellInput) -> ShellOutput:
    """On the host runtime's loop: the command in ``job.worktree``, or why it cannot run."""
    host = runtime.config.host
    worktree = Path(job.worktree)
    if not worktree.is_dir():
        why = f"{_not_here(job.worktree, host)}; run shell, loop and compare checks before landing"
        return ShellOutput(None, "", False, host, why)
    result = await shell.run(job.command, worktree, await _sandbox(runtime), job.timeout)
    return ShellOutput(result.exit_code, result.output, result.timed_out, host)


async def checks_here(runtime: HostRuntime, job: ChecksInput) -> ChecksOutput:
    """On the host runtime's loop: the run's checks in its worktrees, events stored here."""
    host = runtime.config.host
    for path in job.worktrees.values():
        if not Path(path).is_dir():
            return ChecksOutput(host, error=_not_here(path, host))

    async def report(event: NewEvent) -> None:
        await runtime.writer.append(job.run_id, [event])

    suite = await run_suite(
        job.worktrees,
        {repo_id: [CheckSpec(**s) for s in specs] for repo_id, specs in job.checks.items()},
        trigger=job.trigger,
        sandbox=await _sandbox(runtime),
        env=job.env,
        report=report,
    )
    return ChecksOutput(host, suite.results, suite.trees)


async def trees_here(runtime: HostRuntime, job: TreesInput) -> TreesOutput:
    """On the host runtime's loop: the tree id of each worktree, or why it cannot be read."""
    host = runtime.config.host
    for path in job.worktrees.values():
        if not Path(path).is_dir():
            return TreesOutput(host, error=_not_here(path, host))
    return TreesOutput(host, await worktree_trees(job.worktrees))


async def worktree_here(runtime: HostRuntime, job: WorktreeInput) -> WorktreeOutput:
    """On the host runtime's loop: the git operation, its result packed, or the domain error it
    raised (the same problem on the API), or why it cannot run here."""
    host = runtime.config.host
    op = OPS[job.op]
    for path in (job.job.get("worktrees") or {}).values():
        if not Path(path).is_dir():
            return WorktreeOutput(host, error=_not_here(path, host))

    async def sandbox() -> Sandbox | None:
        return await _sandbox(runtime)

    try:
        value = await op.run(Here(runtime.engine, runtime.writer, sandbox), op.job(**job.job))
        data = pack(value)
    except CodeyardError as exc:
        return WorktreeOutput(host, problem=problem_of(exc))
    if len(data) > MAX_RESULT:
        too_big = PayloadTooLarge(
            f"{op.what} is {len(data) // 1000} kB compressed on worker host '{host}', more than "
            f"the {MAX_RESULT // 1000} kB it may send back; ask for fewer files (path=)",
        )
        return WorktreeOutput(host, problem=problem_of(too_big))
    return WorktreeOutput(host, data)


class OnHostActivities:
    def __init__(self, runtime: HostRuntime) -> None:
        self.runtime = runtime

    @activity.defn(name="shell")
    async def shell(self, job: ShellInput) -> ShellOutput:
        return await beating(self.runtime.call(shell_here(self.runtime, job)))

    @activity.defn(name="checks")
    async def checks(self, job: ChecksInput) -> ChecksOutput:
        return await beating(self.runtime.call(checks_here(self.runtime, job)))

    @activity.defn(name="trees")
    async def trees(self, job: TreesInput) -> TreesOutput:
        return await beating(self.runtime.call(trees_here(self.runtime, job)))

    @activity.defn(name="worktree")
    async def worktree(self, job: WorktreeInput) -> WorktreeOutput:
        return await beating(self.runtime.call(worktree_here(self.runtime, job)))
