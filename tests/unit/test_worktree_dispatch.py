"""Git work in a run's worktrees goes where the worktrees are (``worktree_dispatch``).

With an executor that keeps worktrees on worker hosts, the operation is handed to it, named,
with the run's host; a host that is gone is a 409 naming the host and the fix; a domain error
raised on the host is the same problem here; results cross the wire whole. Without one, the
operation runs in process, on real git. A worker host finds every operation by its name.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import pytest

from codeyard.domain.errors import CodeyardError, Conflict, InvalidTransition
from codeyard.run_workspace import worktree_reads, worktree_writes
from codeyard.run_workspace.on_host import NotRunOnHost, WorktreeJob
from codeyard.run_workspace.worktree_dispatch import Here, Op
from codeyard.run_workspace.worktree_dispatch import in_worktrees as in_worktrees_of
from codeyard.run_workspace.worktree_reads import DIFF, DiffJob, Diffs
from codeyard.run_workspace.worktree_writes import SNAPSHOT, SnapshotJob
from codeyard.temporal.on_host import pack, problem_of, raise_problem, unpack
from codeyard.temporal.on_host_work import OPS
from codeyard.workspace.git import GitError
from tests.conftest import make_repo

pytestmark = pytest.mark.anyio
R = TypeVar("R")
RUN = {"id": "run_1", "number": 7, "worker_host": "w2", "status": "review"}


class FakeHost:
    """An executor that keeps worktrees on hosts: records the job; answers or is gone."""

    def __init__(self, answer: Any = None, gone: bool = False) -> None:
        self.jobs: list[WorktreeJob] = []
        self.answer, self.gone = answer, gone

    async def run_shell(self, job: Any) -> Any: ...
    async def run_checks(self, job: Any) -> Any: ...
    async def worktree_trees(self, job: Any) -> Any: ...

    async def in_worktrees(self, job: WorktreeJob, result: type[R]) -> R:
        self.jobs.append(job)
        if self.gone:
            raise NotRunOnHost(
                f"worker host '{job.host}', which holds the run's worktree, did not take "
                f"{job.what} within 15 s: it is down or gone. Start `codeyard worker --name "
                f"{job.host}` again on that machine (the worktree is on its disk), then {job.then}"
            )
        assert isinstance(self.answer, result)
        return self.answer


def _here() -> Here:
    async def no_sandbox() -> None:
        return None

    return Here(None, None, no_sandbox)  # type: ignore[arg-type]


async def test_the_operation_goes_to_the_runs_host_and_its_typed_result_comes_back() -> None:
    host = FakeHost(Diffs(texts={"r1": "patch"}))
    job = DiffJob({"r1": "/elsewhere/wt"}, {"r1": "abc"}, "text")
    got = await in_worktrees_of(host, RUN, DIFF, job, _here())
    assert got == Diffs(texts={"r1": "patch"})
    [sent] = host.jobs
    assert (sent.host, sent.run_id, sent.op, sent.job) == ("w2", "run_1", "diff", job)


async def test_a_gone_host_is_a_conflict_naming_the_host_and_the_fix() -> None:
    job = SnapshotJob({"r1": "/elsewhere/wt"}, "msg")
    with pytest.raises(Conflict) as caught:
        await in_worktrees_of(FakeHost(gone=True), RUN, SNAPSHOT, job, _here())
    detail = caught.value.detail
    assert detail.startswith("Run 7: worker host 'w2'")
    assert "codeyard worker --name w2" in detail and "land it (or open its pull" in detail
    assert caught.value.extra == {"worker_host": "w2"}


async def test_without_such_an_executor_it_runs_in_process_on_real_git(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    base = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()
    (repo / "new.txt").write_text("live\n")  # untracked: in the live worktree only
    run = {**RUN, "worker_host": "w2"}  # a host named, but the executor runs nothing remotely
    job = DiffJob({"r1": str(repo)}, {"r1": base}, "stats")
    got = await in_worktrees_of(object(), run, DIFF, job, _here())
    assert got.stats == {"r1": {"files": 1, "insertions": 1, "deletions": 0}}
    back = await in_worktrees_of(
        object(), run, DIFF, DiffJob({"r1": str(repo)}, {"r1": base}, "json", reverse=True), _here()
    )
    assert [(f["path"], f["status"]) for f in back.files["r1"]] == [("new.txt", "deleted")]


def test_a_domain_error_on_the_host_is_the_same_problem_here() -> None:
    sent = InvalidTransition("mid-merge", current_status="review", conflicts=["a.txt"])
    with pytest.raises(InvalidTransition) as caught:
        raise_problem(problem_of(sent))
    assert (caught.value.detail, caught.value.extra) == (sent.detail, sent.extra)
    git_failed = GitError("git x failed", command=("x",), returncode=1, stderr="boom")
    with pytest.raises(CodeyardError) as other:
        raise_problem(problem_of(git_failed))
    assert type(other.value) is CodeyardError  # a 500, as the git error is here
    assert (other.value.title, other.value.detail) == ("Git command failed", "git x failed")


def test_results_cross_the_wire_whole() -> None:
    value = Diffs(
        texts={"r": "+x\n" * 10_000},
        files={"r": [{"path": "é.txt", "hunks": [{"lines": [{"type": "add"}]}]}]},
        stats={"r": {"files": 1, "insertions": 2, "deletions": 3}},
    )
    data = pack(value)
    assert len(data) < 2_000  # compressed: a large diff fits in one Temporal payload
    assert unpack(data, Diffs) == value


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_operation_is_named_once_and_its_empty_result_crosses_the_wire(name: str) -> None:
    op = OPS[name]
    assert op.name == name and op.timeout > 0 and op.what and op.then
    assert unpack(pack(op.result()), op.result) == op.result()


@pytest.mark.parametrize(
    ("module", "listed"),
    [(worktree_reads, worktree_reads.READS), (worktree_writes, worktree_writes.WRITES)],
)
def test_a_host_can_run_every_operation_a_module_defines(
    module: ModuleType, listed: tuple[Op[Any, Any], ...]
) -> None:
    """An operation left out of its module's list would reach a host that has no such name."""
    ops = [v for v in vars(module).values() if isinstance(v, Op)]
    defined = [op for op in ops if op.run.__module__ == module.__name__]  # not imported ones
    assert defined == list(listed)
    assert all(OPS[op.name] is op for op in defined)
    assert len(OPS) == len(worktree_reads.READS) + len(worktree_writes.WRITES)  # names unique
